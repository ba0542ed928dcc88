// The registry client against a real docker-registry on loopback: manifests, indexes, blobs, auth.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RegistryClient, authFiles, findCredentials, parseChallenge, parsePlatform } from '../src/image/registry/index.js';
import { parseReference } from '../src/image/reference.js';
import { isHutchError } from '../src/errors.js';
import type { ImageReference } from '../src/image/types.js';
import { pushImage, pushIndex, selfSignedCert, sha256, startFront, startRegistry, writeAuthFile, type PushedImage, type RegistryFront, type TestRegistry } from './image/registry-kit.js';
import { cleanUpAll } from './helpers.js';

let reg: TestRegistry;
let tmp: string;
let app: PushedImage;
let dockerImage: PushedImage;
let amd64: PushedImage;
let arm64: PushedImage;
let indexDigest: string;
const fronts: RegistryFront[] = [];

const file = (name: string, text: string) => ({ kind: 'file' as const, name, data: Buffer.from(text) });
const code = (c: string, re?: RegExp) => (e: unknown) => isHutchError(e) && e.code === c && (!re || re.test(e.message));
const ref = (host: string, rest: string): ImageReference => parseReference(`${host}/${rest}`);
const client = (extra: object = {}) => new RegistryClient({ insecure: true, authFile: path.join(tmp, 'none.json'), ...extra });

async function front(opts: Parameters<typeof startFront>[1] = {}): Promise<RegistryFront> {
  const f = await startFront(reg.host, opts);
  fronts.push(f);
  return f;
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-regtest-'));
  reg = await startRegistry();
  app = await pushImage(reg.host, 'hutch/app', 'v1', { layers: [[file('etc/hello', 'hello')], [file('etc/two', 'two'.repeat(1000))]] });
  dockerImage = await pushImage(reg.host, 'hutch/docker', 'v1', { layers: [[file('d', 'docker')]], format: 'docker' });
  amd64 = await pushImage(reg.host, 'hutch/multi', undefined, { layers: [[file('arch', 'amd64')]] });
  arm64 = await pushImage(reg.host, 'hutch/multi', undefined, { layers: [[file('arch', 'arm64')]], platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } });
  indexDigest = (await pushIndex(reg.host, 'hutch/multi', 'latest', [amd64, arm64])).digest;
  await pushIndex(reg.host, 'hutch/multi', 'list', [arm64, amd64], 'docker');
});

after(() => cleanUpAll(
  ...fronts.map((f) => () => f.stop()),
  () => reg?.stop(),
  () => fs.rmSync(tmp, { recursive: true, force: true }),
  () => { if (reg) assert.equal(fs.existsSync(reg.dir), false, 'registry dir removed'); },
));

test('pull by tag: manifest, config and layers, each verified', async () => {
  const c = client();
  const r = ref(reg.host, 'hutch/app:v1');
  const m = await c.resolveManifest(r);
  assert.equal(m.digest, app.digest);
  assert.equal(m.mediaType, 'application/vnd.oci.image.manifest.v1+json');
  assert.deepEqual(m.manifest, app.manifest);
  assert.equal(m.indexDigest, undefined);
  assert.deepEqual(await c.fetchBlob(r, m.manifest.config), app.configBytes);
  for (const [i, layer] of m.manifest.layers.entries()) {
    const dest = path.join(tmp, 'tag', layer.digest.slice(7));
    const phases: string[] = [];
    await c.downloadBlob(r, layer, dest, (e) => { if (!phases.includes(e.phase)) phases.push(e.phase); });
    assert.deepEqual(fs.readFileSync(dest), app.layerBlobs[i]);
    assert.equal(fs.existsSync(`${dest}.partial`), false);
    assert.deepEqual(phases, ['waiting', 'downloading', 'verifying', 'done']);
  }
  c.close();
  assert.equal((await c.resolveManifest(r)).digest, app.digest, 'usable after close()');
  c.close();
});

