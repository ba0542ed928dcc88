// Executors and host facts: crun as well as runc; a sandbox keeps the executor it was made with; hutch info.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
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
