// Executors and host facts: crun as well as runc; a sandbox keeps the executor it was made with; hutch info.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { cleanRoot, hutch, hutchOk, leftovers, makeRoot } from './helpers.js';

let root: string;
before(() => { root = makeRoot('exec'); });
after(async () => {
  await cleanRoot(root);
  assert.deepEqual(leftovers(root), []);
});

test('crun runs one-shot sandboxes with the same hardening and limits', async () => {
  const out = await hutchOk(root, ['--executor', 'crun', 'run', '--rm', '--memory', '64m', '--pids', '50', 'busybox', '--', 'sh', '-c',
    'cat /proc/self/uid_map; cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max; grep Seccomp: /proc/self/status']);
  const lines = out.trim().split('\n').map((l) => l.trim());
  assert.match(lines[0]!, /^0\s+\d+\s+65536$/);
  assert.equal(lines[1], String(64 * 1024 * 1024));
  assert.equal(lines[2], '50');
  assert.match(lines[3]!, /Seccomp:\s+2/);
});

test('a crun sandbox with its agent; later verbs use crun without being told', async () => {
  const id = (await hutchOk(root, ['--executor', 'crun', 'run', '-d', 'busybox'])).trim();
  assert.equal(await hutchOk(root, ['exec', id, '--', 'echo', 'via agent']), 'via agent\n');
  await hutchOk(root, ['pause', id]);
  await hutchOk(root, ['resume', id]);
  const ls = JSON.parse(await hutchOk(root, ['ls', '--json'])) as { id: string; status: string }[];
  assert.equal(ls.find((s) => s.id === id)?.status, 'running');
  await hutchOk(root, ['rm', '-f', id]);
  assert.match((await hutch(root, ['--executor', 'nope', 'run', '--rm', 'busybox', '--', 'true'])).stderr, /unknown executor "nope"/);
});

test('hutch info reports versions, cgroup mode, executor and hardening support', async () => {
  const info = JSON.parse(await hutchOk(root, ['info', '--json'])) as {
    executor: { name: string; available: boolean; version?: string };
    cgroups: { mode: string };
    hardening: Record<string, { available: boolean; detail: string }>;
  };
  assert.equal(info.executor.name, 'runc');
  assert.equal(info.executor.available, true);
  assert.match(info.executor.version ?? '', /\d+\.\d+/);
  assert.ok(['v1', 'v2', 'hybrid'].includes(info.cgroups.mode));
  // This host supports idmapped mounts (kernel 6.18, ext4): the probe must say so.
  assert.equal(info.hardening.privateIdRanges?.available, true, info.hardening.privateIdRanges?.detail);
  for (const k of ['userNamespace', 'seccomp', 'overlayWritableLayer', 'cgroupLimits', 'privateIdRanges']) {
    assert.equal(typeof info.hardening[k]?.available, 'boolean', k);
    assert.ok(info.hardening[k]!.detail.length > 0, k);
  }
  const text = await hutchOk(root, ['info']);
  assert.match(text, /^executor:\s+runc/m);
});

test('hutch info reports the platforms: the default one, runsc\'s version, gVisor\'s platforms here and why the others do not work', async () => {
  const info = JSON.parse(await hutchOk(root, ['info', '--json'], { env: { HUTCH_PLATFORM: 'gvisor' } })) as {
    platform: string;
    platforms: { container: { available: boolean }; gvisor: { available: boolean; summary: string; runsc: { version?: string; used: string; platforms: { name: string; works: boolean; detail: string }[] } } };
  };
  assert.equal(info.platform, 'gvisor', '$HUTCH_PLATFORM is the default of new sandboxes');
  assert.equal(info.platforms.container.available, true);
  assert.match(info.platforms.gvisor.summary, /sentry/);
  const runsc = info.platforms.gvisor.runsc;
  if (!info.platforms.gvisor.available) return; // runsc not installed: the summary says so (tested by its absence elsewhere)
  assert.match(runsc.version ?? '', /\d{8}/);
  assert.equal(runsc.used, 'ptrace');
  const ptrace = runsc.platforms.find((p) => p.name === 'ptrace');
  assert.equal(ptrace?.works, true);
  for (const p of runsc.platforms.filter((x) => !x.works)) assert.ok(p.detail.length > 10, `${p.name} says why it does not work`);
  if (fs.existsSync('/sys/module/kvm_pvm')) assert.match(runsc.platforms.find((p) => p.name === 'kvm')!.detail, /PVM nested host/);
  const text = await hutchOk(root, ['info']);
  assert.match(text, /^gvisor:\s+runsc \S+ .*--platform=ptrace/m);
  assert.match(text, /^  ptrace\s+yes .*\(used\)$/m);
  assert.match((await hutch(root, ['run', '--rm', '--platform', 'warp', 'busybox', '--', 'true'])).stderr, /unknown platform "warp": use container, gvisor/);
  assert.match((await hutch(root, ['run', '--rm', '--platform', 'gvisor', '--pids', '50', 'busybox', '--', 'true'])).stderr, /use --pids 128 or more/);
  assert.match((await hutch(root, ['run', '--rm', '--platform', 'gvisor', '--network', 'host', 'busybox', '--', 'true'])).stderr, /no host network yet/);
  assert.match((await hutch(root, ['run', '--rm', '--platform', 'gvisor', '--userns', 'private', 'busybox', '--', 'true'])).stderr, /cannot give a sandbox a private id range/);
});
