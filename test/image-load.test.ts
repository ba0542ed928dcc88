// hutch load: docker-archives, oci-archives and OCI layout dirs built at test time (busybox-static plus
// files) are imported, listed and run, with the image's Env, WorkingDir and Cmd applied.
import test, { before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { HUTCH } from './helpers.js';
import { buildImage, dockerArchive, ociArchive, storeLeftovers, writeOciLayout, type BuiltImage } from './image-store-kit.js';
import { imageCliFixture } from './image-cli-fixture.js';

const fx = imageCliFixture('load');
const { h, ok } = fx;
let root: string;
let tmp: string;
let store: string;
let base: BuiltImage['layers'][number];
before(() => ({ root, tmp, store, base } = fx));
/** An image: the busybox base plus one layer of files. */
function image(files: Record<string, string>, runtime = {}): BuiltImage {
  return buildImage([{ blob: base.blob, diffId: base.diffId }, Object.entries(files).map(([name, content]) => ({ name, content }))], runtime);
}
function write(name: string, data: Buffer): string {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, data);
  return file;
}

test('a docker-archive loads under its RepoTags, is listed, and runs with the image Env, WorkingDir and Cmd', async () => {
  const img = image({ 'hello': 'hello from docker-archive\n', 'work/marker': 'x' }, {
    Env: ['PATH=/bin', 'GREETING=hi from env'], WorkingDir: '/work', Cmd: ['/bin/sh', '-c', 'echo "$GREETING"; pwd'],
  });
  const file = write('docker.tar', dockerArchive([{ image: img, tags: ['hello:1'] }]));
  assert.equal(await ok(['load', '-i', file]), 'Loaded image: docker.io/library/hello:1\n');
  const list = await ok(['images']);
  assert.match(list, /^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE\n/);
  assert.match(list, new RegExp(`docker\\.io/library/hello\\s+1\\s+${img.id.slice(7, 19)}\\s`));
  assert.equal(await ok(['run', '--rm', 'hello:1', '--', 'cat', '/hello']), 'hello from docker-archive\n');
  assert.equal(await ok(['run', '--rm', 'hello:1']), 'hi from env\n/work\n', 'Cmd, Env and WorkingDir of the image apply');
  assert.deepEqual(storeLeftovers(store), []);
});

test('the image User applies: a name from the image /etc/passwd, or uid:gid', async () => {
  const named = image({ 'who': 'x' }, { User: 'app' });
  const numeric = image({ 'who': 'y' }, { User: '4321:765' });
  await ok(['load', '-i', write('user.tar', dockerArchive([{ image: named, tags: ['user:named'] }, { image: numeric, tags: ['user:numeric'] }]))]);
  assert.equal(await ok(['run', '--rm', 'user:named', '--', 'sh', '-c', 'id -u; id -g']), '1234\n2345\n');
  assert.equal(await ok(['run', '--rm', 'user:numeric', '--', 'sh', '-c', 'id -u; id -g']), '4321\n765\n');
});

test('a gzip oci-archive loads under its ref.name annotation; the shared base layer is stored once', async () => {
  const img = image({ 'hello': 'hello from oci-archive\n' });
  const file = write('oci.tar.gz', ociArchive([{ image: img, refName: 'example.com/team/app:2.0' }], { gzip: true }));
  assert.equal(await ok(['load', '-i', file]), 'Loaded image: example.com/team/app:2.0\n');
  assert.equal(await ok(['run', '--rm', 'example.com/team/app:2.0', '--', 'cat', '/hello']), 'hello from oci-archive\n');
  const [a, b] = JSON.parse(await ok(['image', 'inspect', 'hello:1', 'example.com/team/app:2.0'])) as { layerDirs: string[] }[];
  assert.equal(a!.layerDirs[1], b!.layerDirs[1], 'both images use one base layer dir');
  assert.notEqual(a!.layerDirs[0], b!.layerDirs[0]);
  const all = JSON.parse(await ok(['images', '--json'])) as { layers: { chainId: string }[] }[];
  const chains = new Set(all.flatMap((i) => i.layers.map((l) => l.chainId.slice(7))));
  assert.deepEqual(fs.readdirSync(path.join(store, 'layers')).sort(), [...chains].sort(), 'one dir per distinct layer chain, however many images use it');
  assert.equal(chains.size, all.length + 1, 'every image (base + one layer) shares the one base layer');
});

