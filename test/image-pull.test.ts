// hutch pull against a real docker-registry on loopback: by tag and by digest, then run; concurrent
// pulls download each blob once; corrupt and hostile layers are refused with nothing registered or
// left; a pull killed mid-download resumes.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { cleanRoot, cleanUpAll, HUTCH, hutch, leftovers, makeRoot, type Result } from './helpers.js';
import { FileLock } from '../src/linux/index.js';
import { pushImage, pushIndex, startFront, startRegistry, type PushedImage, type RegistryFront, type TestRegistry } from './image/registry-kit.js';
import { buildImage, busyboxEntries, storeLeftovers } from './image-store-kit.js';
import { makeLayer } from './image/tar-kit.js';

let root: string;
let tmp: string;
let reg: TestRegistry;
let front: RegistryFront;
let baseBlob: Buffer;
let hello: PushedImage;
let env: NodeJS.ProcessEnv;

const layer = (files: Record<string, string | Buffer>): Buffer => makeLayer(Object.entries(files).map(([name, content]) => ({ name, content })));

before(async () => {
  root = makeRoot('pull');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-pull-'));
  env = { HUTCH_IMAGE_ROOT: path.join(tmp, 'store'), REGISTRY_AUTH_FILE: path.join(tmp, 'no-auth.json') };
  reg = await startRegistry();
  front = await startFront(reg.host);
  baseBlob = buildImage([busyboxEntries()]).layers[0]!.blob;
  hello = await pushImage(reg.host, 'app/hello', '1', {
    layers: [baseBlob, layer({ hello: 'hello from the registry\n' })],
    runtime: { Env: ['PATH=/bin', 'WHO=pulled'], Cmd: ['/bin/sh', '-c', 'echo "$WHO" in "$(pwd)"'], WorkingDir: '/tmp' },
  });
});
after(() => cleanUpAll(
  () => cleanRoot(root),
  () => front?.stop(),
  () => reg?.stop(),
  () => fs.rmSync(tmp, { recursive: true, force: true }),
  () => assert.deepEqual(leftovers(root), []),
));

const h = (args: string[]): Promise<Result> => hutch(root, args, { env, timeoutMs: 180_000 });
async function ok(args: string[]): Promise<string> {
  const r = await h(args);
  assert.equal(r.code, 0, `hutch ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}
const store = (): string => env.HUTCH_IMAGE_ROOT!;
const idOf = (p: PushedImage): string => p.manifest.config.digest;

test('pull by tag prints the image id; the image lists under its name and runs with its config', async () => {
  const r = await h(['pull', `${reg.host}/app/hello:1`]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${idOf(hello)}\n`);
  assert.match(r.stderr, /Layer [0-9a-f]{12}: Done/, 'plain progress lines when stderr is not a terminal');
  assert.match(await ok(['images']), new RegExp(`${reg.host.replace(/\./g, '\\.')}/app/hello\\s+1\\s+${idOf(hello).slice(7, 19)}`));
  assert.equal(await ok(['run', '--rm', `${reg.host}/app/hello:1`, '--', 'cat', '/hello']), 'hello from the registry\n');
  assert.equal(await ok(['run', '--rm', `${reg.host}/app/hello:1`]), 'pulled in /tmp\n');
  const again = await h(['pull', `${reg.host}/app/hello:1`]);
  assert.equal(again.stdout, `${idOf(hello)}\n`);
  assert.match(again.stderr, /Already exists/, 'a second pull does no work');
});

test('pull by digest, and run by digest: the image records the repo digest', async () => {
  const byDigest = `${reg.host}/app/hello@${hello.digest}`;
  assert.equal(await ok(['pull', '-q', byDigest]), `${idOf(hello)}\n`);
  const [rec] = JSON.parse(await ok(['image', 'inspect', byDigest])) as { repoDigests: string[]; names: string[] }[];
  assert.deepEqual(rec!.repoDigests, [byDigest]);
  assert.equal(await ok(['run', '--rm', byDigest, '--', 'cat', '/hello']), 'hello from the registry\n');
});

