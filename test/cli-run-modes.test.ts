// run --rm -d (removed when its main command ends, with no hutch staying around), a foreground run
// seen from another terminal (kill works; ps and cp say what does), run --init and SIGINT.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { HUTCH, cleanRoot, hutch, hutchOk, leftovers, makeRoot } from './helpers.js';

let root: string;
before(() => { root = makeRoot('runmodes'); });
after(async () => {
  await cleanRoot(root);
  assert.deepEqual(leftovers(root), []);
});

/** Processes whose command line names this test's root (sandboxes' exit watches among them). */
function processesOfRoot(): string[] {
  return spawnSync('pgrep', ['-af', root], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
}

async function until(what: string, ok: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const sandboxDirs = () => (fs.existsSync(path.join(root, 'sandboxes')) ? fs.readdirSync(path.join(root, 'sandboxes')) : []);

test('run --rm -d: the sandbox goes when its main command ends, and nothing of it stays', async () => {
  const r = await hutch(root, ['run', '--rm', '-d', '--name', 'short-job', 'busybox', '--', 'sh', '-c', 'sleep 3']);
  assert.equal(r.code, 0, r.stderr);
  const id = r.stdout.trim();
  assert.match(id, /^[0-9a-f]{16}$/);
  // No hutch CLI process stays: only the sandbox's exit watch (a shell waiting on a socket).
  assert.match((await hutchOk(root, ['ls'])).toString(), /short-job .*running/);
  assert.equal(processesOfRoot().filter((l) => !/hutch-exit-watch/.test(l)).length, 0, processesOfRoot().join('\n'));
  await until('the sandbox removed', async () => (await hutchOk(root, ['ls', '-q'])).trim() === '');
  assert.deepEqual(sandboxDirs(), []);
  await until('no process of the root', () => processesOfRoot().length === 0);
  assert.deepEqual(leftovers(root), []);
});

test('run --rm -d: stopped or removed by hand, it goes too, and its exit watch with it', async () => {
  const stopped = (await hutchOk(root, ['run', '--rm', '-d', 'busybox', '--', 'sleep', '1000'])).trim();
  await hutchOk(root, ['stop', '--time', '1', stopped]);
  await until('the stopped sandbox removed', async () => !(await hutchOk(root, ['ls', '-q'])).includes(stopped));
  const removed = (await hutchOk(root, ['run', '--rm', '-d', 'busybox', '--', 'sleep', '1000'])).trim();
  assert.equal(processesOfRoot().filter((l) => l.includes(removed)).length, 1, 'one exit watch');
  await hutchOk(root, ['rm', '-f', removed]);
  // rm -f stops the watch at once: nothing of the sandbox is left when it returns.
  assert.deepEqual(processesOfRoot().filter((l) => l.includes(removed)), []);
  assert.deepEqual(sandboxDirs(), []);
  // Without a main command it waits for exec, like any run -d, until stopped.
  const idle = (await hutchOk(root, ['run', '--rm', '-d', 'busybox'])).trim();
  assert.equal(await hutchOk(root, ['exec', idle, '--', 'echo', 'still here']), 'still here\n');
  await hutchOk(root, ['stop', '--time', '1', idle]);
  await until('the idle sandbox removed', () => sandboxDirs().length === 0);
  await until('no process of the root', () => processesOfRoot().length === 0);
});

/** A foreground `hutch run` in the background of the test (as in another terminal). */
function foreground(args: string[]): { child: ChildProcess; done: Promise<{ code: number | null; ms: number; stderr: string }> } {
  const started = Date.now();
  const child = spawn(process.execPath, [HUTCH, '--root', root, 'run', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const done = new Promise<{ code: number | null; ms: number; stderr: string }>((resolve) => child.on('close', (code) => resolve({ code, ms: Date.now() - started, stderr })));
  return { child, done };
}

async function runningAs(name: string): Promise<void> {
  await until(`${name} running`, async () => /running/.test((await hutch(root, ['ls'])).stdout.split('\n').find((l) => l.includes(name)) ?? ''));
}

test('a foreground run answers kill from another terminal; ps and cp say what works instead', async (t) => {
  const run = foreground(['--rm', '--name', 'fg-box', '--init', 'busybox', '--', 'sleep', '1000']);
  t.after(async () => { run.child.kill('SIGKILL'); await run.done; await hutch(root, ['rm', '-f', 'fg-box']); });
  await runningAs('fg-box');
  const ps = await hutch(root, ['ps', 'fg-box']);
  assert.equal(ps.code, 1);
  assert.match(ps.stderr, /^hutch: sandbox [0-9a-f]{16} runs its command as init \(a foreground hutch run, without an agent\): list its processes with hutch exec fg-box -- ps; hutch run -d makes a sandbox whose agent answers hutch ps\n$/);
  const cp = await hutch(root, ['cp', 'fg-box:/etc/passwd', path.join(root, 'passwd')]);
  assert.equal(cp.code, 1);
  assert.match(cp.stderr, /^hutch: sandbox \S+ runs its command as init .*hutch exec fg-box -- cat PATH > FILE.*hutch cp\n$/);
  const one = await hutch(root, ['kill', '--pid', '2', 'fg-box']);
  assert.equal(one.code, 1);
  assert.match(one.stderr, /kill signals all of its processes; for one use hutch exec fg-box -- kill -TERM PID\n$/);
  // What ps suggests works.
  assert.match(await hutchOk(root, ['exec', 'fg-box', '--', 'ps']), /sleep 1000/);
  assert.equal((await hutch(root, ['kill', 'fg-box'])).code, 0);
  const end = await run.done;
  assert.equal(end.code, 143, end.stderr);
  await until('fg-box removed', async () => !(await hutch(root, ['ls'])).stdout.includes('fg-box'));
});

test('run --init: SIGINT without a tty ends the command promptly (130); without --init, the command as pid 1 ignores it', async (t) => {
  const withInit = foreground(['--rm', '--name', 'int-init', '--init', 'busybox', '--', 'sleep', '5']);
  t.after(async () => { withInit.child.kill('SIGKILL'); await withInit.done; });
  await runningAs('int-init');
  withInit.child.kill('SIGINT');
  const a = await withInit.done;
  assert.equal(a.code, 130, a.stderr);
  assert.ok(a.ms < 4500, `ended after ${a.ms} ms`);
  // sleep as pid 1 of its namespace has no SIGINT handler, so the kernel drops the signal: it runs on.
  const plain = foreground(['--rm', '--name', 'int-plain', 'busybox', '--', 'sleep', '2']);
  t.after(async () => { plain.child.kill('SIGKILL'); await plain.done; });
  await runningAs('int-plain');
  const sentAt = Date.now();
  plain.child.kill('SIGINT');
  const b = await plain.done;
  assert.equal(b.code, 0, b.stderr);
  assert.ok(Date.now() - sentAt > 500, 'ran to its end');
  // The init reaps orphans: a zombie left by a child's child does not stay.
  const zombies = await hutch(root, ['run', '--rm', '--init', 'busybox', '--', 'sh', '-c', '(sleep 0.2 &) ; sleep 1; ps -o stat,comm | grep -c "^Z" || true']);
  assert.equal(zombies.stdout.trim(), '0', zombies.stderr);
});

test('run --init with bad input: --init has no value; catatonit is the init only for the foreground', async () => {
  const r = await hutch(root, ['run', '--rm', '--init=yes', 'busybox', '--', 'true']);
  assert.equal(r.code, 125);
  assert.match(r.stderr, /--init takes no value/);
  const pid1 = await hutchOk(root, ['run', '--rm', '--init', 'busybox', '--', 'cat', '/proc/1/cmdline']);
  assert.equal(pid1.split('\0')[0], '/dev/init');
});
