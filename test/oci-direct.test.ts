// The `hutch` launcher's shortcut (scripts/launcher.sh, src/engine/oci/direct.ts): start, kill,
// pause, resume and delete of a ready container go straight to the executor without node; every
// other call, and every case the launcher does not recognise exactly, goes to node. The launcher is
// installed into a temp dir by scripts/install-launchers.mjs, as setup.sh installs it.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeRoot } from './helpers.js';
import { cleanOciRoot, containerId, makeBundle, makeScratch, noTrace, removeScratch } from './oci-runtime-kit.js';
import { OciRuntime } from '../src/engine/oci/index.js';
import { FileLock } from '../src/linux/filelock.js';

const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const DIRECT_MARK = '[hutch direct]';

let root: string;
let scratch: string;
let bin: string;
let launcher: string;
let sleeper: string;
before(() => {
  root = makeRoot('direct');
  scratch = makeScratch();
  bin = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-launcher-'));
  const r = spawnSync(process.execPath, [path.join(REPO, 'scripts', 'install-launchers.mjs'), bin], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  launcher = path.join(bin, 'hutch');
  // An annotation: runc prints annotations before owner, and so must hutch.
  sleeper = makeBundle(scratch, 'sleeper', ['sleep', '1000'], (s) => { s.annotations = { 'org.example.tier': 'test' }; });
});
after(async () => {
  const left = await cleanOciRoot(root);
  removeScratch(scratch);
  fs.rmSync(bin, { recursive: true, force: true });
  assert.deepEqual(left, []);
});

interface Run { code: number | null; stdout: string; stderr: string; direct: boolean; ms: number }

/**
 * Runs the installed launcher with HUTCH_TRACE=1 (so a direct call says so on stderr), with
 * `--root <root>` first unless `bare`.
 */
function launch(args: string[], env: NodeJS.ProcessEnv = {}, opts: { bare?: boolean; cwd?: string } = {}): Promise<Run> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    // The container of a create inherits stdout/stderr: files, not pipes that would stay open.
    const out = fs.openSync(path.join(scratch, 'out'), 'w+');
    const err = fs.openSync(path.join(scratch, 'err'), 'w+');
    const argv = opts.bare ? args : ['--root', root, ...args];
    const child = spawn(launcher, argv, { stdio: ['ignore', out, err], env: { ...process.env, HUTCH_TRACE: '1', ...env }, ...(opts.cwd ? { cwd: opts.cwd } : {}) });
    child.on('error', reject);
    child.on('exit', (code) => {
      const stdout = fs.readFileSync(path.join(scratch, 'out'), 'utf8');
      const stderr = fs.readFileSync(path.join(scratch, 'err'), 'utf8');
      fs.closeSync(out);
      fs.closeSync(err);
      resolve({ code, stdout, stderr, direct: stderr.includes(DIRECT_MARK), ms: performance.now() - started });
    });
  });
}

async function launchOk(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  const r = await launch(args, env);
  assert.equal(r.code, 0, `hutch ${args.join(' ')}: ${r.stderr}`);
  return r;
}

const statusOf = async (id: string) => (JSON.parse((await launchOk(['state', id])).stdout) as { status: string }).status;

test('start, kill, pause, resume, state and delete of a ready container skip node; create does not', async () => {
  const id = containerId('direct');
  const created = await launchOk(['create', '--bundle', sleeper, id]);
  assert.equal(created.direct, false);
  const lines = fs.readFileSync(path.join(root, id, 'direct'), 'utf8').split('\n');
  assert.equal(lines[0], 'hutch-direct 1');
  assert.equal(lines[1], 'start kill pause resume delete state');
  assert.equal(lines.at(-2), '@end');

  const start = await launchOk(['start', id]);
  assert.ok(start.direct, start.stderr);
  assert.match(start.stderr, new RegExp(`runc --root ${root}/\\.executor/runc start ${id}`));
  const state = await launchOk(['state', id]);
  assert.ok(state.direct, state.stderr);
  const viaNode = await launchOk(['state', id], { HUTCH_DIRECT: '0' });
  assert.equal(viaNode.direct, false);
  assert.equal(state.stdout, viaNode.stdout, 'the same document, byte for byte, as hutch prints');
  const parsed = JSON.parse(state.stdout) as { status: string; bundle: string };
  assert.equal(parsed.status, 'running');
  assert.equal(parsed.bundle, sleeper, 'the caller\'s bundle, not hutch\'s private one');

  assert.ok((await launchOk(['pause', id])).direct);
  assert.equal(await statusOf(id), 'paused');
  assert.ok((await launchOk(['resume', id])).direct);
  assert.equal(await statusOf(id), 'running');
  // runc's single-dash flags and signal names pass as given.
  const kill = await launchOk(['kill', '-all', id, 'KILL']);
  assert.ok(kill.direct);
  assert.match(kill.stderr, /kill --all \S+ KILL/);
  for (let i = 0; i < 100 && (await statusOf(id)) !== 'stopped'; i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal(await statusOf(id), 'stopped');

  const del = await launchOk(['delete', id]);
  assert.ok(del.direct);
  assert.ok(noTrace(root, id), 'no dir and no executor state left');
  // Gone: the launcher finds no direct file, and node gives runc's words.
  const again = await launch(['start', id]);
  assert.equal(again.direct, false);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /container does not exist/);
});