test('an OCI layout dir with a bare tag loads unnamed, or under --name; an id finds it', async () => {
  const img = image({ 'hello': 'hello from a layout dir\n' }, { Entrypoint: ['/bin/cat'], Cmd: ['/hello'] });
  const dir = path.join(tmp, 'layout');
  writeOciLayout(dir, [{ image: img, refName: 'v1' }]);
  assert.equal(await ok(['load', '-i', dir]), `Loaded image: ${img.id}\n`);
  assert.match(await ok(['images']), new RegExp(`<none>\\s+<none>\\s+${img.id.slice(7, 19)}`));
  assert.equal(await ok(['run', '--rm', img.id.slice(7, 19)]), 'hello from a layout dir\n', 'Entrypoint + Cmd, found by a short id');
  assert.equal(await ok(['load', '-i', dir, '--name', 'layout:v1']), 'Loaded image: docker.io/library/layout:v1\n');
  assert.equal(await ok(['run', '--rm', 'layout:v1']), 'hello from a layout dir\n');
});

test('load -i - reads a gzip docker-archive from stdin', async () => {
  const img = image({ 'hello': 'hello from stdin\n' });
  const r = spawnSync(process.execPath, [HUTCH, '--root', root, 'load', '-i', '-'], {
    input: dockerArchive([{ image: img, tags: ['localhost:5000/stdin/img:latest'] }], { gzip: true }),
    env: { ...process.env, HUTCH_IMAGE_ROOT: store }, encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'Loaded image: localhost:5000/stdin/img:latest\n');
  assert.equal(await ok(['run', '--rm', 'localhost:5000/stdin/img', '--', 'cat', '/hello']), 'hello from stdin\n');
});

test('a docker-archive with two images sharing layers (later ones as symlinks, as old docker save wrote) loads both', async () => {
  const one = image({ 'one': '1\n' });
  const two = buildImage([{ blob: base.blob, diffId: base.diffId }, { blob: one.layers[1]!.blob, diffId: one.layers[1]!.diffId }, [{ name: 'two', content: '2\n' }]]);
  const file = write('linked.tar', dockerArchive([{ image: one, tags: ['linked:1'] }, { image: two, tags: ['linked:2'] }]));
  assert.equal(await ok(['load', '-i', file]), 'Loaded image: docker.io/library/linked:1\nLoaded image: docker.io/library/linked:2\n');
  assert.equal(await ok(['run', '--rm', 'linked:2', '--', 'cat', '/one', '/two']), '1\n2\n');
  const [a, b] = JSON.parse(await ok(['image', 'inspect', 'linked:1', 'linked:2'])) as { layerDirs: string[] }[];
  assert.deepEqual(b!.layerDirs.slice(1), a!.layerDirs, 'image two sits on image one\'s layer dirs');
});

test('an OCI layout whose index entry is a multi-platform index loads this machine\'s image', async () => {
  const amd = image({ arch: 'amd64\n' });
  const arm = image({ arch: 'arm64\n' });
  const index = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [
      { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: arm.manifestDigest, size: arm.manifestBytes.length, platform: { os: 'linux', architecture: 'arm64' } },
      { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: amd.manifestDigest, size: amd.manifestBytes.length, platform: { os: 'linux', architecture: 'amd64' } },
    ],
  }));
  const dir = path.join(tmp, 'multi');
  writeOciLayout(dir, [{ image: amd }, { image: arm }]);
  const indexDigest = `sha256:${createHash('sha256').update(index).digest('hex')}`;
  fs.writeFileSync(path.join(dir, 'blobs', 'sha256', indexDigest.slice(7)), index);
  fs.writeFileSync(path.join(dir, 'index.json'), JSON.stringify({
    schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.index.v1+json', digest: indexDigest, size: index.length, annotations: { 'io.containerd.image.name': 'docker.io/team/multi:1' } }],
  }));
  assert.equal(await ok(['load', '-i', dir]), 'Loaded image: docker.io/team/multi:1\n');
  assert.equal(await ok(['run', '--rm', 'team/multi:1', '--', 'cat', '/arch']), 'amd64\n');
});

