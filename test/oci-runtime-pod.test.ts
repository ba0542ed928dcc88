// hutch as an OCI runtime: hooks at the right points, --console-socket, hutch's profile on top of
// the caller's spec, and pod sandboxes from the CRI annotations (shared namespaces, teardown).
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { makeRoot } from './helpers.js';
import { mountsUnder } from './e2e/host.js';
import { mountCallerView } from '../src/engine/oci/caller-view.js';
import { cleanOciRoot, containerId, makeBundle, makeScratch, noTrace, oci, ociOk, removeScratch } from './oci-runtime-kit.js';
import type { Spec } from '../src/oci/index.js';

let root: string;
let scratch: string;
before(() => {
  root = makeRoot('ocipod');
  scratch = makeScratch();
});
after(async () => {
  const left = await cleanOciRoot(root);
  removeScratch(scratch);
  assert.deepEqual(left, []);
});

for (const executor of ['runc', 'crun']) {
  test(`hooks run once each, in order, with the state on stdin: its bundle is the caller's, as state's (${executor})`, async () => {
    const log = path.join(scratch, `hooks-${executor}.log`);
    const hook = (kind: string, file: string) => ({ path: '/bin/sh', args: ['sh', '-c', `s=$(cat); echo "${kind} $s" >> ${file}`], timeout: 10 });
    const bundle = makeBundle(scratch, `hooks-${executor}`, ['sleep', '1000'], (s) => {
      s.hooks = {
        prestart: [hook('prestart', log)], createRuntime: [hook('createRuntime', log)], createContainer: [hook('createContainer', log)],
        // startContainer runs inside the container: its file is in the container's rootfs.
        startContainer: [hook('startContainer', '/start.log')], poststart: [hook('poststart', log)], poststop: [hook('poststop', log)],
      };
    });
    const config = fs.readFileSync(path.join(bundle, 'config.json'), 'utf8');
    const id = containerId('hooks');
    await ociOk(root, ['--executor', executor, 'create', '--bundle', bundle, id], { files: true });
    // runc was shown the caller's bundle through a view (mounts under the root): gone once created.
    assert.deepEqual(mountsUnder(root), []);
    assert.equal((JSON.parse(await ociOk(root, ['state', id])) as { bundle: string }).bundle, bundle);
    await ociOk(root, ['start', id]);
    await ociOk(root, ['delete', '--force', id]);
    const entries = fs.readFileSync(log, 'utf8').trim().split('\n').map((l) => {
      const [kind, ...json] = l.split(' ');
      return { kind: kind!, state: JSON.parse(json.join(' ')) as { id: string; status: string; bundle: string } };
    });
    assert.deepEqual(entries.map((e) => e.kind), ['prestart', 'createRuntime', 'createContainer', 'poststart', 'poststop']);
    for (const e of entries) assert.deepEqual([e.kind, e.state.id, e.state.bundle], [e.kind, id, bundle]);
    // crun 1.8 says created where runc says creating.
    assert.match(entries.find((e) => e.kind === 'createRuntime')!.state.status, executor === 'runc' ? /^creating$/ : /^(creating|created)$/);
    // runc 1.1 hands poststart the state it had before the start (created).
    assert.match(entries.find((e) => e.kind === 'poststart')!.state.status, /^(created|running)$/);
    assert.equal(entries.find((e) => e.kind === 'poststop')!.state.status, 'stopped');
    const start = fs.readFileSync(path.join(bundle, 'rootfs', 'start.log'), 'utf8').trim().split('\n');
    assert.equal(start.length, 1);
    const started = JSON.parse(start[0]!.slice('startContainer '.length)) as { id: string; bundle: string };
    // crun 1.8 hands startContainer "/" as the bundle, whatever bundle it was given.
    assert.deepEqual([started.id, started.bundle], [id, executor === 'runc' ? bundle : '/']);
    assert.equal(fs.readFileSync(path.join(bundle, 'config.json'), 'utf8'), config, 'the caller\'s config.json is never written');
    assert.ok(noTrace(root, id));
  });
}

test('a caller view left mounted (hutch killed while runc made the container) goes with delete; the caller\'s bundle stays whole', async () => {
  const bundle = makeBundle(scratch, 'stale-view', ['sleep', '1000'], (s) => { s.hooks = { poststop: [{ path: '/bin/true' }] }; });
  const id = containerId('stale');
  await ociOk(root, ['create', '--bundle', bundle, id], { files: true });
  const dir = path.join(root, id);
  // What a create cut short between mounting the view and taking it down leaves.
  mountCallerView(dir, bundle, path.join(dir, 'bundle', 'config.json'));
  assert.equal(mountsUnder(root).length, 2);
  const before = fs.readdirSync(bundle).sort();
  await ociOk(root, ['delete', '--force', id]);
  assert.deepEqual(mountsUnder(root), []);
  assert.ok(noTrace(root, id));
  assert.deepEqual(fs.readdirSync(bundle).sort(), before);
  assert.ok(fs.existsSync(path.join(bundle, 'rootfs', 'bin', 'busybox')));
});

// Node cannot receive fds over a unix socket; python's socket.recv_fds can.
const RECEIVER = `
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(1)
print("listening", flush=True)
c, _ = s.accept()
msg, fds, flags, addr = socket.recv_fds(c, 1024, 4)
fd = fds[0]
print("tty" if os.isatty(fd) else "not-a-tty", flush=True)
buf = b""
while b"hello-tty" not in buf:
    chunk = os.read(fd, 1024)
    if not chunk: break
    buf += chunk
print("got " + buf.decode(errors="replace").strip(), flush=True)
`;