test('errors on the direct path are the executor\'s own, in the caller\'s log, and lose nothing', async () => {
  const id = containerId('direct-err');
  await launchOk(['create', '--bundle', sleeper, id]);
  await launchOk(['start', id]);
  const log = path.join(scratch, 'runtime.log');
  const twice = await launch(['--log', log, '--log-format', 'json', 'start', id]);
  assert.ok(twice.direct);
  assert.equal(twice.code, 1);
  const logged = fs.readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { level: string; msg: string });
  assert.ok(logged.some((l) => l.level === 'error' && /cannot start/.test(l.msg)), JSON.stringify(logged));

  const running = await launch(['delete', id]);
  assert.ok(running.direct);
  assert.equal(running.code, 1);
  assert.match(running.stderr, /running/);
  assert.ok(fs.existsSync(path.join(root, id, 'record.json')), 'a refused delete keeps the record');
  assert.equal(await statusOf(id), 'running');
  assert.ok((await launchOk(['delete', '--force', id])).direct);
  assert.ok(noTrace(root, id));
});

test('calls the launcher does not recognise exactly go to node', async () => {
  const id = containerId('direct-fallback');
  await launchOk(['create', '--bundle', sleeper, id]);
  // Switched off; an unknown global flag; an extra operand; an id like a flag; an id that is not one.
  assert.equal((await launchOk(['start', id], { HUTCH_DIRECT: '0' })).direct, false);
  assert.equal(await statusOf(id), 'running');
  const unknownFlag = await launch(['--executor', 'runc', 'kill', id, 'CONT']);
  assert.equal(unknownFlag.direct, false);
  assert.equal(unknownFlag.code, 0, unknownFlag.stderr);
  const extra = await launch(['pause', id, 'more']);
  assert.equal(extra.direct, false);
  assert.equal(extra.code, 1);
  for (const bad of ['../x', '.executor', '-x', 'a/b', '']) {
    const r = await launch(['kill', bad, 'KILL']);
    assert.equal(r.direct, false, bad);
    assert.notEqual(r.code, 0, bad);
  }
  // A direct file of another format version is not used.
  const file0 = path.join(root, id, 'direct');
  const original = fs.readFileSync(file0, 'utf8');
  fs.writeFileSync(file0, original.replace('hutch-direct 1\n', 'hutch-direct 2\n'));
  const otherFormat = await launch(['kill', id, 'CONT']);
  assert.equal(otherFormat.direct, false);
  assert.equal(otherFormat.code, 0, otherFormat.stderr);
  fs.writeFileSync(file0, original);
  // A direct file cut short (no @end) is not used.
  const file = path.join(root, id, 'direct');
  const whole = fs.readFileSync(file, 'utf8');
  fs.writeFileSync(file, whole.replace('@end\n', ''));
  const cut = await launch(['kill', id, 'CONT']);
  assert.equal(cut.direct, false);
  assert.equal(cut.code, 0, cut.stderr);
  fs.writeFileSync(file, whole);

  // The executor lost the container: node tells its state and sorts out the record.
  spawnSync('runc', ['--root', path.join(root, '.executor', 'runc'), 'delete', '--force', id]);
  const lostState = await launchOk(['state', id]);
  assert.equal(lostState.direct, false);
  assert.equal((JSON.parse(lostState.stdout) as { status: string }).status, 'stopped');
  const lost = await launch(['delete', id]);
  assert.equal(lost.direct, false);
  assert.equal(lost.code, 0, lost.stderr);
  assert.ok(noTrace(root, id));
});

