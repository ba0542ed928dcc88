// Image sizes on disk: each unpacked layer's size (st_size of every non-dir entry, hard links once,
// as docker counts it) is recorded when it is unpacked; `hutch images` shows it, --json and inspect
// give compressed, shared and unique sizes too. Layers of an older store (no record) are measured
// once and recorded; damaged records are measured again or give a clear error.
import test, { before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { buildImage, dockerArchive, type BuiltImage } from './image-store-kit.js';
import { imageCliFixture } from './image-cli-fixture.js';
import type { ImageWithSizes, LayerRecord } from '../src/image/types.js';
import { formatBytes } from '../src/cli/progress.js';
import { pushImage, startRegistry } from './image/registry-kit.js';
import { makeLayer } from './image/tar-kit.js';

const fx = imageCliFixture('imgsize');
const { h, ok } = fx;
let tmp: string;
let store: string;
let base: BuiltImage['layers'][number];
before(() => ({ tmp, store, base } = fx));
let n = 0;
/** Loads an image of the busybox base plus `top` under `tag`. */
async function load(top: Parameters<typeof buildImage>[0][number], tag: string): Promise<BuiltImage> {
  const img = buildImage([{ blob: base.blob, diffId: base.diffId }, top]);
  const file = path.join(tmp, `img-${n++}.tar`);
  fs.writeFileSync(file, dockerArchive([{ image: img, tags: [tag] }]));
  await ok(['load', '-i', file]);
  fs.rmSync(file);
  return img;
}
const listed = async (): Promise<ImageWithSizes[]> => JSON.parse(await ok(['images', '--json'])) as ImageWithSizes[];
const byName = (all: ImageWithSizes[], name: string): ImageWithSizes => all.find((i) => i.names.includes(`docker.io/library/${name}`))!;
const layerDir = (chainId: string): string => path.join(store, 'layers', chainId.slice(7));
const recordFile = (chainId: string): string => path.join(store, 'layer-records', `${chainId.slice(7)}.json`);
const readRecord = (chainId: string): LayerRecord => JSON.parse(fs.readFileSync(recordFile(chainId), 'utf8')) as LayerRecord;

/** The size of a layer dir by find(1), independent of hutch: st_size of every non-dir, each inode once. */
function findSize(dir: string): number {
  const out = execFileSync('find', [dir, '-mindepth', '1', '-not', '-type', 'd', '-printf', '%i %s\n'], { encoding: 'utf8' });
  const inodes = new Map<string, number>();
  for (const line of out.trim().split('\n').filter(Boolean)) {
    const [ino, size] = line.split(' ');
    inodes.set(ino!, Number(size));
  }
  return [...inodes.values()].reduce((a, b) => a + b, 0);
}

// Content whose size on disk is known: 6 + 1000 (its hard link counts once) + 0 + a 6-byte symlink
// target; the whiteout (a 0/0 char device), the fifo and the dirs count 0.
const TOP_ENTRIES = [
  { name: 'data/' },
  { name: 'data/hello', content: 'hello\n' },
  { name: 'data/big', content: 'b'.repeat(1000) },
  { name: 'data/big-link', type: 'link' as const, linkname: 'data/big' },
  { name: 'data/empty', content: '' },
  { name: 'data/link', type: 'symlink' as const, linkname: 'target' },
  { name: 'data/pipe', type: 'fifo' as const },
  { name: 'etc/.wh.group' },
];
const TOP_SIZE = 6 + 1000 + 6;


test('sizes on disk are recorded at unpack and equal a walk of each layer dir; shared and unique sizes', async () => {
  await load(TOP_ENTRIES, 'size-a:1');
  await load([{ name: 'b-only', content: 'x'.repeat(5000) }], 'size-b:1');
  const all = await listed();
  const ia = byName(all, 'size-a:1');
  const ib = byName(all, 'size-b:1');
  for (const img of [ia, ib]) {
    for (const l of img.layers) {
      assert.equal(l.size, findSize(layerDir(l.chainId)), `layer ${l.chainId} of ${img.names[0]}`);
      assert.equal(readRecord(l.chainId).size, l.size, 'recorded at unpack');
    }
    assert.equal(img.size, img.layers.reduce((s, l) => s + l.size!, 0));
    assert.equal(img.missingLayers, undefined);
  }
  assert.equal(ia.layers[1]!.size, TOP_SIZE, 'file bytes + symlink target, hard link once, whiteout/fifo/dirs 0');
  assert.equal(ib.layers[1]!.size, 5000);
  const baseSize = ia.layers[0]!.size!;
  assert.ok(baseSize >= fs.statSync('/bin/busybox').size, 'the base holds busybox');
  // Compressed: the stored blobs (a docker-archive holds plain tars); the base layer is shared, the top ones are not.
  const blobSize = (digest: string): number => fs.statSync(path.join(store, 'blobs', 'sha256', digest.slice(7))).size;
  assert.deepEqual(ia.layers.map((l) => l.compressedSize), ia.layers.map((l) => blobSize(l.digest)));
  assert.equal(ia.compressedSize, ia.layers.reduce((s, l) => s + l.compressedSize, 0));
  assert.deepEqual(ia.layers.map((l) => l.shared), [true, false]);
  assert.deepEqual([ia.sharedSize, ia.uniqueSize], [baseSize, TOP_SIZE]);
  assert.deepEqual([ib.sharedSize, ib.uniqueSize], [baseSize, 5000]);
  // The table shows the unpacked size in human units; inspect shows per-layer sizes.
  const table = await ok(['images']);
  assert.match(table, new RegExp(`docker\\.io/library/size-a +1 +${ia.id.slice(7, 19)} .* ${formatBytes(ia.size).replace('.', '\\.')}\\n`));
  const [inspected] = JSON.parse(await ok(['image', 'inspect', 'size-b:1'])) as (ImageWithSizes & { layerDirs: string[] })[];
  assert.deepEqual(inspected!.layers.map((l) => [l.size, l.compressedSize, l.shared]), ib.layers.map((l) => [l.size, l.compressedSize, l.shared]));
  assert.deepEqual([inspected!.size, inspected!.compressedSize, inspected!.sharedSize, inspected!.uniqueSize], [ib.size, ib.compressedSize, ib.sharedSize, ib.uniqueSize]);
});

test('a layer stored without a size (an older store) is measured once and recorded', async () => {
  const [bottom, top] = byName(await listed(), 'size-a:1').layers.map((l) => l.chainId) as [string, string];
  const topRecord = readRecord(top);
  const { size: _dropped, ...noSize } = topRecord;
  fs.writeFileSync(recordFile(top), JSON.stringify(noSize));
  fs.rmSync(recordFile(bottom)); // a store from before records existed has no file at all
  const first = byName(await listed(), 'size-a:1');
  assert.deepEqual(first.layers.map((l) => l.size), [findSize(layerDir(bottom)), TOP_SIZE]);
  assert.equal(readRecord(top).size, TOP_SIZE, 'the measured size is recorded');
  assert.equal(readRecord(bottom).size, first.layers[0]!.size);
  assert.equal(readRecord(top).diffId, topRecord.diffId);
  const ino = fs.statSync(recordFile(top)).ino;
  // Afterwards the record is used as it is: not rewritten, not measured again.
  await listed();
  assert.equal(fs.statSync(recordFile(top)).ino, ino, 'the record was not rewritten');
  fs.writeFileSync(recordFile(top), JSON.stringify({ ...topRecord, size: 777 }));
  assert.equal(byName(await listed(), 'size-a:1').layers[1]!.size, 777, 'read from the record, no walk');
  fs.writeFileSync(recordFile(top), JSON.stringify(topRecord));
  assert.deepEqual(fs.readdirSync(path.join(store, 'layer-records')).filter((e) => !/^[0-9a-f]{64}\.json$/.test(e)), [], 'no temp files left');
});

test('damaged layer records are measured again and rewritten; odd ones give a one-line error', async () => {
  const top = byName(await listed(), 'size-a:1').layers[1]!.chainId;
  const other = byName(await listed(), 'size-b:1').layers[1]!.chainId;
  const damaged = ['', '{', 'null', '[]', '"x"', JSON.stringify({ version: 1, chainId: top, size: -5 }),
    JSON.stringify({ version: 1, chainId: top, size: '1012' }), JSON.stringify({ version: 1, chainId: top, size: 1.5 }),
    JSON.stringify({ version: 1, chainId: other, size: 3 })];
  for (const text of damaged) {
    fs.writeFileSync(recordFile(top), text);
    assert.equal(byName(await listed(), 'size-a:1').layers[1]!.size, TOP_SIZE, `record ${JSON.stringify(text)}`);
    assert.equal(readRecord(top).size, TOP_SIZE, `record ${JSON.stringify(text)} rewritten`);
    assert.equal(readRecord(top).chainId, top);
  }
  // A dir where the record belongs: not ours to remove; a clear error naming it.
  fs.rmSync(recordFile(top));
  fs.mkdirSync(recordFile(top));
  for (const args of [['images'], ['images', '--json'], ['image', 'inspect', 'size-a:1']]) {
    const r = await h(args);
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stdout}`);
    assert.match(r.stderr, /^hutch: layer record \/\S+\.json is a directory, not a file: remove it/);
    assert.ok(r.stderr.includes(recordFile(top)));
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
  fs.rmdirSync(recordFile(top));
  assert.equal(byName(await listed(), 'size-a:1').layers[1]!.size, TOP_SIZE);
});

test('a damaged image record is a clear error; a missing layer dir is shown, not a crash', async () => {
  const c = await load([{ name: 'c-only', content: 'c'.repeat(300) }], 'size-c:1');
  const recordPath = path.join(store, 'images', `${c.id.slice(7)}.json`);
  const good = fs.readFileSync(recordPath, 'utf8');
  const parsed = JSON.parse(good) as { layers: unknown };
  for (const layers of [null, 'x', [null], [{ digest: 'sha256:1', chainId: 'nope', size: 1 }]]) {
    fs.writeFileSync(recordPath, JSON.stringify({ ...parsed, layers }));
    const r = await h(['images']);
    assert.equal(r.code, 1, `layers ${JSON.stringify(layers)}: ${r.stdout}`);
    assert.match(r.stderr, /^hutch: \/\S+\.json is damaged: .*remove the image and pull or load it again\n$/);
    assert.ok(r.stderr.includes(recordPath), r.stderr);
  }
  fs.writeFileSync(recordPath, good);
  // The top layer dir of c gone (a damaged store): listed with what is there, and said so.
  const ic = byName(await listed(), 'size-c:1');
  const topDir = layerDir(ic.layers[1]!.chainId);
  const moved = path.join(tmp, 'moved-layer');
  fs.renameSync(topDir, moved);
  try {
    const now = byName(await listed(), 'size-c:1');
    assert.equal(now.layers[1]!.size, null);
    assert.equal(now.missingLayers, 1);
    assert.equal(now.size, ic.layers[0]!.size);
    assert.match(await ok(['images']), /docker\.io\/library\/size-c +1 .* \(1 layer missing\)\n/);
  } finally {
    fs.renameSync(moved, topDir);
  }
  assert.equal(byName(await listed(), 'size-c:1').size, ic.size);
  await ok(['rmi', 'size-c:1']);
});

test('rmi removes the records of the layers it deletes; prune removes records without a layer', async () => {
  const ia = byName(await listed(), 'size-a:1');
  const [bottom, top] = ia.layers.map((l) => l.chainId) as [string, string];
  const out = await ok(['rmi', 'size-a:1']);
  assert.match(out, new RegExp(`Deleted layer: ${top}`));
  assert.ok(!fs.existsSync(recordFile(top)), 'its own layer record went with it');
  assert.ok(fs.existsSync(recordFile(bottom)), 'the shared base stays with its record');
  const ib = byName(await listed(), 'size-b:1');
  assert.deepEqual([ib.sharedSize, ib.uniqueSize], [0, ib.size], 'the base is no longer shared');
  // Orphans: a record of a layer that is gone, a dead writer's temp file, a stray name.
  const orphan = path.join(store, 'layer-records', `${'a'.repeat(64)}.json`);
  const deadTemp = `${recordFile(bottom)}.tmp-999999999-abcdef`;
  const stray = path.join(store, 'layer-records', 'stray');
  for (const f of [orphan, deadTemp, stray]) fs.writeFileSync(f, '{}');
  await ok(['image', 'prune']);
  for (const f of [orphan, deadTemp, stray]) assert.ok(!fs.existsSync(f), `${f} pruned`);
  assert.deepEqual(fs.readdirSync(path.join(store, 'layer-records')).sort(), ib.layers.map((l) => `${l.chainId.slice(7)}.json`).sort());
  await ok(['rmi', 'size-b:1']);
  await ok(['image', 'prune']);
  assert.deepEqual(fs.readdirSync(path.join(store, 'layer-records')), [], 'nothing left');
  assert.deepEqual(fs.readdirSync(path.join(store, 'layers')), []);
});

test('a pulled image: compressedSize is the gzip blobs of its manifest, size the unpacked layers', async () => {
  const reg = await startRegistry();
  try {
    const pushed = await pushImage(reg.host, 'size/pulled', '1', { layers: [base.blob, makeLayer([{ name: 'zeros', content: Buffer.alloc(200_000) }])] });
    await ok(['pull', '-q', `${reg.host}/size/pulled:1`]);
    const [img] = await listed();
    assert.deepEqual(img!.layers.map((l) => l.compressedSize), pushed.manifest.layers.map((l) => l.size));
    assert.equal(img!.layers[1]!.size, 200_000);
    assert.ok(img!.layers[1]!.compressedSize < 10_000, 'zeros compress well: the two sizes differ');
    for (const l of img!.layers) assert.equal(readRecord(l.chainId).size, findSize(layerDir(l.chainId)), 'recorded by the pull');
    assert.deepEqual([img!.sharedSize, img!.uniqueSize], [0, img!.size]);
    await ok(['rmi', img!.id]);
    assert.deepEqual(fs.readdirSync(path.join(store, 'layer-records')), []);
  } finally {
    await reg.stop();
  }
});
