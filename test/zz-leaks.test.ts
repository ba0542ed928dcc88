// Runs last: after the whole suite, nothing that this run made is left on the machine (other
// sandboxes, registries and test runs on the host are not its own; see test/leaks.ts).
import test from 'node:test';
import assert from 'node:assert/strict';
import { runLeftovers } from './leaks.js';
import { suiteRun } from './suite-run.js';

test('no state root, process, mount, cgroup, link, temp dir or id slot that this run made is left after the suite', () => {
  const run = suiteRun();
  const left = runLeftovers(run);
  assert.deepEqual(left.roots, [], 'test state roots');
  assert.deepEqual(left.processes, [], 'processes the suite started (registries, daemons, sandboxes, layer decompressors included)');
  assert.deepEqual(left.mounts, [], 'mounts');
  assert.deepEqual(left.cgroups, [], 'cgroups');
  assert.deepEqual(left.links, [], 'network links');
  assert.deepEqual(left.tmp, [], 'temp dirs in /tmp');
  assert.deepEqual(left.idSlots, [], 'private id slots');
  run.remove();
});
