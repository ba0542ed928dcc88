// The registry client under faults: resumed downloads, retries, corrupt blobs, unreachable registries.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { RegistryClient } from '../src/image/registry/index.js';
import { parseReference } from '../src/image/reference.js';
import { isHutchError } from '../src/errors.js';
import { readProcFile } from '../src/linux/index.js';
import type { Descriptor } from '../src/image/types.js';
import { closedPort, pushImage, startBlackhole, startFront, startRegistry, type PushedImage, type RegistryFront, type TestRegistry } from './image/registry-kit.js';
import { cleanUpAll } from './helpers.js';

let reg: TestRegistry;
let front: RegistryFront;
let tmp: string;
let img: PushedImage;
let layer: Descriptor;
let blob: Buffer;
let n = 0;

const MiB = 1024 * 1024;
const code = (c: string, re?: RegExp) => (e: unknown) => isHutchError(e) && e.code === c && (!re || re.test(e.message));
const client = (extra: object = {}) => new RegistryClient({ insecure: true, authFile: path.join(tmp, 'none.json'), retryDelayMs: 20, ...extra });
const ref = () => parseReference(`${front.host}/hutch/big:v1`);
const dest = () => path.join(tmp, `blob-${++n}`);
const blobGets = () => front.requests.filter((q) => q.method === 'GET' && q.path.endsWith(`/blobs/${layer.digest}`));

function resetFaults(): void {
  Object.assign(front.faults, { resets: 0, cut: { bytes: 0, count: 0 }, stall: { bytes: 0, count: 0 }, status: { code: 503, count: 0 }, ignoreRange: false, respond: undefined });
  front.faults.corrupt.clear();
  front.requests.length = 0;
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-regfault-'));
  reg = await startRegistry();
  // An uncompressed random layer: big enough to be cut in the middle and resumed.
  blob = randomBytes(3 * MiB);
  img = await pushImage(reg.host, 'hutch/big', 'v1', { layers: [blob] });
  layer = img.manifest.layers[0]!;
  front = await startFront(reg.host);
});

after(() => cleanUpAll(
  () => front?.stop(),
  () => reg?.stop(),
  () => fs.rmSync(tmp, { recursive: true, force: true }),
));

test('a partial file is resumed with a Range request and the result verifies', async () => {
  resetFaults();
  const d = dest();
  fs.writeFileSync(`${d}.partial`, blob.subarray(0, MiB));
  const report = await client().downloadBlobWithReport(ref(), layer, d);
  assert.equal(report.resumedFrom, MiB);
  assert.deepEqual(blobGets().map((q) => q.range), [`bytes=${MiB}-`]);
  assert.equal(blobGets()[0]!.status, 206);
  assert.deepEqual(fs.readFileSync(d), blob);
  assert.equal(fs.existsSync(`${d}.partial`), false);
});

test('a server that ignores Range gets a full download', async () => {
  resetFaults();
  front.faults.ignoreRange = true;
  const d = dest();
  fs.writeFileSync(`${d}.partial`, blob.subarray(0, MiB));
  await client().downloadBlob(ref(), layer, d);
  assert.equal(blobGets().length, 1);
  assert.equal(blobGets()[0]!.status, 200);
  assert.deepEqual(fs.readFileSync(d), blob);
});

test('a partial file with wrong bytes is thrown away and the blob fetched again whole', async () => {
  resetFaults();
  const d = dest();
  fs.writeFileSync(`${d}.partial`, randomBytes(MiB));
  const report = await client().downloadBlobWithReport(ref(), layer, d);
  assert.deepEqual(blobGets().map((q) => q.range), [`bytes=${MiB}-`, undefined]);
  assert.equal(report.requests, 2);
  assert.deepEqual(fs.readFileSync(d), blob);
});

test('a body cut in the middle is resumed where it stopped', async () => {
  resetFaults();
  front.faults.cut = { bytes: 700_000, count: 2 };
  const d = dest();
  const report = await client().downloadBlobWithReport(ref(), layer, d);
  assert.deepEqual(fs.readFileSync(d), blob);
  assert.equal(report.requests, 3);
  const ranges = blobGets().map((q) => q.range);
  assert.equal(ranges[0], undefined);
  assert.match(ranges[1] ?? '', /^bytes=\d+-$/);
  assert.ok(Number(ranges[2]!.slice(6, -1)) > Number(ranges[1]!.slice(6, -1)), `resumes further each time: ${ranges.join(' ')}`);
});

test('a body that stalls times out and is resumed', async () => {
  resetFaults();
  front.faults.stall = { bytes: MiB, count: 1 };
  const d = dest();
  const started = Date.now();
  const report = await client({ timeoutMs: 400 }).downloadBlobWithReport(ref(), layer, d);
  assert.deepEqual(fs.readFileSync(d), blob);
  assert.equal(report.requests, 2);
  assert.equal(blobGets()[1]!.range, `bytes=${MiB}-`);
  assert.ok(Date.now() - started < 3000);
});

