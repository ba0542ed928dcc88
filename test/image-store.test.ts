// The image store's bookkeeping through the CLI: names and untagging, rmi of images sandboxes use
// (refused; -f keeps the sandbox running and its layers), prune (dangling images, unused layers and
// blobs, crash leftovers; never a layer in use), listing and inspect output.
import test, { before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { hutch } from './helpers.js';
import { buildImage, dockerArchive, storeLeftovers, type BuiltImage } from './image-store-kit.js';
import { imageCliFixture } from './image-cli-fixture.js';

const fx = imageCliFixture('imgstore');
const { h, ok } = fx;
let tmp: string;
let store: string;
let base: BuiltImage['layers'][number];
before(() => ({ tmp, store, base } = fx));
let n = 0;
/** Loads an image of the busybox base plus `files` under `tags`; returns it. */
async function load(files: Record<string, string>, tags: string[]): Promise<BuiltImage> {
  const img = buildImage([{ blob: base.blob, diffId: base.diffId }, Object.entries(files).map(([name, content]) => ({ name, content }))]);
  const file = path.join(tmp, `img-${n++}.tar`);
  fs.writeFileSync(file, dockerArchive([{ image: img, tags }]));
  await ok(['load', '-i', file]);
  return img;
}
const layerDirs = (): string[] => fs.readdirSync(path.join(store, 'layers')).sort();
async function inspect(ref: string): Promise<{ id: string; names: string[]; layerDirs: string[] }> {
  return (JSON.parse(await ok(['image', 'inspect', ref])) as { id: string; names: string[]; layerDirs: string[] }[])[0]!;
}

test('an image with two names: rmi of one only untags, rmi of the last removes the image and its own layer', async () => {
  const img = await load({ two: 'two names\n' }, ['first:1', 'second:1']);
  const info = await inspect('first:1');
  assert.deepEqual(info.names, ['docker.io/library/first:1', 'docker.io/library/second:1']);
  assert.equal(await ok(['rmi', 'first:1']), 'Untagged: docker.io/library/first:1\n');
  assert.equal((await inspect(img.id)).names.join(), 'docker.io/library/second:1');
  const top = path.basename(info.layerDirs[0]!);
  assert.ok(layerDirs().includes(top));
  const out = await ok(['rmi', 'second:1']);
  assert.match(out, /^Untagged: docker\.io\/library\/second:1\nDeleted: sha256:[0-9a-f]{64}\n/);
  assert.match(out, /Deleted layer: sha256:/);
  assert.ok(!layerDirs().includes(top), 'its own layer went');
  const r = await h(['rmi', 'second:1']);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, 'hutch: image second:1 not found\n');
  assert.deepEqual(storeLeftovers(store), []);
});

test('rmi of an image a sandbox uses is refused; -f removes it, the sandbox keeps running and its layers stay until prune after rm', async () => {
  await load({ used: 'in use\n' }, ['used:1']);
  const dirs = (await inspect('used:1')).layerDirs;
  const id = (await ok(['run', '-d', 'used:1', '--', 'sleep', '600'])).trim();
  const refused = await h(['rmi', 'used:1']);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, new RegExp(`used by sandbox ${id}`));
  assert.match(await ok(['rmi', '-f', 'used:1']), /Deleted: sha256:/);
  assert.doesNotMatch(await ok(['images']), /used/);
  assert.equal(await ok(['exec', id, '--', 'cat', '/used']), 'in use\n', 'the sandbox still runs on its layers');
  await ok(['image', 'prune']);
  for (const d of dirs) assert.ok(fs.existsSync(d), `prune kept ${d}, which a sandbox uses`);
  assert.equal(await ok(['exec', id, '--', 'cat', '/used']), 'in use\n');
  await ok(['rm', '-f', id]);
  const out = await ok(['image', 'prune']);
  assert.match(out, /Deleted layer: sha256:/);
  assert.ok(!fs.existsSync(dirs[0]!), 'the top layer went once no sandbox used it');
});

test('an image a sandbox uses, with two names: rmi of one short name only untags and is not refused', async () => {
  await load({ twice: 'x\n' }, ['twice-a:1', 'twice-b:1']);
  const id = (await ok(['run', '-d', 'twice-a:1', '--', 'sleep', '600'])).trim();
  assert.match(await ok(['rmi', 'twice-a:1']), /Untagged: docker.io\/library\/twice-a:1/);
  assert.deepEqual((await inspect('twice-b:1')).names, ['docker.io/library/twice-b:1']);
  const refused = await h(['rmi', 'twice-b:1']);
  assert.match(refused.stderr, new RegExp(`used by sandbox ${id}`), 'the last name is the image: refused while in use');
  await ok(['rm', '-f', id]);
  await ok(['rmi', 'twice-b:1']);
});

