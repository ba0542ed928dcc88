import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { detectCgroupMode, findExecutable, probeHost, type Feature } from '../src/linux/index.js';

test('probeHost reports every feature with a reason, quickly', async () => {
  const start = Date.now();
  const p = await probeHost();
  const took = Date.now() - start;
  assert.ok(took < 3000, `probe took ${took} ms`);
  assert.equal(p.kernel, os.release());
  const features: [string, Feature][] = Object.entries(p).filter(([k]) => k !== 'kernel') as [string, Feature][];
  assert.equal(features.length, 12);
  for (const [name, f] of features) {
    assert.equal(typeof f.available, 'boolean', name);
    assert.ok(f.detail.length > 0, `${name} has a detail`);
  }
  assert.equal(p.cgroups.available, true);
  assert.equal(p.cgroups.mode, detectCgroupMode());
  assert.ok(p.cgroups.controllers.length > 0);
  // What the probe says agrees with the machine.
  assert.equal(p.kvm.available, fs.existsSync('/dev/kvm'));
  assert.equal(p.tun.available, fs.existsSync('/dev/net/tun'));
  assert.equal(p.fuse.available, fs.existsSync('/dev/fuse'));
  assert.equal(p.seccomp.available, fs.existsSync('/proc/sys/kernel/seccomp/actions_avail'));
  assert.equal(p.overlayfs.available, /\toverlay$/m.test(fs.readFileSync('/proc/filesystems', 'utf8')));
  for (const tool of ['runc', 'crun', 'criu'] as const) {
    const t = p[tool];
    assert.equal(t.path !== undefined, findExecutable(tool) !== null, tool);
    if (t.available) assert.match(t.version ?? '', /^\d+\.\d+/, tool);
  }
});

test('findExecutable searches PATH and the sbin dirs', () => {
  assert.equal(findExecutable('sh')?.endsWith('/sh'), true);
  assert.equal(findExecutable('hutch-no-such-tool'), null);
});
