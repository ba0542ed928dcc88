// hutch as an OCI runtime: what passes through to the container untouched (extra fds, signals to
// a foreground run, exec's pid file), resources from a file, and how OCI mode is recognised.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { HUTCH, makeRoot } from './helpers.js';
import { cleanOciRoot, containerId, makeBundle, makeScratch, noTrace, oci, ociOk, removeScratch } from './oci-runtime-kit.js';

let root: string;
let scratch: string;
let trapper: string;
before(() => {
  root = makeRoot('ocio');
  scratch = makeScratch();
  trapper = makeBundle(scratch, 'trapper', ['sh', '-c', 'trap "echo got-term; exit 0" TERM; while :; do sleep 0.05; done']);
});
after(async () => {
  const left = await cleanOciRoot(root);
  removeScratch(scratch);
  assert.deepEqual(left, []);
});

/** Starts `hutch --root R args` with stdout and stderr to a file and fd 3 to `fd3` when given. */
function start(args: string[], fd3?: string): { done: Promise<number | null>; pid: number; output: () => string } {
  const outFile = path.join(scratch, `out-${Math.random().toString(16).slice(2)}`);
  const out = fs.openSync(outFile, 'w');
  const extra = fd3 === undefined ? [] : [fs.openSync(fd3, 'w')];
  const env = { ...process.env };
  delete env.NODE_EXTRA_CA_CERTS;
  const child = spawn(process.execPath, [HUTCH, '--root', root, ...args], { stdio: ['ignore', out, out, ...extra], env });
  fs.closeSync(out);
  for (const fd of extra) fs.closeSync(fd);
  return { done: new Promise((resolve) => child.on('exit', (code) => resolve(code))), pid: child.pid!, output: () => fs.readFileSync(outFile, 'utf8') };
}

test('--preserve-fds hands fd 3 on to the container', async () => {
  const bundle = makeBundle(scratch, 'fd3', ['sh', '-c', 'echo via-fd3 >&3']);
  const file = path.join(scratch, 'fd3.out');
  const id = containerId('fds');
  const run = start(['run', '--preserve-fds', '1', '--bundle', bundle, id], file);
  assert.equal(await run.done, 0, run.output());
  assert.equal(fs.readFileSync(file, 'utf8'), 'via-fd3\n');
  assert.ok(noTrace(root, id));
});

test('a signal to a foreground run reaches the container; its exit code comes back', async () => {
  const id = containerId('sig');
  const run = start(['run', '--bundle', trapper, id]);
  for (let i = 0; i < 200; i++) {
    const r = await oci(root, ['state', id]);
    if (r.code === 0 && (JSON.parse(r.stdout) as { status: string }).status === 'running') break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await new Promise((resolve) => setTimeout(resolve, 100)); // the trap is set once sh runs
  process.kill(run.pid, 'SIGTERM');
  assert.equal(await run.done, 0);
  assert.match(run.output(), /got-term/);
  assert.ok(noTrace(root, id));
});

test('exec --detach --pid-file, and update -r FILE', async () => {
  const id = containerId('execd');
  await ociOk(root, ['run', '-d', '--bundle', trapper, id], { files: true });
  const pidFile = path.join(scratch, 'exec.pid');
  await ociOk(root, ['exec', '--detach', '--pid-file', pidFile, id, 'sleep', '30'], { files: true });
  const pid = Number(fs.readFileSync(pidFile, 'utf8'));
  assert.ok(pid > 0 && fs.existsSync(`/proc/${pid}`));
  assert.match(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8'), /^sleep\0 ?30/);
  const resources = path.join(scratch, 'resources.json');
  fs.writeFileSync(resources, JSON.stringify({ pids: { limit: 42 } }));
  await ociOk(root, ['update', '-r', resources, id]);
  const stats = JSON.parse((await ociOk(root, ['events', '--stats', id])).split('\n')[0]!) as { data: { pids: { limit: number } } };
  assert.equal(stats.data.pids.limit, 42);
  await ociOk(root, ['delete', '--force', id]);
  assert.ok(noTrace(root, id));
});

test('OCI mode: HUTCH_OCI=1, runc-only globals and OCI-only verbs; --log-format json alone writes JSON to stderr', async () => {
  const id = containerId('mode');
  const byEnv = await oci(root, ['kill', id], { env: { HUTCH_OCI: '1' } });
  assert.equal(byEnv.code, 1);
  assert.match(byEnv.stderr, /container does not exist/);
  const json = await oci(root, ['start', id], { globals: ['--log-format', 'json'] });
  assert.equal(json.code, 1);
  const entry = JSON.parse(json.stderr) as { level: string; msg: string };
  assert.deepEqual([entry.level, entry.msg], ['error', 'container does not exist']);
  const verb = await oci(root, ['frobnicate', id], { globals: ['--systemd-cgroup'] });
  assert.equal(verb.code, 1);
  assert.match(verb.stderr, /No help topic for 'frobnicate'/);
  const flag = await oci(root, ['list'], { globals: ['--bogus'] });
  assert.equal(flag.code, 1);
  assert.match(flag.stderr, /flag provided but not defined: -bogus/);
  const args = await oci(root, ['state']);
  assert.equal(args.code, 1);
  assert.match(args.stderr, /\\?"state\\?" requires exactly 1 argument\(s\)/);
});