test('connection resets, 503s and 429s are retried and succeed', async () => {
  resetFaults();
  const c = client();
  front.faults.resets = 2;
  assert.equal((await c.resolveManifest(ref())).digest, img.digest);
  assert.equal(front.requests.filter((q) => q.status === -1).length, 2);
  front.faults.status = { code: 503, count: 2 };
  assert.deepEqual(await c.fetchBlob(ref(), img.manifest.config), img.configBytes);
  front.faults.status = { code: 429, count: 1, retryAfter: '1' };
  const started = Date.now();
  const d = dest();
  await c.downloadBlob(ref(), layer, d);
  assert.ok(Date.now() - started >= 900, 'Retry-After was honoured');
  assert.deepEqual(fs.readFileSync(d), blob);
});

test('a registry that keeps failing is ENETWORK after the retries', async () => {
  resetFaults();
  front.faults.status = { code: 503, count: 100 };
  await assert.rejects(client({ retries: 3 }).resolveManifest(ref()), code('ENETWORK', /answered 503 .*gave up after 3 attempts/));
  assert.equal(front.requests.length, 3);
});

test('a corrupted blob is EINTEGRITY naming the digest, and nothing is left', async () => {
  resetFaults();
  front.faults.corrupt.add(layer.digest);
  front.faults.corrupt.add(img.manifest.config.digest);
  const d = dest();
  await assert.rejects(client().downloadBlob(ref(), layer, d), code('EINTEGRITY', new RegExp(`blob ${layer.digest} .*does not match`)));
  assert.equal(fs.existsSync(d) || fs.existsSync(`${d}.partial`), false);
  await assert.rejects(client().fetchBlob(ref(), img.manifest.config), code('EINTEGRITY', new RegExp(img.manifest.config.digest)));
});

test('a blob larger or smaller than its descriptor is EINTEGRITY', async () => {
  resetFaults();
  const d = dest();
  await assert.rejects(client().downloadBlob(ref(), { ...layer, size: layer.size - 10 }, d), code('EINTEGRITY', /larger than/));
  assert.equal(fs.existsSync(d) || fs.existsSync(`${d}.partial`), false);
  await assert.rejects(client().fetchBlob(ref(), { ...img.manifest.config, size: img.manifest.config.size + 5 }), code('EINTEGRITY', /bytes, not the/));
});

test('an unreachable registry is ENETWORK within seconds', async () => {
  const port = await closedPort();
  const started = Date.now();
  await assert.rejects(new RegistryClient({ insecure: true }).resolveManifest(parseReference(`127.0.0.1:${port}/x:y`)),
    code('ENETWORK', new RegExp(`connection to 127.0.0.1:${port} refused .*gave up after 4 attempts`)));
  assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
});

test('a host that drops connections is ENETWORK within seconds, not after every timeout', async () => {
  const hole = await startBlackhole();
  try {
    const started = Date.now();
    await assert.rejects(client({ connectTimeoutMs: 500 }).resolveManifest(parseReference(`${hole.host}/x:y`)),
      code('ENETWORK', new RegExp(`could not connect to ${hole.host} within 500 ms .*gave up after 2 attempts`)));
    assert.ok(Date.now() - started < 2500, `took ${Date.now() - started} ms`);
  } finally {
    await hole.stop();
  }
});

test('a registry that accepts and never answers times out as ENETWORK', async () => {
  const silent = http.createServer(() => { /* never answers */ });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const host = `127.0.0.1:${(silent.address() as AddressInfo).port}`;
  try {
    const started = Date.now();
    await assert.rejects(client({ timeoutMs: 300, retries: 2 }).resolveManifest(parseReference(`${host}/x:y`)), code('ENETWORK', /did not answer/));
    assert.ok(Date.now() - started < 3000);
  } finally {
    silent.closeAllConnections();
    await new Promise<void>((r) => silent.close(() => r()));
  }
});

test('https to a plain-http registry fails at once, suggesting --insecure', async () => {
  const started = Date.now();
  await assert.rejects(new RegistryClient().resolveManifest(parseReference(`${reg.host}/hutch/big:v1`)), code('ENETWORK', /TLS .*--insecure/));
  assert.ok(Date.now() - started < 2000);
});

test('the registry and the front are stopped and their dirs removed afterwards', async () => {
  const r = await startRegistry();
  try {
    assert.match(readProcFile(r.pid, 'cmdline') ?? '', /docker-registry\0serve\0/);
    assert.ok(readProcFile(r.pid, 'cmdline')!.includes(r.dir), 'its config is in its dir');
  } finally {
    await r.stop();
  }
  assert.equal(fs.existsSync(r.dir), false);
  assert.equal(readProcFile(r.pid, 'stat'), null, 'the process is gone');
});