test('a pod sandbox\'s delete goes to node, which takes its pod with it', async () => {
  const sandboxId = containerId('direct-pod');
  const memberId = containerId('direct-member');
  const sandbox = makeBundle(scratch, 'pod-sandbox', ['sleep', '1000'], (s) => {
    s.annotations = { 'io.kubernetes.cri.container-type': 'sandbox', 'io.kubernetes.cri.sandbox-id': sandboxId };
  });
  const member = makeBundle(scratch, 'pod-member', ['sleep', '1000'], (s) => {
    s.annotations = { 'io.kubernetes.cri.container-type': 'container', 'io.kubernetes.cri.sandbox-id': sandboxId };
  });
  await launchOk(['create', '--bundle', sandbox, sandboxId]);
  assert.equal(fs.readFileSync(path.join(root, sandboxId, 'direct'), 'utf8').split('\n')[1], 'start kill pause resume state');
  assert.ok((await launchOk(['start', sandboxId])).direct);
  await launchOk(['create', '--bundle', member, memberId]);
  assert.ok((await launchOk(['start', memberId])).direct);
  const del = await launchOk(['delete', '--force', sandboxId]);
  assert.equal(del.direct, false);
  assert.ok(noTrace(root, sandboxId));
  assert.ok(noTrace(root, memberId), 'the pod\'s container went with its sandbox');
});

test('a direct delete waits for the container\'s lock, and two at once delete it once', async () => {
  const id = containerId('direct-lock');
  await launchOk(['create', '--bundle', sleeper, id]);
  const holder = spawn('flock', [path.join(root, id, 'lock'), 'sleep', '1'], { stdio: 'ignore' });
  const released = new Promise((r) => holder.on('exit', r));
  await new Promise((r) => setTimeout(r, 200));
  const [first, second] = await Promise.all([launch(['delete', '--force', id]), launch(['delete', '--force', id])]);
  await released;
  assert.ok(first.ms > 600 && second.ms > 600, `both waited for the lock (${first.ms.toFixed(0)}, ${second.ms.toFixed(0)} ms)`);
  // As runc: the second `delete --force` finds no container, which is not an error.
  assert.deepEqual([first.code, second.code], [0, 0], `${first.stderr} / ${second.stderr}`);
  assert.ok(noTrace(root, id));
});

test('delete --force of a container that does not exist succeeds silently, as runc\'s; delete without --force fails', async () => {
  const id = containerId('never-made');
  const direct = await launch(['--log', path.join(scratch, 'never.log'), '--log-format', 'json', 'delete', '--force', id]);
  assert.deepEqual([direct.code, direct.stdout, direct.direct], [0, '', true], direct.stderr);
  assert.equal(fs.existsSync(path.join(scratch, 'never.log')), false, 'nothing logged');
  const node = await launch(['delete', '--force', id], { HUTCH_DIRECT: '0' });
  assert.deepEqual([node.code, node.stdout, node.direct], [0, '', false]);
  assert.doesNotMatch(node.stderr, /error|does not exist/, 'no message (only HUTCH_TRACE lines)');
  const runc = spawnSync('runc', ['--root', path.join(scratch, 'runc-root'), 'delete', '--force', id], { encoding: 'utf8' });
  assert.deepEqual([runc.status, runc.stdout, runc.stderr], [0, '', ''], 'what runc does');
  fs.rmSync(path.join(scratch, 'runc-root'), { recursive: true, force: true });
  const plain = await launch(['delete', id]);
  assert.equal(plain.code, 1);
  assert.match(plain.stderr, /container does not exist/);
  assert.ok(noTrace(root, id));
});

test('a crun container goes direct too, through hutch\'s wrapper for this host\'s cgroups (state stays node\'s)', async (t) => {
  if (spawnSync('crun', ['--version']).status !== 0) {
    t.skip('crun is not installed (scripts/setup.sh installs it)');
    return;
  }
  const id = containerId('direct-crun');
  await launchOk(['--executor', 'crun', 'create', '--bundle', sleeper, id]);
  assert.equal(fs.readFileSync(path.join(root, id, 'direct'), 'utf8').split('\n')[1], 'start kill pause resume delete');
  assert.ok((await launchOk(['start', id])).direct);
  const state = await launchOk(['state', id]);
  assert.equal(state.direct, false);
  assert.equal((JSON.parse(state.stdout) as { status: string }).status, 'running');
  assert.ok((await launchOk(['delete', '--force', id])).direct);
  assert.ok(!fs.existsSync(path.join(root, id)));
  assert.notEqual(spawnSync('crun', ['--root', path.join(root, '.executor', 'crun'), 'state', id]).status, 0, 'crun no longer knows it');
});

