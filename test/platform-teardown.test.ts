// Removing a runc container without runc: the init is killed only when it is the process runc
// recorded (same pid and start time); anything else falls back to runc's own kill and delete.
import test, { after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { killAndForgetRuncContainer } from '../src/platform/container/index.js';
import './suite-run.js'; // marks the processes this file starts as this run's (test/suite-run.ts)

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-teardown-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Writes a runc-like state.json for container `id`. */
function state(id: string, body: unknown): void {
  fs.mkdirSync(path.join(tmp, id), { recursive: true });
  fs.writeFileSync(path.join(tmp, id, 'state.json'), typeof body === 'string' ? body : JSON.stringify(body));
}

function startTime(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
}

test('a recorded pid whose start time differs (a reused pid) is never signalled: the caller falls back', async () => {
  const bystander = spawn('sleep', ['30'], { stdio: 'ignore' });
  try {
    state('reused', { init_process_pid: bystander.pid, init_process_start: startTime(bystander.pid!) + 1 });
    assert.equal(await killAndForgetRuncContainer(tmp, 'reused', '/hutch-teardown-none'), false);
    assert.equal(bystander.exitCode, null);
    assert.equal(bystander.signalCode, null);
    process.kill(bystander.pid!, 0); // still there
    assert.ok(fs.existsSync(path.join(tmp, 'reused')), 'runc state kept for runc to delete');
  } finally {
    bystander.kill('SIGKILL');
  }
});

test('a state file that does not parse, or lacks the init, falls back', async () => {
  state('garbage', '{not json');
  assert.equal(await killAndForgetRuncContainer(tmp, 'garbage', '/hutch-teardown-none'), false);
  state('no-init', { id: 'no-init' });
  assert.equal(await killAndForgetRuncContainer(tmp, 'no-init', '/hutch-teardown-none'), false);
  state('pid-one', { init_process_pid: 1, init_process_start: startTime(1) });
  assert.equal(await killAndForgetRuncContainer(tmp, 'pid-one', '/hutch-teardown-none'), false);
  assert.equal(await killAndForgetRuncContainer(tmp, 'missing', '/hutch-teardown-none'), false);
});

test('the recorded init is killed and runc\'s state of it removed', async () => {
  const init = spawn('sleep', ['30'], { stdio: 'ignore' });
  const exited = new Promise((r) => init.on('exit', (_c, sig) => r(sig)));
  state('mine', { init_process_pid: init.pid, init_process_start: startTime(init.pid!) });
  assert.equal(await killAndForgetRuncContainer(tmp, 'mine', '/hutch-teardown-none'), true);
  assert.equal(await exited, 'SIGKILL');
  assert.ok(!fs.existsSync(path.join(tmp, 'mine')));
});
