// The `hutch` entry with a V8 code cache (dist/bundle/boot.cjs): the cache is written, used, and a
// corrupt one is rejected and replaced, with the same results every time.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { HUTCH } from './helpers.js';

const boot = path.join(path.dirname(HUTCH), 'boot.cjs');
const cache = `${HUTCH}.v8cache`;

function hutchViaBoot(args: string[]) {
  return spawnSync(process.execPath, [boot, ...args], { encoding: 'utf8' });
}

test('boot.cjs writes a code cache, uses it, and replaces a corrupt one', () => {
  fs.rmSync(cache, { force: true });
  const first = hutchViaBoot(['--version']);
  assert.equal(first.status, 0, first.stderr);
  assert.match(first.stdout, /^hutch \d/);
  assert.ok(fs.existsSync(cache), 'the cache is written at exit');
  const written = fs.statSync(cache).mtimeMs;
  assert.equal(hutchViaBoot(['--version']).stdout, first.stdout);
  assert.equal(fs.statSync(cache).mtimeMs, written, 'a good cache is used, not rewritten');
  fs.writeFileSync(cache, 'not a v8 cache');
  const third = hutchViaBoot(['--version']);
  assert.equal(third.stdout, first.stdout);
  assert.notEqual(fs.readFileSync(cache, 'utf8').slice(0, 14), 'not a v8 cache', 'a rejected cache is replaced');
  const bad = hutchViaBoot(['frobnicate']);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /unknown verb/);
});