test('empty global values and a root with .. go to node, as node reads them (an empty root is the working directory)', async () => {
  const id = containerId('direct-empty');
  await launchOk(['create', '--bundle', sleeper, id]);
  await launchOk(['start', id]);
  // node refuses an empty log format; the launcher must not take it as the default.
  for (const globals of [['--log-format='], ['--log-format', '']]) {
    const r = await launch([...globals, 'kill', id, 'CONT']);
    assert.equal(r.direct, false, globals.join(' '));
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /invalid log-format/);
  }
  // An empty root is node's working directory, not `/`.
  for (const globals of [['--root='], ['--root', '']]) {
    const r = await launch([...globals, 'kill', id, 'CONT'], {}, { bare: true, cwd: root });
    assert.equal(r.direct, false, globals.join(' '));
    assert.equal(r.code, 0, r.stderr);
  }
  // A root with `..` after a symlink: node reads it by name (another dir, without the container),
  // the kernel after the link (this root); the launcher must not act where node would not.
  const elsewhere = fs.mkdtempSync(path.join(scratch, 'elsewhere-'));
  fs.symlinkSync(path.join(root, '.executor'), path.join(elsewhere, 'link'));
  const dotdot = await launch(['--root', path.join(elsewhere, 'link') + '/..', 'kill', id, 'KILL'], {}, { bare: true });
  assert.equal(dotdot.direct, false);
  assert.notEqual(dotdot.code, 0, dotdot.stderr);
  assert.equal(await statusOf(id), 'running');
  assert.ok((await launchOk(['delete', '--force', id])).direct);
  assert.ok(noTrace(root, id));
});

test('a direct state is node\'s document byte for byte, whatever runc escapes', async () => {
  const id = containerId('direct-escape');
  // Go's JSON escapes <, > and & (and U+2028) where node prints them as they are.
  const odd = makeBundle(scratch, 'odd-annotations', ['sleep', '1000'], (s) => { s.annotations = { 'org.example.query': 'a<b && c>d \u2028' }; });
  await launchOk(['create', '--bundle', odd, id]);
  const direct = await launchOk(['state', id]);
  const viaNode = await launchOk(['state', id], { HUTCH_DIRECT: '0' });
  assert.equal(direct.stdout, viaNode.stdout);
  assert.equal((JSON.parse(direct.stdout) as { annotations: Record<string, string> }).annotations['org.example.query'], 'a<b && c>d \u2028');
  assert.ok((await launchOk(['delete', '--force', id])).direct);
  assert.ok(noTrace(root, id));
});

test('a container with hooks (runc was shown the caller\'s bundle) goes direct too, with the caller\'s bundle in state', async () => {
  const id = containerId('direct-hooks');
  const hooked = makeBundle(scratch, 'hooked', ['sleep', '1000'], (s) => { s.hooks = { poststop: [{ path: '/bin/true' }] }; });
  await launchOk(['create', '--bundle', hooked, id]);
  const direct = await launchOk(['state', id]);
  assert.ok(direct.direct, direct.stderr);
  assert.equal((JSON.parse(direct.stdout) as { bundle: string }).bundle, hooked);
  assert.equal(direct.stdout, (await launchOk(['state', id], { HUTCH_DIRECT: '0' })).stdout);
  assert.ok((await launchOk(['delete', '--force', id])).direct);
  assert.ok(noTrace(root, id));
});

test('a state node answers (a lost container) leaves the caller\'s log as it was', async () => {
  const id = containerId('direct-lost-log');
  await launchOk(['create', '--bundle', sleeper, id]);
  // A container the executor lost: node answers (stopped), and the caller's log gets no error line
  // from a state the launcher tried first (node asks the executor without the caller's flags).
  spawnSync('runc', ['--root', path.join(root, '.executor', 'runc'), 'delete', '--force', id]);
  const log = path.join(scratch, 'state.log');
  const lost = await launchOk(['--log', log, '--log-format', 'json', 'state', id]);
  assert.equal((JSON.parse(lost.stdout) as { status: string }).status, 'stopped');
  const logged = fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '';
  fs.rmSync(log, { force: true });
  assert.equal(logged, '', 'a state that succeeds leaves the caller\'s log as it was');
  await launchOk(['delete', id]);
  assert.ok(noTrace(root, id));
});

/**
 * A delete that waits for a container's lock while that container is deleted and one of the same
 * id made and locked: the waiting delete must not act on the new one while its lock is held.
 */
