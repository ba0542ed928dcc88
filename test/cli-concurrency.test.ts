// Concurrency: many hutch processes at once never corrupt state or leave anything behind.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { cleanRoot, hutch, hutchOk, leftovers, makeRoot } from './helpers.js';

let root: string;
before(() => { root = makeRoot('conc'); });
after(async () => {
  await cleanRoot(root);
  assert.deepEqual(leftovers(root), []);
});

test('20 parallel hutch run --rm all succeed with their own output', async () => {
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) =>
    hutch(root, ['run', '--rm', '--name', `par-${i}`, 'busybox', '--', 'sh', '-c', `echo "$(hostname) ${i}"`], { timeoutMs: 120_000 })));
  results.forEach((r, i) => {
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `par-${i} ${i}\n`);
  });
  assert.equal((await hutchOk(root, ['ls', '-q'])).trim(), '');
  assert.deepEqual(fs.readdirSync(path.join(root, 'sandboxes')), []);
  assert.deepEqual(fs.readdirSync(path.join(root, 'names')), []);
});

test('parallel creates of one name: exactly one wins, the rest get a clear error', async () => {
  const results = await Promise.all(Array.from({ length: 6 }, () => hutch(root, ['create', '--name', 'contested', 'busybox'])));
  const winners = results.filter((r) => r.code === 0);
  assert.equal(winners.length, 1);
  for (const r of results.filter((x) => x.code !== 0)) assert.match(r.stderr, /already in use/);
  await hutchOk(root, ['rm', '-f', 'contested']);
});

for (const stale of ['', 'deadbeefdeadbeef']) {
  test(`parallel creates over a stale claim (${stale ? 'of a sandbox that is gone' : 'an empty file a killed claim left'}): exactly one wins`, async () => {
    for (let round = 0; round < 3; round++) {
      fs.mkdirSync(path.join(root, 'names'), { recursive: true });
      fs.writeFileSync(path.join(root, 'names', 'stale-claim'), stale);
      const results = await Promise.all(Array.from({ length: 6 }, () => hutch(root, ['create', '--name', 'stale-claim', 'busybox'])));
      const winners = results.filter((r) => r.code === 0);
      assert.equal(winners.length, 1, results.map((r) => r.stderr).join(''));
      for (const r of results.filter((x) => x.code !== 0)) assert.match(r.stderr, /already in use|being claimed/);
      assert.equal(fs.readFileSync(path.join(root, 'names', 'stale-claim'), 'utf8'), winners[0]!.stdout.trim());
      await hutchOk(root, ['rm', '-f', 'stale-claim']);
    }
  });
}

test('concurrent verbs on one sandbox: exec, ps, stats, ls, pause/resume and stop interleave safely', async () => {
  const id = (await hutchOk(root, ['run', '-d', 'busybox'])).trim();
  const ops = await Promise.all([
    ...Array.from({ length: 8 }, (_, i) => hutch(root, ['exec', id, '--', 'echo', String(i)])),
    hutch(root, ['ps', id]), hutch(root, ['stats', id]), hutch(root, ['ls']), hutch(root, ['ls', '--json']),
  ]);
  for (const r of ops) assert.equal(r.code, 0, r.stderr);
  const [p, q] = await Promise.all([hutch(root, ['pause', id]), hutch(root, ['pause', id])]);
  assert.equal([p, q].filter((r) => r.code === 0).length, 1, 'one pause wins, the other sees paused');
  await hutchOk(root, ['resume', id]);
  const stops = await Promise.all([hutch(root, ['stop', '-t', '1', id]), hutch(root, ['stop', '-t', '1', id]), hutch(root, ['rm', '-f', id])]);
  assert.ok(stops.every((r) => r.code === 0 || /no such sandbox/.test(r.stderr)), stops.map((r) => r.stderr).join(' | '));
  assert.match((await hutch(root, ['ls', '--json'])).stdout, /^\[\]/);
});