test('prune removes dangling images and crash leftovers, keeps named images and what they use', async () => {
  const named = await load({ keep: 'kept\n' }, ['keep:1']);
  const dangling = await load({ gone: 'dangling\n' }, []);
  const before = (await ok(['images', '-q'])).split('\n').filter(Boolean);
  assert.ok(before.includes(dangling.id.slice(7, 19)));
  // What a crashed pull or load leaves: a partial blob, a work dir, a half-renamed layer, a lone blob.
  fs.writeFileSync(path.join(store, 'blobs', 'sha256', `${'a'.repeat(64)}.partial`), 'partial');
  fs.writeFileSync(path.join(store, 'blobs', 'sha256', 'b'.repeat(64)), 'lone blob');
  fs.mkdirSync(path.join(store, 'tmp', 'load-1-dead'));
  fs.mkdirSync(path.join(store, 'layers', 'c'.repeat(64)));
  const out = await ok(['image', 'prune']);
  assert.match(out, new RegExp(`Deleted: ${dangling.id}`));
  assert.match(out, /Deleted layer: sha256:c{64}/);
  assert.match(out, /Deleted \d+ unused blobs?/);
  assert.deepEqual(storeLeftovers(store), []);
  assert.ok(!fs.existsSync(path.join(store, 'blobs', 'sha256', 'b'.repeat(64))));
  const after = (await ok(['images', '-q'])).split('\n').filter(Boolean);
  assert.ok(after.includes(named.id.slice(7, 19)) && !after.includes(dangling.id.slice(7, 19)));
  assert.equal(await ok(['run', '--rm', 'keep:1', '--', 'cat', '/keep']), 'kept\n', 'the named image still runs');
  assert.equal(await ok(['image', 'prune']), '', 'a second prune finds nothing');
});

test('a load sweeps work dirs of processes that are gone (a killed pull), not those of live ones', async () => {
  const dead = path.join(store, 'tmp', 'unpack-0123456789ab-4194300-deadbeef');
  const live = path.join(store, 'tmp', `load-${process.pid}-cafef00d`);
  fs.mkdirSync(path.join(dead, 'layer', 'half'), { recursive: true });
  fs.mkdirSync(live);
  await load({ sweep: 'x\n' }, ['sweep:1']);
  assert.ok(!fs.existsSync(dead), 'the dead process\'s work dir went');
  assert.ok(fs.existsSync(live), 'a live process\'s work dir stays');
  fs.rmdirSync(live);
});

test('images --json and -q, image ls, and inspect errors', async () => {
  const img = await load({ j: 'json\n' }, ['json:1', 'json:2']);
  const all = JSON.parse(await ok(['images', '--json'])) as { id: string; names: string[]; layers: unknown[]; config: { Env?: string[] } }[];
  const rec = all.find((r) => r.id === img.id)!;
  assert.deepEqual(rec.names, ['docker.io/library/json:1', 'docker.io/library/json:2']);
  assert.equal(rec.layers.length, 2);
  assert.deepEqual(rec.config.Env, ['PATH=/bin:/usr/bin']);
  assert.ok((await ok(['images', '-q'])).split('\n').includes(img.id.slice(7, 19)));
  assert.match(await ok(['image', 'ls']), /docker\.io\/library\/json\s+2\s+/);
  const r = await h(['image', 'inspect', 'nope:1']);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, 'hutch: image nope:1 not found\n');
  const bad = await h(['image', 'frobnicate']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /unknown subcommand "frobnicate"/);
  assert.match((await h(['rmi'])).stderr, /missing image/);
});

test('a small image store: the reserve is proportional, configurable, and a layer over what is left says what is short', async () => {
  const small = path.join(tmp, 'small-store');
  fs.mkdirSync(small);
  assert.equal(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64m', 'hutch-test-small-store', small]).status, 0);
  try {
    const img = buildImage([{ blob: base.blob, diffId: base.diffId }, [{ name: 'etc/small', content: 'fits\n' }]]);
    const file = path.join(tmp, 'small.tar');
    fs.writeFileSync(file, dockerArchive([{ image: img, tags: ['small/fits:1'] }]));
    // 5% of 64 MiB is kept: the layers fit (a fixed 512 MiB reserve refused every layer here).
    const loaded = await hutch(fx.root, ['load', '-i', file], { env: { HUTCH_IMAGE_ROOT: small } });
    assert.equal(loaded.code, 0, loaded.stderr);
    await hutch(fx.root, ['rmi', 'small/fits:1'], { env: { HUTCH_IMAGE_ROOT: small } });
    await hutch(fx.root, ['image', 'prune'], { env: { HUTCH_IMAGE_ROOT: small } });
    const refused = await hutch(fx.root, ['load', '-i', file], { env: { HUTCH_IMAGE_ROOT: small, HUTCH_IMAGE_STORE_RESERVE: '63m' } });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /needs more than the \d+ bytes it may take uncompressed: the image store's filesystem \(.*\) has [\d.]+ MiB free, of which 63 MiB is kept in reserve \(HUTCH_IMAGE_STORE_RESERVE\)/);
    assert.doesNotMatch(refused.stderr, /limit of 0 bytes/);
    const bad = await hutch(fx.root, ['load', '-i', file], { env: { HUTCH_IMAGE_ROOT: small, HUTCH_IMAGE_STORE_RESERVE: 'lots' } });
    assert.match(bad.stderr, /invalid HUTCH_IMAGE_STORE_RESERVE "lots"/);
  } finally {
    spawnSync('umount', [small]);
  }
});