test('run with an image not in the store pulls it first', async () => {
  await pushImage(reg.host, 'app/auto', 'latest', { layers: [baseBlob, layer({ auto: 'auto-pulled\n' })] });
  assert.equal(await ok(['run', '--rm', `${reg.host}/app/auto`, '--', 'cat', '/auto']), 'auto-pulled\n');
  assert.match(await ok(['images']), /app\/auto\s+latest/);
});

test('two concurrent pulls of one image: both wait on the blob, one downloads it, both succeed', async () => {
  const big = randomBytes(8 * 1024 * 1024);
  const img = await pushImage(reg.host, 'app/big', 'v1', { layers: [baseBlob, layer({ big }), layer({ small: 'small\n' })] });
  const bigDigest = img.manifest.layers[1]!.digest;
  // Hold the big blob's lock ourselves until both pulls wait for it: then they surely overlap.
  fs.mkdirSync(path.join(store(), 'locks'), { recursive: true });
  const held = FileLock.tryAcquire(path.join(store(), 'locks', `blob-${bigDigest.slice(7)}.lock`), 'exclusive');
  assert.ok(held);
  front.requests.length = 0;
  const name = `${front.host}/app/big:v1`;
  const pulls = [0, 1].map(() => {
    const child = spawn(process.execPath, [HUTCH, '--root', root, 'pull', name], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const p = { out: '', err: '', code: new Promise<number | null>((r) => child.once('close', r)) };
    child.stdout.on('data', (d: Buffer) => { p.out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { p.err += d.toString(); });
    return p;
  });
  const waiting = `Layer ${bigDigest.slice(7, 19)}: Waiting`;
  const deadline = Date.now() + 30_000;
  while (!pulls.every((p) => p.err.includes(waiting)) && Date.now() < deadline) await sleep(20);
  held!.release();
  assert.ok(pulls.every((p) => p.err.includes(waiting)), `both pulls waited for the blob: ${pulls.map((p) => p.err).join(' | ')}`);
  for (const p of pulls) {
    assert.equal(await p.code, 0, p.err);
    assert.equal(p.out, `${idOf(img)}\n`);
  }
  for (const l of img.manifest.layers) {
    const gets = front.requests.filter((q) => q.method === 'GET' && q.path.endsWith(`/blobs/${l.digest}`));
    assert.ok(gets.length <= 1, `blob ${l.digest} fetched ${gets.length} times`);
  }
  assert.equal(front.requests.filter((q) => q.method === 'GET' && q.path.endsWith(`/blobs/${bigDigest}`)).length, 1, 'the big layer was fetched once');
  assert.equal(await ok(['run', '--rm', name, '--', 'cat', '/small']), 'small\n');
});

test('a layer shared by two images is unpacked once: the same layer dir', async () => {
  await pushImage(reg.host, 'app/second', '1', { layers: [baseBlob, layer({ second: '2\n' })] });
  await ok(['pull', '-q', `${reg.host}/app/second:1`]);
  const [a, b] = JSON.parse(await ok(['image', 'inspect', `${reg.host}/app/hello:1`, `${reg.host}/app/second:1`])) as { layerDirs: string[] }[];
  assert.equal(a!.layerDirs.at(-1), b!.layerDirs.at(-1));
  const bases = fs.readdirSync(path.join(store(), 'layers')).filter((d) => d === path.basename(a!.layerDirs.at(-1)!));
  assert.equal(bases.length, 1);
});

test('a tag that moved: pulled again, the old image is left dangling (<none>) and prune removes it', async () => {
  const old = await pushImage(reg.host, 'app/moving', 't', { layers: [baseBlob, layer({ v: 'old\n' })] });
  assert.equal(await ok(['pull', '-q', `${reg.host}/app/moving:t`]), `${idOf(old)}\n`);
  const now = await pushImage(reg.host, 'app/moving', 't', { layers: [baseBlob, layer({ v: 'new\n' })] });
  assert.equal(await ok(['pull', '-q', `${reg.host}/app/moving:t`]), `${idOf(now)}\n`);
  assert.match(await ok(['images']), new RegExp(`<none>\\s+<none>\\s+${idOf(old).slice(7, 19)}`));
  assert.equal(await ok(['run', '--rm', `${reg.host}/app/moving:t`, '--', 'cat', '/v']), 'new\n');
  assert.match(await ok(['image', 'prune']), new RegExp(`Deleted: ${idOf(old)}`));
  const ids = await ok(['images', '-q']);
  assert.ok(!ids.includes(idOf(old).slice(7, 19)) && ids.includes(idOf(now).slice(7, 19)));
  const byDigest = `${reg.host}/app/hello@${hello.digest}`;
  assert.equal((await ok(['image', 'prune'])).includes(idOf(hello)), false, 'an image pulled by digest is not dangling');
  assert.equal(await ok(['run', '--rm', byDigest, '--', 'cat', '/hello']), 'hello from the registry\n');
});

/** Pulls `name`, expects failure matching `message`, and checks nothing new is registered or left. */
async function refused(name: string, message: RegExp, flags: string[] = []): Promise<void> {
  const before = await ok(['images', '-q']);
  const r = await h(['pull', '-q', ...flags, name]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, message);
  assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  assert.equal(await ok(['images', '-q']), before, 'no image registered');
  assert.deepEqual(storeLeftovers(store()), [], 'no temp or partial files');
}

test('pull --platform: an index without it names the platforms it has; a single-platform image of another is refused, not pulled', async () => {
  const blobGets = (): string[] => front.requests.filter((q) => q.method === 'GET' && q.path.includes('/blobs/')).map((q) => q.path);
  const amd = await pushImage(reg.host, 'app/plat', undefined, { layers: [baseBlob, layer({ arch: 'amd64\n' })] });
  const s390 = await pushImage(reg.host, 'app/plat', undefined, { layers: [baseBlob, layer({ arch: 's390x\n' })], platform: { os: 'linux', architecture: 's390x' } });
  await pushIndex(reg.host, 'app/plat', 'multi', [amd, s390]);
  front.requests.length = 0;
  await refused(`${front.host}/app/plat:multi`, /app\/plat:multi has no image for linux\/arm64 \(it has linux\/amd64, linux\/s390x\)$/m, ['--platform', 'linux/arm64']);
  assert.deepEqual(blobGets(), [], 'nothing downloaded');
  assert.equal(await ok(['pull', '-q', '--platform', 'linux/s390x', `${reg.host}/app/plat:multi`]), `${idOf(s390)}\n`, 'a platform the index has is pulled');

  // A single manifest names no platform: its config does. Asked for another, docker refuses it ("does not match the specified platform").
  const arm = await pushImage(reg.host, 'app/armonly', '1', { layers: [baseBlob, layer({ arch: 'arm64\n' })], platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } });
  front.requests.length = 0;
  await refused(`${front.host}/app/armonly:1`, /app\/armonly:1 has no image for linux\/amd64 \(it is a single-platform image for linux\/arm64\/v8\)$/m, ['--platform', 'linux/amd64']);
  assert.deepEqual(blobGets(), [`/v2/app/armonly/blobs/${arm.manifest.config.digest}`], 'only the config was fetched: no layer');
  assert.equal(fs.existsSync(path.join(store(), 'blobs', 'sha256', arm.manifest.config.digest.slice(7))), false, 'and it was not stored');
  await refused(`${reg.host}/app/armonly:1`, /has no image for linux\/arm64\/v7 \(it is a single-platform image for linux\/arm64\/v8\)/, ['--platform', 'linux/arm64/v7']);
  assert.equal(await ok(['pull', '-q', '--platform', 'aarch64', `${reg.host}/app/armonly:1`]), `${idOf(arm)}\n`, 'the platform it has is pulled');
  // Without --platform a single-platform image is pulled whatever its platform, as docker and podman do.
  const s390only = await pushImage(reg.host, 'app/s390only', '1', { layers: [baseBlob, layer({ arch: 's390x\n' })], platform: { os: 'linux', architecture: 's390x' } });
  assert.equal(await ok(['pull', '-q', `${reg.host}/app/s390only:1`]), `${idOf(s390only)}\n`);
});

test('a blob that does not match its digest (corrupted in transit) is refused', async () => {
  const img = await pushImage(reg.host, 'app/corrupt', '1', { layers: [baseBlob, layer({ c: 'corrupt me\n' })] });
  front.faults.corrupt.add(img.manifest.layers[1]!.digest);
  try {
    await refused(`${front.host}/app/corrupt:1`, /digest|EINTEGRITY/i);
  } finally {
    front.faults.corrupt.clear();
  }
});

test('a hostile layer (a ../ escape, a write through a symlink) is refused; nothing written outside the store', async () => {
  const escape = makeLayer([{ name: '../../../../pulled-escape', content: 'pwned' }]);
  await pushImage(reg.host, 'app/hostile', '1', { layers: [baseBlob, escape] });
  await refused(`${reg.host}/app/hostile:1`, /escap|outside|\.\./);
  const through = makeLayer([{ name: 'evil', type: 'symlink', linkname: tmp }, { name: 'evil/through-link', content: 'pwned' }]);
  await pushImage(reg.host, 'app/hostile2', '1', { layers: [baseBlob, through] });
  await refused(`${reg.host}/app/hostile2:1`, /symlink|escap|outside|refus/i);
  assert.ok(!fs.existsSync(path.join(tmp, 'through-link')));
  for (const dir of [tmp, '/', '/tmp']) assert.ok(!fs.existsSync(path.join(dir, 'pulled-escape')));
});

test('a pull killed mid-download resumes where it stopped and succeeds', async () => {
  const big = randomBytes(32 * 1024 * 1024);
  const img = await pushImage(reg.host, 'app/resume', '1', { layers: [baseBlob, layer({ big })] });
  const digest = img.manifest.layers[1]!.digest;
  const partial = path.join(store(), 'blobs', 'sha256', `${digest.slice(7)}.partial`);
  // Every request for the blob is cut after 4 MB: the pull crawls (retrying with back-off) and we kill it.
  front.faults.match = new RegExp(`/blobs/${digest}$`);
  front.faults.cut = { bytes: 4 * 1024 * 1024, count: 1000 };
  const child = spawn(process.execPath, [HUTCH, '--root', root, 'pull', '-q', `${front.host}/app/resume:1`], { env: { ...process.env, ...env }, stdio: 'ignore' });
  const exited = new Promise((r) => child.once('exit', r));
  const deadline = Date.now() + 30_000;
  while (!(fs.existsSync(partial) && fs.statSync(partial).size >= 4 * 1024 * 1024) && Date.now() < deadline) await sleep(10);
  child.kill('SIGKILL');
  await exited;
  const had = fs.statSync(partial).size;
  assert.ok(had > 0 && had < img.layerBlobs[1]!.length, `a partial download was left (${had} bytes)`);
  front.faults.cut = { bytes: 0, count: 0 };
  front.faults.match = /^\/v2\/.+/;
  front.requests.length = 0;
  assert.equal(await ok(['pull', '-q', `${front.host}/app/resume:1`]), `${idOf(img)}\n`);
  const resumed = front.requests.filter((q) => q.method === 'GET' && q.path.endsWith(`/blobs/${digest}`));
  assert.ok(resumed.some((q) => q.range?.startsWith(`bytes=${had}-`)), `resumed from byte ${had}: ${JSON.stringify(resumed.map((q) => q.range))}`);
  assert.deepEqual(storeLeftovers(store()), []);
});
