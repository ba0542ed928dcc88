// The one-shot path stays small: `hutch run busybox` loads the engine but never the image module's
// bundle (registry, unpack, store), which only a sandbox made from an image needs.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cleanRoot, hutch, leftovers, makeRoot } from './helpers.js';

let root: string;
let tmp: string;
before(() => {
  root = makeRoot('bundles');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-bundles-'));
});
after(async () => {
  await cleanRoot(root);
  fs.rmSync(tmp, { recursive: true, force: true });
  assert.deepEqual(leftovers(root), []);
});

test('hutch run --rm busybox loads engine.cjs and run.cjs, not image.cjs', async () => {
  const probe = path.join(tmp, 'probe.cjs');
  const out = path.join(tmp, 'loaded.json');
  fs.writeFileSync(probe, `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(out)}, JSON.stringify(Object.keys(require.cache))));\n`);
  const r = await hutch(root, ['run', '--rm', 'busybox', '--', 'true'], { env: { NODE_OPTIONS: `--require ${probe}` } });
  assert.equal(r.code, 0, r.stderr);
  const loaded = (JSON.parse(fs.readFileSync(out, 'utf8')) as string[]).map((f) => path.basename(f));
  assert.ok(loaded.includes('engine.cjs') && loaded.includes('run.cjs'), `loaded: ${loaded.join(' ')}`);
  assert.ok(!loaded.includes('image.cjs'), `image.cjs was loaded: ${loaded.join(' ')}`);
});