async function deleteWaitingOnRemadeContainer(env: NodeJS.ProcessEnv): Promise<void> {
  const id = containerId('direct-again');
  await launchOk(['create', '--bundle', sleeper, id]);
  const holdOld = spawn('flock', [path.join(root, id, 'lock'), 'sleep', '1.5'], { stdio: 'ignore' });
  const oldReleased = new Promise((r) => holdOld.on('exit', r));
  await new Promise((r) => setTimeout(r, 200));
  const deleting = launch(['delete', id], env);
  await new Promise((r) => setTimeout(r, 300));
  // Meanwhile the container goes and one of the same id and bundle is made: the same direct file.
  assert.equal(spawnSync('runc', ['--root', path.join(root, '.executor', 'runc'), 'delete', '--force', id]).status, 0);
  fs.rmSync(path.join(root, id), { recursive: true, force: true });
  await launchOk(['create', '--bundle', sleeper, id]);
  const holdNew = spawn('flock', [path.join(root, id, 'lock'), 'sleep', '1.5'], { stdio: 'ignore' });
  const newReleased = new Promise((r) => holdNew.on('exit', r));
  await oldReleased;
  await new Promise((r) => setTimeout(r, 400));
  // The waiting delete holds the old container's lock, not the new one's: it must not act on it.
  const untouched = fs.existsSync(path.join(root, id, 'record.json'));
  await newReleased;
  const r = await deleting;
  assert.ok(untouched, 'the new container was deleted while its lock was held');
  assert.equal(r.code, 0, r.stderr);
  assert.ok(noTrace(root, id));
}

test('a direct delete that waited on a container deleted and made again meanwhile leaves it to node (and its lock)', async () => {
  await deleteWaitingOnRemadeContainer({});
});

test('so does node\'s delete: it takes the lock the container\'s dir has now', async () => {
  await deleteWaitingOnRemadeContainer({ HUTCH_DIRECT: '0' });
});

test('create and run --detach write the ready record and the direct file while they hold the container\'s lock', async () => {
  const runtime = new OciRuntime({ root, executor: 'runc', executorGlobals: [] });
  const ids = [containerId('direct-locked'), containerId('direct-locked-run')];
  const unlocked: string[] = [];
  const rename = fs.renameSync;
  // Every write of a record or direct file is a rename into the container's dir: is its lock held then?
  fs.renameSync = (from: fs.PathLike, to: fs.PathLike) => {
    const file = String(to);
    if (file.startsWith(path.resolve(root)) && /\/(record\.json|direct)$/.test(file)) {
      const probe = FileLock.tryAcquire(path.join(path.dirname(file), 'lock'), 'exclusive');
      if (probe) {
        unlocked.push(path.basename(file));
        probe.release();
      }
    }
    rename(from, to);
  };
  try {
    assert.equal(await runtime.create('create', { id: ids[0]!, bundle: sleeper }), 0);
    assert.equal(await runtime.create('run', { id: ids[1]!, bundle: sleeper, detach: true }), 0);
  } finally {
    fs.renameSync = rename;
  }
  assert.deepEqual(unlocked, [], 'written without the lock: a delete waiting for it could come between');
  for (const id of ids) {
    assert.ok(fs.existsSync(path.join(root, id, 'direct')), id);
    assert.ok((await launchOk(['delete', '--force', id])).direct);
    assert.ok(noTrace(root, id));
  }
});

test('a run --detach whose container was deleted while the executor made it leaves no container behind', async () => {
  const runtime = new OciRuntime({ root, executor: 'runc', executorGlobals: [] });
  const id = containerId('direct-rund');
  const realRunc = spawnSync('sh', ['-c', 'command -v runc'], { encoding: 'utf8' }).stdout.trim();
  const wrapDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-runc-wrap-'));
  // The end state of a delete that came before runc knew the id (runc: "does not exist"): hutch's
  // dir is gone, and runc's `run --detach` made the container all the same.
  fs.writeFileSync(path.join(wrapDir, 'runc'), [
    '#!/bin/sh',
    `case " $* " in *" run "*) '${realRunc}' "$@"; rc=$?; rm -rf '${path.join(root, id)}'; exit $rc ;; esac`,
    `exec '${realRunc}' "$@"`, '',
  ].join('\n'), { mode: 0o755 });
  const savedPath = process.env.PATH;
  process.env.PATH = `${wrapDir}:${savedPath ?? ''}`;
  try {
    assert.equal(await runtime.create('run', { id, bundle: sleeper, detach: true }), 0);
  } finally {
    process.env.PATH = savedPath;
    fs.rmSync(wrapDir, { recursive: true, force: true });
    const left = noTrace(root, id);
    spawnSync(realRunc, ['--root', path.join(root, '.executor', 'runc'), 'delete', '--force', id]);
    assert.ok(left, 'runc still runs a container hutch has no record of');
  }
});