test('archives written by skopeo (docker-archive with symlinked layers, oci-archive, OCI layout) load and run', async (t) => {
  if (spawnSync('skopeo', ['--version']).status !== 0) { t.skip('skopeo is not installed (scripts/setup.sh installs it)'); return; }
  const img = image({ 'hello': 'made by skopeo\n' }, { Env: ['PATH=/bin', 'FROM=skopeo'] });
  const dir = path.join(tmp, 'sk-layout');
  writeOciLayout(dir, [{ image: img, refName: 'v1' }]);
  const copy = (dest: string): void => {
    const r = spawnSync('skopeo', ['copy', '-q', `oci:${dir}:v1`, dest], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  };
  copy(`docker-archive:${path.join(tmp, 'sk-docker.tar')}:sk/dock:1`);
  copy(`oci-archive:${path.join(tmp, 'sk-oci.tar')}:sk/oci:2`);
  assert.equal(await ok(['load', '-i', path.join(tmp, 'sk-docker.tar')]), 'Loaded image: docker.io/sk/dock:1\n');
  assert.equal(await ok(['load', '-i', path.join(tmp, 'sk-oci.tar')]), 'Loaded image: docker.io/sk/oci:2\n');
  assert.equal(await ok(['run', '--rm', 'sk/dock:1', '--', 'cat', '/hello']), 'made by skopeo\n');
  assert.equal(await ok(['run', '--rm', 'sk/oci:2', '--', 'sh', '-c', 'echo $FROM']), 'skopeo\n');
  assert.equal((await inspectIds(['sk/dock:1', 'sk/oci:2'])).join(), [img.id, img.id].join(), 'one image, two names');
});

async function inspectIds(refs: string[]): Promise<string[]> {
  return (JSON.parse(await ok(['image', 'inspect', ...refs])) as { id: string }[]).map((r) => r.id);
}

/** Loads `file`, expects a failure whose message matches, and checks nothing was registered or left. */
async function refused(file: string, message: RegExp): Promise<void> {
  const before = await ok(['images', '-q']);
  const r = await h(['load', '-i', file]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, message);
  assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  assert.equal(await ok(['images', '-q']), before, 'no image registered');
  assert.deepEqual(storeLeftovers(store), []);
}

test('a blob that does not match its digest is refused; nothing registered, no temp files', async () => {
  const img = image({ 'hello': 'original\n' });
  const tar = ociArchive([{ image: img, refName: 'bad/digest:1' }]);
  // Change one byte of the top layer's content inside the archive (the blob keeps its name).
  const at = tar.indexOf(img.layers[1]!.blob.subarray(20, 60));
  assert.ok(at > 0);
  tar[at] = tar[at]! ^ 0xff;
  await refused(write('bad-digest.tar', tar), /EINTEGRITY|does not match|digest/);
});

test('a layer whose content does not match the config diff_id is refused', async () => {
  const good = image({ 'hello': 'x\n' });
  const other = image({ 'hello': 'y\n' });
  const img = buildImage([{ blob: base.blob, diffId: base.diffId }, { blob: good.layers[1]!.blob, diffId: other.layers[1]!.diffId }]);
  await refused(write('bad-diffid.tar', ociArchive([{ image: img, refName: 'bad/diffid:1' }])), /diff.?id/i);
});

test('a hostile layer (an entry escaping with ../) is refused and writes nothing outside the store', async () => {
  const img = buildImage([{ blob: base.blob, diffId: base.diffId }, [{ name: '../../../escaped-by-layer', content: 'pwned' }]]);
  await refused(write('hostile.tar', dockerArchive([{ image: img, tags: ['hostile:1'] }])), /escap|outside|\.\./);
  for (const dir of [tmp, path.dirname(store), '/']) assert.ok(!fs.existsSync(path.join(dir, 'escaped-by-layer')));
});

test('an archive entry leaving the archive, garbage, and a missing file get one clear line each', async () => {
  const img = image({ 'hello': 'x\n' });
  await refused(write('escape.tar', dockerArchive([{ image: img, tags: ['esc:1'] }], { extra: [{ name: '../outside', content: 'x' }] })), /leaves the archive/);
  await refused(write('garbage.tar', Buffer.from('this is not a tar archive at all\n'.repeat(40))), /not a readable tar|not a docker-archive/);
  await refused(write('empty-dir.tar', ociArchive([]).subarray(0, 0)), /empty archive|not a readable tar/);
  const r = await h(['load', '-i', path.join(tmp, 'no-such-file.tar')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no-such-file\.tar: no such file/);
});