test('pull by digest, and Docker schema 2 manifests', async () => {
  const c = client();
  const byDigest = await c.resolveManifest(ref(reg.host, `hutch/app@${app.digest}`));
  assert.equal(byDigest.digest, app.digest);
  assert.deepEqual(byDigest.bytes, app.bytes);
  const d = await c.resolveManifest(ref(reg.host, 'hutch/docker:v1'));
  assert.equal(d.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
  assert.equal(d.digest, dockerImage.digest);
  assert.deepEqual(await c.fetchBlob(ref(reg.host, 'hutch/docker:v1'), d.manifest.config), dockerImage.configBytes);
});

test('an index resolves to linux/amd64 by default, or to the platform asked for', async () => {
  const c = client();
  for (const tag of ['latest', 'list']) {
    const r = ref(reg.host, `hutch/multi:${tag}`);
    const def = await c.resolveManifest(r);
    assert.equal(def.digest, amd64.digest, tag);
    assert.equal(def.platform?.architecture, 'amd64');
    const arm = await c.resolveManifest(r, parsePlatform('linux/arm64'));
    assert.equal(arm.digest, arm64.digest, tag);
    assert.equal((await c.resolveManifest(r, parsePlatform('linux/arm64/v8'))).digest, arm64.digest);
    assert.equal((await c.resolveManifest(r, parsePlatform('aarch64'))).digest, arm64.digest);
  }
  assert.equal((await c.resolveManifest(ref(reg.host, 'hutch/multi:latest'))).indexDigest, indexDigest);
  const byDigest = await c.resolveManifest(ref(reg.host, `hutch/multi@${indexDigest}`), { os: 'linux', architecture: 'arm64' });
  assert.equal(byDigest.digest, arm64.digest);
  assert.throws(() => parsePlatform('linux/'), code('EINVAL', /linux\//));
});

test('a platform the index lacks is ENOTFOUND listing the platforms it has', async () => {
  const c = client();
  await assert.rejects(c.resolveManifest(ref(reg.host, 'hutch/multi:latest'), parsePlatform('linux/s390x')),
    code('ENOTFOUND', /no image for linux\/s390x.*linux\/amd64, linux\/arm64\/v8/));
  await assert.rejects(c.resolveManifest(ref(reg.host, 'hutch/multi:latest'), parsePlatform('linux/arm64/v7')), code('ENOTFOUND', /linux\/arm64\/v7/));
});

test('unknown repositories, tags and blobs are ENOTFOUND naming them', async () => {
  const c = client();
  await assert.rejects(c.resolveManifest(ref(reg.host, 'hutch/nothing:v1')), code('ENOTFOUND', /image .*hutch\/nothing:v1 not found: MANIFEST_UNKNOWN/));
  await assert.rejects(c.resolveManifest(ref(reg.host, 'hutch/app:v9')), code('ENOTFOUND', /image .*hutch\/app:v9 not found: MANIFEST_UNKNOWN/));
  const missing = `sha256:${'0'.repeat(64)}`;
  await assert.rejects(c.resolveManifest(ref(reg.host, `hutch/app@${missing}`)), code('ENOTFOUND', new RegExp(missing)));
  const dest = path.join(tmp, 'missing');
  await assert.rejects(c.downloadBlob(ref(reg.host, 'hutch/app:v1'), { mediaType: 'x', digest: missing, size: 3 }, dest), code('ENOTFOUND', new RegExp(missing)));
  assert.equal(fs.existsSync(dest) || fs.existsSync(`${dest}.partial`), false);
});

test('bad manifests are refused: oversized, schema 1, not matching their digest', async () => {
  const f = await front();
  const c = client();
  f.faults.respond = (_m, p) => p.endsWith('/manifests/big')
    ? { status: 200, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: Buffer.alloc(5 * 1024 * 1024, 0x20) }
    : p.endsWith('/manifests/old')
      ? { status: 200, headers: { 'content-type': 'application/vnd.docker.distribution.manifest.v1+prettyjws' }, body: Buffer.from('{"schemaVersion":1}') }
      : p.endsWith(`/manifests/${app.digest}`) ? { status: 200, headers: { 'content-type': app.mediaType }, body: dockerImage.bytes } : undefined;
  await assert.rejects(c.resolveManifest(ref(f.host, 'hutch/app:big')), code('EPROTO', /manifest of .*hutch\/app:big is .*more than the 4194304 .*allowed/));
  await assert.rejects(c.resolveManifest(ref(f.host, 'hutch/app:old')), code('EUNSUPPORTED', /schema 1/));
  await assert.rejects(c.resolveManifest(ref(f.host, `hutch/app@${app.digest}`)), code('EINTEGRITY', new RegExp(`does not match the reference ${app.digest}`)));
});

test('token auth, anonymous: one token for concurrent requests, then reused', async () => {
  const f = await front({ auth: 'bearer' });
  const c = client();
  const r = ref(f.host, 'hutch/app:v1');
  const m = await c.resolveManifest(r);
  assert.equal(m.digest, app.digest);
  await Promise.all(m.manifest.layers.map((l, i) => c.downloadBlob(r, l, path.join(tmp, 'anon', String(i)))));
  assert.equal(f.tokenRequests.length, 1, 'one token for the repository');
  assert.equal(f.tokenRequests[0]!.authorization, undefined);
  assert.equal(f.tokenRequests[0]!.scope, 'repository:hutch/app:pull');
  assert.ok(f.requests.slice(1).every((q) => q.authorization?.startsWith('Bearer ')), 'the token is sent ahead after the first challenge');
  assert.equal(f.requests.filter((q) => q.status === 401).length, 1);
});

test('token auth with credentials from an auth file; an expired token is renewed', async () => {
  const f = await front({ auth: 'bearer', users: { alice: 's3cret' }, tokenTtlSeconds: 1 });
  const authFile = writeAuthFile(tmp, { [`http://${f.host}/v2/`]: { username: 'alice', password: 's3cret' } });
  const c = client({ authFile });
  const r = ref(f.host, 'hutch/app:v1');
  assert.equal((await c.resolveManifest(r)).digest, app.digest);
  assert.equal(f.tokenRequests[0]!.authorization, `Basic ${Buffer.from('alice:s3cret').toString('base64')}`);
  await new Promise((res) => setTimeout(res, 1100));
  assert.deepEqual(await c.fetchBlob(r, app.manifest.config), app.configBytes);
  assert.equal(f.tokenRequests.length, 2, 'a new token after expires_in');
  await assert.rejects(client().resolveManifest(r), code('EAUTH', new RegExp(`${f.host} requires credentials for hutch/app`)));
});

test('credentials from $REGISTRY_AUTH_FILE; a wrong password is EAUTH naming the registry', async () => {
  const f = await front({ auth: 'bearer', users: { alice: 's3cret' } });
  const good = writeAuthFile(fs.mkdtempSync(path.join(tmp, 'a')), { [f.host]: { username: 'alice', password: 's3cret' } });
  const bad = writeAuthFile(fs.mkdtempSync(path.join(tmp, 'b')), { [f.host]: { username: 'alice', password: 'wrong' } });
  const saved = process.env.REGISTRY_AUTH_FILE;
  try {
    process.env.REGISTRY_AUTH_FILE = good;
    assert.equal((await new RegistryClient({ insecure: [f.host] }).resolveManifest(ref(f.host, 'hutch/app:v1'))).digest, app.digest);
    process.env.REGISTRY_AUTH_FILE = bad;
    await assert.rejects(new RegistryClient({ insecure: [f.host] }).resolveManifest(ref(f.host, 'hutch/app:v1')),
      code('EAUTH', new RegExp(`registry ${f.host} refused the credentials of alice`)));
  } finally {
    if (saved === undefined) delete process.env.REGISTRY_AUTH_FILE; else process.env.REGISTRY_AUTH_FILE = saved;
  }
});

test('basic auth: credentials answer the challenge; wrong ones are EAUTH', async () => {
  const f = await front({ auth: 'basic', users: { bob: 'pw' } });
  const ok = client({ authFile: writeAuthFile(fs.mkdtempSync(path.join(tmp, 'c')), { [f.host]: { username: 'bob', password: 'pw' } }) });
  assert.equal((await ok.resolveManifest(ref(f.host, 'hutch/app:v1'))).digest, app.digest);
  const wrong = client({ authFile: writeAuthFile(fs.mkdtempSync(path.join(tmp, 'd')), { [f.host]: { username: 'bob', password: 'no' } }) });
  await assert.rejects(wrong.resolveManifest(ref(f.host, 'hutch/app:v1')), code('EAUTH', new RegExp(`${f.host} refused the credentials of bob`)));
});

test('auth file keys: Docker Hub\'s legacy key, repository-specific entries, malformed files', () => {
  const dir = fs.mkdtempSync(path.join(tmp, 'keys'));
  const f = path.join(dir, 'config.json');
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  fs.writeFileSync(f, JSON.stringify({ auths: { 'https://index.docker.io/v1/': { auth: b64('hub:1') }, 'quay.io': { auth: b64('q:2') }, 'quay.io/team/app': { auth: b64('t:3') } } }));
  assert.equal(findCredentials([f], 'docker.io', 'library/busybox')?.username, 'hub');
  assert.equal(findCredentials([f], 'quay.io', 'team/app')?.username, 't');
  assert.equal(findCredentials([f], 'quay.io', 'other/app')?.username, 'q');
  assert.equal(findCredentials([f, path.join(dir, 'absent.json')], 'ghcr.io', 'x'), undefined);
  fs.writeFileSync(f, '{ not json');
  assert.throws(() => findCredentials([f], 'quay.io', 'x'), code('EINVAL', new RegExp(f)));
});

test('a blob redirected to another host is fetched without the registry credentials', async () => {
  const store = await front();
  const f = await front({ auth: 'bearer' });
  const layer = app.manifest.layers[0]!;
  f.faults.respond = (m, p) => p.endsWith(`/blobs/${layer.digest}`) ? { status: 307, headers: { location: `http://${store.host}${p}` } } : undefined;
  const dest = path.join(tmp, 'redirected');
  await client().downloadBlob(ref(f.host, 'hutch/app:v1'), layer, dest);
  assert.equal(sha256(fs.readFileSync(dest)), layer.digest);
  assert.equal(store.requests.length, 1);
  assert.equal(store.requests[0]!.authorization, undefined);
  assert.ok(f.requests.some((q) => q.path.endsWith(layer.digest) && q.authorization?.startsWith('Bearer ')));
});

test('concurrent downloads with one client, and one download for one destination', async () => {
  const big = await pushImage(reg.host, 'hutch/many', 'v1', { layers: [0, 1, 2, 3, 4].map((i) => [file(`f${i}`, `${i}`.repeat(200_000 + i))]) });
  const f = await front({ auth: 'bearer' });
  const c = client();
  const r = ref(f.host, 'hutch/many:v1');
  const dests = big.manifest.layers.map((l) => path.join(tmp, 'many', l.digest.slice(7)));
  await Promise.all([...big.manifest.layers.map((l, i) => c.downloadBlob(r, l, dests[i]!)), c.downloadBlob(r, big.manifest.layers[0]!, dests[0]!)]);
  big.layerBlobs.forEach((b, i) => assert.deepEqual(fs.readFileSync(dests[i]!), b));
  assert.equal(f.requests.filter((q) => q.path.includes('/blobs/') && q.status === 200).length, 5, 'each blob once');
  assert.equal(f.tokenRequests.length, 1);
});

test('WWW-Authenticate challenges are parsed with quoting and case', () => {
  assert.deepEqual(parseChallenge('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"'),
    { scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull,push' } });
  assert.deepEqual(parseChallenge('basic Realm=x'), { scheme: 'basic', params: { realm: 'x' } });
  assert.deepEqual(parseChallenge(['Negotiate abc', 'Basic realm="a \\"q\\""']), { scheme: 'basic', params: { realm: 'a "q"' } });
  assert.equal(parseChallenge('Negotiate'), undefined);
  assert.equal(parseChallenge(undefined), undefined);
});

test('a self-signed https registry is refused unless insecure, then used over https without checks', async (t) => {
  const tls = selfSignedCert(fs.mkdtempSync(path.join(tmp, 'tls')));
  if (!tls) { t.skip('openssl is not installed: no certificate for the https front'); return; }
  const f = await front({ tls, auth: 'bearer' });
  await assert.rejects(new RegistryClient({ authFile: path.join(tmp, 'none.json') }).resolveManifest(ref(f.host, 'hutch/app:v1')),
    code('ENETWORK', /TLS with .* failed \(self.signed certificate\); .*--insecure/));
  assert.equal(f.requests.length, 0);
  assert.equal((await client({ insecure: [f.host] }).resolveManifest(ref(f.host, 'hutch/app:v1'))).digest, app.digest);
  assert.ok(f.requests.length >= 2 && f.tokenRequests.length === 1, 'served by the https front, token included');
});

test('auth files are looked for in order: option alone, $REGISTRY_AUTH_FILE, containers, docker', () => {
  const keys = ['REGISTRY_AUTH_FILE', 'XDG_RUNTIME_DIR', 'DOCKER_CONFIG', 'HOME'] as const;
  const saved = keys.map((k) => process.env[k]);
  try {
    Object.assign(process.env, { REGISTRY_AUTH_FILE: '/a/auth.json', XDG_RUNTIME_DIR: '/run/user/7', HOME: '/home/u' });
    delete process.env.DOCKER_CONFIG;
    assert.deepEqual(authFiles(), ['/a/auth.json', '/run/user/7/containers/auth.json', '/home/u/.docker/config.json']);
    process.env.DOCKER_CONFIG = '/etc/dock';
    assert.deepEqual(authFiles().at(-1), '/etc/dock/config.json');
    assert.deepEqual(authFiles('/x.json'), ['/x.json']);
  } finally {
    keys.forEach((k, i) => { if (saved[i] === undefined) delete process.env[k]; else process.env[k] = saved[i]; });
  }
});
