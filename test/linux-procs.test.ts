// Reading processes through /proc on a busy host: a process may exit between the listing of /proc
// and the read of its files (ENOENT), or between the open and the read (ESRCH). Both mean "gone";
// any other error is a real one and reaches the caller.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { processStartTime, processVanished, readProcFile, signalIfAlive } from '../src/linux/index.js';
import { isHutchError } from '../src/errors.js';
import { processesOnHost } from './host-scan.js';
import './suite-run.js'; // marks the processes this file starts as this run's (test/suite-run.ts)

/** A pid that has exited and been reaped. */
const deadPid = (): number => spawnSync('true').pid;

test('a process that has exited: its files read as null, its start time is null, signalling it is false', () => {
  const pid = deadPid();
  assert.equal(readProcFile(pid, 'stat'), null);
  assert.equal(readProcFile(pid, 'cmdline'), null);
  assert.equal(processStartTime(pid), null);
  assert.equal(signalIfAlive(pid, 'SIGKILL'), false);
  assert.ok(processStartTime(process.pid)! > 0, 'a live one has a start time');
});

test('a process that exits between open and read gives ESRCH, which counts as vanished', async () => {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  const fd = fs.openSync(`/proc/${child.pid}/stat`, 'r');
  try {
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    assert.throws(() => fs.readFileSync(fd, 'utf8'), (e: unknown) => processVanished(e) && (e as NodeJS.ErrnoException).code === 'ESRCH');
  } finally {
    fs.closeSync(fd);
  }
});

test('errors that do not mean "gone" are not hidden: EINTERNAL naming the file', () => {
  for (const [file, code] of [['fd', 'EISDIR'], ['stat/x', 'ENOTDIR']] as const) {
    assert.throws(() => readProcFile(process.pid, file), (e: unknown) => isHutchError(e, 'EINTERNAL')
      && e.message.startsWith(`cannot read /proc/${process.pid}/${file}: ${code}`) && e.path === `/proc/${process.pid}/${file}`);
  }
  assert.equal(processVanished(Object.assign(new Error('x'), { code: 'EACCES' })), false);
});

test('a scan of /proc while processes come and go never fails, and skips the vanished ones', async () => {
  // Before, scans read each listed pid's files without allowing for this: under this churn about a
  // third of whole-/proc scans failed with ENOENT or ESRCH.
  const churn = [1, 2].map(() => spawn('sh', ['-c', 'while :; do /bin/true; done'], { stdio: 'ignore' }));
  try {
    let vanished = 0;
    const dead = deadPid();
    assert.deepEqual(processesOnHost([dead, process.pid]).map((p) => p.pid), [process.pid], 'a listed pid that is gone is skipped');
    for (const end = Date.now() + 1500; Date.now() < end;) {
      const listed = fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map(Number);
      const seen = new Set(processesOnHost(listed).map((p) => p.pid));
      for (const pid of listed) if (!seen.has(pid) && processStartTime(pid) === null && readProcFile(pid, 'stat') === null) vanished++;
      await new Promise((r) => setImmediate(r));
    }
    assert.ok(vanished > 0, 'the churn made processes vanish during scans');
  } finally {
    for (const c of churn) c.kill('SIGKILL');
    await Promise.all(churn.map((c) => c.exitCode !== null || c.signalCode !== null ? undefined : new Promise((r) => c.once('exit', r))));
  }
});