test('--console-socket hands the pty master to the caller', async () => {
  const socketPath = path.join(scratch, 'console.sock');
  const receiver = spawn('python3', ['-c', RECEIVER, socketPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  receiver.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<number | null>((resolve) => receiver.on('close', resolve));
  try {
    while (!out.includes('listening')) await new Promise((r) => setTimeout(r, 10));
    const bundle = makeBundle(scratch, 'tty', ['sh', '-c', 'echo hello-tty; sleep 1000'], (s) => { s.process!.terminal = true; });
    const id = containerId('tty');
    await ociOk(root, ['create', '--console-socket', socketPath, '--bundle', bundle, id]);
    await ociOk(root, ['start', id]);
    assert.equal(await exited, 0);
    assert.match(out, /^listening\ntty\ngot hello-tty/);
    await ociOk(root, ['delete', '--force', id]);
  } finally {
    receiver.kill();
  }
});

test('the profile adds seccomp only when asked and where the caller set none; without dev.hutch.profile or with off, nothing', async () => {
  const seccompOf = async (edit: (s: Spec) => void) => {
    const bundle = makeBundle(scratch, `profile-${Math.random().toString(16).slice(2, 8)}`, ['sh', '-c', 'grep ^Seccomp: /proc/self/status'], edit);
    const r = await oci(root, ['run', '--bundle', bundle, containerId('prof')], { files: true });
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  };
  // hutch's `spec` template asks for the default profile: without that annotation, nothing is added.
  assert.match(await seccompOf(() => {}), /Seccomp:\s+2/);
  assert.match(await seccompOf((s) => { delete s.annotations; }), /Seccomp:\s+0/);
  assert.match(await seccompOf((s) => { s.annotations = { 'dev.hutch.profile': 'default' }; }), /Seccomp:\s+2/);
  assert.match(await seccompOf((s) => { s.annotations = { 'dev.hutch.profile': 'strict' }; }), /Seccomp:\s+2/);
  assert.match(await seccompOf((s) => { s.annotations = { 'dev.hutch.profile': 'off' }; }), /Seccomp:\s+0/);
  const bad = makeBundle(scratch, 'badprofile', ['true'], (s) => { s.annotations = { 'dev.hutch.profile': 'lax' }; });
  const r = await oci(root, ['create', '--bundle', bad, containerId('prof')], { files: true });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /dev\.hutch\.profile.*want off, default or strict/);
});

test('pod: containers join the sandbox\'s network and ipc namespaces; deleting the sandbox deletes the pod', async () => {
  const sandboxId = containerId('pod');
  const sandbox = makeBundle(scratch, 'pod-sandbox', ['sleep', '1000'], (s) => {
    s.annotations = { 'io.kubernetes.cri.container-type': 'sandbox', 'io.kubernetes.cri.sandbox-id': sandboxId };
  });
  await ociOk(root, ['run', '-d', '--bundle', sandbox, sandboxId], { files: true });
  const containerd = makeBundle(scratch, 'pod-a', ['sleep', '1000'], (s) => {
    s.annotations = { 'io.kubernetes.cri.container-type': 'container', 'io.kubernetes.cri.sandbox-id': sandboxId };
  });
  const crio = makeBundle(scratch, 'pod-b', ['sleep', '1000'], (s) => {
    s.annotations = { 'io.kubernetes.cri-o.ContainerType': 'container', 'io.kubernetes.cri-o.SandboxID': sandboxId };
  });
  const [a, b, alone] = [containerId('poda'), containerId('podb'), containerId('alone')];
  await ociOk(root, ['run', '-d', '--bundle', containerd, a], { files: true });
  await ociOk(root, ['run', '-d', '--bundle', crio, b], { files: true });
  const outside = makeBundle(scratch, 'alone', ['sleep', '1000']);
  await ociOk(root, ['run', '-d', '--bundle', outside, alone], { files: true });
  const ns = async (id: string) => ociOk(root, ['exec', id, 'sh', '-c', 'readlink /proc/self/ns/net; readlink /proc/self/ns/ipc']);
  const sandboxNs = await ns(sandboxId);
  assert.equal(await ns(a), sandboxNs);
  assert.equal(await ns(b), sandboxNs);
  assert.notEqual((await ns(alone)).split('\n')[0], sandboxNs.split('\n')[0]);

  const refused = await oci(root, ['delete', sandboxId]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /that is not stopped: running/);
  assert.equal(JSON.parse(await ociOk(root, ['state', a])).status, 'running', 'a refused delete leaves the pod alone');
  await ociOk(root, ['delete', '--force', sandboxId]);
  for (const id of [sandboxId, a, b]) {
    assert.match((await oci(root, ['state', id])).stderr, /container does not exist/);
    assert.ok(noTrace(root, id));
  }
  assert.equal(JSON.parse(await ociOk(root, ['state', alone])).status, 'running', 'a container outside the pod stays');
  await ociOk(root, ['delete', '--force', alone]);

  const orphan = containerId('orphan');
  const r = await oci(root, ['create', '--bundle', containerd, orphan], { files: true });
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`pod sandbox ${sandboxId} does not exist`));
  assert.ok(noTrace(root, orphan));
});
