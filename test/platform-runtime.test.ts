// The agent runtime under the data root: built once per node binary, and a build that a killed
// (or out-of-disk) hutch left half-done is cleaned up by the next one.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { ensureAgentRuntime } from '../src/platform/container/runtime.js';

test('abandoned runtime builds (<key>.tmp-<pid> of a dead pid) are removed; a live builder\'s is kept', () => {
  // Under /var/tmp: on the same filesystem as node, so the runtime is hard links, not copies.
  const dataRoot = fs.mkdtempSync('/var/tmp/hutch-runtime-test-');
  try {
    const runtimeDir = path.join(dataRoot, 'runtime');
    const deadPid = spawnSync('sh', ['-c', 'echo $$'], { encoding: 'utf8' }).stdout.trim();
    const dead = path.join(runtimeDir, `0123456789abcdef.tmp-${deadPid}`);
    const live = path.join(runtimeDir, `fedcba9876543210.tmp-1`);
    for (const d of [dead, live]) fs.mkdirSync(path.join(d, 'lib'), { recursive: true });
    fs.writeFileSync(path.join(dead, 'lib', 'partial'), 'x');
    const rt = ensureAgentRuntime(dataRoot);
    assert.ok(fs.existsSync(path.join(rt.dir, '.complete')));
    assert.ok(!fs.existsSync(dead), 'the dead build is gone');
    assert.ok(fs.existsSync(live), 'a live pid\'s build is left alone');
    assert.deepEqual(fs.readdirSync(runtimeDir).sort(), [path.basename(rt.dir), path.basename(live)].sort());
  } finally {
    fs.rmSync(dataRoot, { recursive: true, force: true });
  }
});
