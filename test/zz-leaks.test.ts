// Runs last: after the whole suite, nothing of hutch's is left on this machine.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { hutchCgroups } from './helpers.js';

test('no mount, cgroup, process, overlay dir or state dir of hutch is left after the suite', () => {
  const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => /hutch/.test(l));
  assert.deepEqual(mounts, [], 'mounts');
  assert.deepEqual(hutchCgroups(), [], 'cgroups');
  const procs = spawnSync('pgrep', ['-af', 'hutch'], { encoding: 'utf8' }).stdout.split('\n')
    .filter((l) => l && !l.includes('node --test') && !l.includes('zz-leaks') && !/^\d+ (bash|sh) /.test(l) && !l.includes('hutch-agent-test'));
  assert.deepEqual(procs.filter((l) => /runc|agent|sleep|hutch\.mjs|\bserve\b|zstd/.test(l)), [], 'processes (hutchd, layer decompressors included)');
  const registries = spawnSync('pgrep', ['-a', 'docker-registry'], { encoding: 'utf8' }).stdout.trim();
  assert.equal(registries, '', 'registries the image tests started');
  const testRoots = fs.readdirSync('/run').filter((n) => n.startsWith('hutch-test-'));
  assert.deepEqual(testRoots, [], 'test state roots in /run');
  const tmp = fs.readdirSync('/tmp').filter((n) => n.startsWith('hutch-'));
  assert.deepEqual(tmp, [], 'temp dirs in /tmp');
  const links = spawnSync('ip', ['-o', 'link'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => /hutch|hv[0-9a-f]|htap/.test(l));
  assert.deepEqual(links, [], 'network links');
});
