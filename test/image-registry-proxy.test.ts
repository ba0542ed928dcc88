// hutch pull through an HTTP proxy named by HTTPS_PROXY / HTTP_PROXY: a forwarding proxy written
// here (CONNECT tunnels, absolute-URI requests, Basic proxy auth) before Debian's docker-registry on
// loopback. Registries are named `*.hutch.test:PORT`, which only the proxy can resolve (to
// 127.0.0.1:PORT): loopback itself is never proxied, as in Go's net/http.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { cleanRoot, cleanUpAll, hutch, leftovers, makeRoot, type Result } from './helpers.js';
import { bypassesProxy, openTunnel, parseNoProxy, parseProxyUrl, proxyFor } from '../src/image/registry/proxy.js';
import { isHutchError } from '../src/errors.js';
import { closedPort, pushImage, selfSignedCert, startFront, startRegistry, type PushedImage, type RegistryFront, type TestRegistry } from './image/registry-kit.js';
import { storeLeftovers } from './image-store-kit.js';
import { makeLayer } from './image/tar-kit.js';

/** A forwarding proxy on 127.0.0.1 that counts what it carries. */
interface TestProxy {
  url: string;
  /** CONNECT targets, in order. */
  connects: string[];
  /** Absolute URLs of forwarded plain requests. */
  forwards: string[];
  /** Client connections accepted. */
  connections: number;
  /** Proxy-Authorization headers seen (CONNECT and forwards). */
  authorizations: (string | undefined)[];
  /** Demand these Basic credentials. */
  auth?: { user: string; password: string };
  /** Answer CONNECT with this status instead of tunnelling. */
  refuse?: number;
  openSockets(): number;
  reset(): void;
  stop(): Promise<void>;
}

/** Where the proxy sends `host:port`: `*.hutch.test` names are this machine's loopback. */
function upstream(hostPort: string): { host: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(hostPort)!;
  return { host: m[1]!.endsWith('.hutch.test') ? '127.0.0.1' : m[1]!, port: Number(m[2]) };
}

/** Starts a proxy on 127.0.0.1; with `tls` it is an https:// proxy. */
async function startProxy(tls?: { key: string; cert: string }): Promise<TestProxy> {
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket): void => { sockets.add(s); s.once('close', () => sockets.delete(s)); };
  const authorized = (req: http.IncomingMessage): boolean => {
    p.authorizations.push(req.headers['proxy-authorization']);
    if (!p.auth) return true;
    return req.headers['proxy-authorization'] === `Basic ${Buffer.from(`${p.auth.user}:${p.auth.password}`).toString('base64')}`;
  };
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    if (!/^http:\/\//.test(req.url ?? '')) { res.writeHead(400).end('not a proxy request'); return; }
    if (!authorized(req)) { res.writeHead(407, { 'proxy-authenticate': 'Basic realm="test-proxy"' }).end(); return; }
    p.forwards.push(req.url!);
    const target = new URL(req.url!);
    const headers = { ...req.headers };
    delete headers['proxy-authorization'];
    const up = upstream(`${target.hostname}:${target.port || 80}`);
    const fwd = http.request({ host: up.host, port: up.port, method: req.method, path: `${target.pathname}${target.search}`, headers }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      ur.pipe(res);
      ur.once('error', () => res.destroy());
    });
    fwd.once('error', () => res.destroy());
    req.pipe(fwd);
  };
  const server = tls ? https.createServer(tls, handler) : http.createServer(handler);
  server.on('connection', (s: net.Socket) => { p.connections++; track(s); });
  server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    p.connects.push(req.url ?? '');
    client.once('error', () => client.destroy());
    if (!authorized(req)) {
      client.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="test-proxy"\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    if (p.refuse) { client.end(`HTTP/1.1 ${p.refuse} Refused By Test\r\nContent-Length: 0\r\n\r\n`); return; }
    const up = upstream(req.url ?? '');
    const remote = net.connect(up.port, up.host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) remote.write(head);
      remote.pipe(client);
      client.pipe(remote);
    });
    track(remote);
    remote.once('error', () => client.destroy());
    client.once('close', () => remote.destroy());
    remote.once('close', () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const p: TestProxy = {
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${(server.address() as AddressInfo).port}`,
    connects: [], forwards: [], authorizations: [], connections: 0,
    openSockets: () => sockets.size,
    reset() { p.connects = []; p.forwards = []; p.connections = 0; p.authorizations = []; delete p.auth; delete p.refuse; },
    stop: () => new Promise<void>((r) => { server.close(() => r()); for (const s of sockets) s.destroy(); }),
  };
  return p;
}

let root: string;
let tmp: string;
let reg: TestRegistry;
let plain: RegistryFront;
let secure: RegistryFront | undefined;
let caFile: string;
let proxy: TestProxy;
let img: PushedImage;
let stores = 0;

const TLS_NAME = 'tls.hutch.test';
const PLAIN_NAME = 'plain.hutch.test';
const port = (f: RegistryFront): string => f.host.split(':')[1]!;
const tlsRef = (): string => `${TLS_NAME}:${port(secure!)}/app/hello:1`;
const plainRef = (): string => `${PLAIN_NAME}:${port(plain)}/app/hello:1`;
const UNSET = { HTTPS_PROXY: undefined, https_proxy: undefined, HTTP_PROXY: undefined, http_proxy: undefined, NO_PROXY: undefined, no_proxy: undefined, ALL_PROXY: undefined, all_proxy: undefined, NODE_EXTRA_CA_CERTS: undefined };

/** Runs hutch pull with a fresh image store, no auth file, and exactly the proxy variables given. */
async function pull(args: string[], vars: NodeJS.ProcessEnv): Promise<Result & { store: string }> {
  const store = path.join(tmp, `store-${++stores}`);
  const env = { ...UNSET, HUTCH_IMAGE_ROOT: store, REGISTRY_AUTH_FILE: path.join(tmp, 'no-auth.json'), ...vars };
  return { ...(await hutch(root, ['pull', '-q', ...args], { env, timeoutMs: 120_000 })), store };
}

/** A failed pull: exit 1, one line naming what it should, nothing left in the store, no password shown. */
function assertFailed(r: Result & { store: string }, re: RegExp): void {
  assert.equal(r.code, 1, `${r.stdout}${r.stderr}`);
  assert.match(r.stderr, re);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.doesNotMatch(r.stderr + r.stdout, /s3cret|s%40cret|s@cret/);
  assert.deepEqual(fs.existsSync(r.store) ? storeLeftovers(r.store) : [], []);
}

before(async () => {
  root = makeRoot('proxy');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-proxy-'));
  reg = await startRegistry();
  // A second layer big enough to be cut in the middle and resumed.
  img = await pushImage(reg.host, 'app/hello', '1', {
    layers: [makeLayer([{ name: 'hello', content: 'through the proxy\n' }]), makeLayer([{ name: 'noise', content: randomBytes(512 * 1024) }])],
  });
  plain = await startFront(reg.host, { keepAliveMs: 10_000 });
  const dir = fs.mkdtempSync(path.join(tmp, 'tls-'));
  const tls = selfSignedCert(dir, `DNS:${TLS_NAME}`);
  if (tls) {
    secure = await startFront(reg.host, { tls, keepAliveMs: 10_000 });
    caFile = path.join(dir, 'cert.pem');
  }
  proxy = await startProxy();
});

after(() => cleanUpAll(
  () => proxy?.stop(),
  () => assert.equal(proxy?.openSockets() ?? 0, 0, 'the proxy closed every connection'),
  () => secure?.stop(),
  () => plain?.stop(),
  () => reg?.stop(),
  () => cleanRoot(root),
  () => fs.rmSync(tmp, { recursive: true, force: true }),
  () => assert.equal(fs.existsSync(tmp), false),
  () => assert.deepEqual(leftovers(root), []),
));

const imageId = (): string => `${img.manifest.config.digest}\n`;

test('https through a CONNECT tunnel: certificates checked inside it, keep-alive tunnels reused', async (t) => {
  if (!secure) { t.skip('openssl is not installed: no certificate for the https registry'); return; }
  proxy.reset();
  secure.requests.length = 0;
  const r = await pull([tlsRef()], { HTTPS_PROXY: proxy.url, NODE_EXTRA_CA_CERTS: caFile });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, imageId());
  assert.ok(proxy.connects.length >= 1 && proxy.connects.every((c) => c === `${TLS_NAME}:${port(secure!)}`), proxy.connects.join(' '));
  assert.deepEqual(proxy.forwards, []);
  assert.ok(secure.requests.length >= 4, 'manifest, config and both layers came from the https registry');
  assert.ok(proxy.connects.length < secure.requests.length, `tunnels are reused: ${proxy.connects.length} for ${secure.requests.length} requests`);
});

test('through the tunnel an untrusted certificate still fails (suggesting --insecure); --insecure pulls', async (t) => {
  if (!secure) { t.skip('openssl is not installed: no certificate for the https registry'); return; }
  proxy.reset();
  const bad = await pull([tlsRef()], { https_proxy: proxy.url });
  assertFailed(bad, new RegExp(`manifest of ${TLS_NAME}:\\d+/app/hello:1: TLS with ${TLS_NAME}:\\d+ failed .*--insecure`));
  assert.equal(proxy.connects.length, 1, 'the TLS failure came through the tunnel and was not retried');
  proxy.reset();
  const r = await pull(['--insecure', tlsRef()], { https_proxy: proxy.url });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, imageId());
  assert.ok(proxy.connects.length >= 1);
});

test('a layer cut off mid-way is resumed with Range through the tunnel', async (t) => {
  if (!secure) { t.skip('openssl is not installed: no certificate for the https registry'); return; }
  proxy.reset();
  secure.requests.length = 0;
  const big = img.manifest.layers[1]!;
  secure.faults.match = new RegExp(`/blobs/${big.digest}$`);
  secure.faults.cut = { bytes: 200_000, count: 1 };
  try {
    const r = await pull([tlsRef()], { HTTPS_PROXY: proxy.url, NODE_EXTRA_CA_CERTS: caFile });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, imageId());
  } finally {
    secure.faults.match = /^\/v2\/.+/;
    secure.faults.cut = { bytes: 0, count: 0 };
  }
  const gets = secure.requests.filter((q) => q.path.endsWith(big.digest));
  assert.equal(gets.length, 2);
  assert.equal(gets[0]!.range, undefined);
  const from = Number(/^bytes=(\d+)-$/.exec(gets[1]!.range ?? '')?.[1]);
  assert.ok(from > 0 && from <= 200_000, `resumed from what arrived before the cut: ${gets[1]!.range}`);
  assert.equal(gets[1]!.status, 206);
  assert.ok(proxy.connects.length >= 2, 'the cut tunnel was replaced by a new one');
});

test('plain http through the proxy as absolute-URI requests, with Basic proxy credentials', async () => {
  proxy.reset();
  proxy.auth = { user: 'alice', password: 's@cret' };
  plain.requests.length = 0;
  const withCreds = `http://alice:s%40cret@${proxy.url.slice(7)}`;
  // --insecure: https (tunnelled, refused by the plain server) first, then plain http.
  const r = await pull(['--insecure', plainRef()], { HTTPS_PROXY: withCreds, HTTP_PROXY: withCreds });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, imageId());
  assert.ok(proxy.forwards.length >= 4, proxy.forwards.join(' '));
  assert.ok(proxy.forwards.every((u) => u.startsWith(`http://${PLAIN_NAME}:${port(plain)}/v2/app/hello/`)), proxy.forwards.join(' '));
  assert.equal(plain.requests.filter((q) => q.status !== -1).length, proxy.forwards.length, 'every registry request came through the proxy');
  assert.ok(proxy.connections - proxy.connects.length < proxy.forwards.length, `connections to the proxy are reused: ${proxy.connections} for ${proxy.forwards.length} requests`);
  const basic = `Basic ${Buffer.from('alice:s@cret').toString('base64')}`;
  assert.ok(proxy.authorizations.length > 0 && proxy.authorizations.every((a) => a === basic));
  assert.doesNotMatch(r.stderr + r.stdout, /s@cret|s%40cret/);
});

test('an https:// proxy: TLS to the proxy (its certificate always checked), tunnels and absolute URIs inside', async (t) => {
  if (!secure) { t.skip('openssl is not installed: no certificates'); return; }
  const dir = fs.mkdtempSync(path.join(tmp, 'proxy-tls-'));
  const tlsProxy = await startProxy(selfSignedCert(dir));
  try {
    const both = path.join(dir, 'both.pem');
    fs.writeFileSync(both, fs.readFileSync(caFile, 'utf8') + fs.readFileSync(path.join(dir, 'cert.pem'), 'utf8'));
    const r = await pull([tlsRef()], { HTTPS_PROXY: tlsProxy.url, NODE_EXTRA_CA_CERTS: both });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, imageId());
    assert.ok(tlsProxy.connects.length >= 1 && tlsProxy.connects.every((c) => c === `${TLS_NAME}:${port(secure!)}`), 'TLS to the registry inside TLS to the proxy');
    const viaHttp = await pull(['--insecure', plainRef()], { HTTPS_PROXY: tlsProxy.url, HTTP_PROXY: tlsProxy.url, NODE_EXTRA_CA_CERTS: both });
    assert.equal(viaHttp.code, 0, viaHttp.stderr);
    assert.ok(tlsProxy.forwards.length >= 4, 'plain http as absolute URIs over TLS to the proxy');
    tlsProxy.reset();
    const untrusted = await pull(['--insecure', plainRef()], { HTTPS_PROXY: tlsProxy.url, HTTP_PROXY: tlsProxy.url });
    assertFailed(untrusted, new RegExp(`TLS with proxy ${tlsProxy.url} \\(from HTTPS_PROXY\\) failed \\(self.signed certificate\\)$`, 'm'));
    assert.deepEqual([tlsProxy.connects, tlsProxy.forwards], [[], []], '--insecure does not extend to the proxy');
  } finally {
    await tlsProxy.stop();
  }
  assert.equal(tlsProxy.openSockets(), 0);
});

test('NO_PROXY sends matching registries directly, and loopback is never proxied', async () => {
  proxy.reset();
  for (const noProxy of ['hutch.test', '.hutch.test', `*.hutch.test`, `${PLAIN_NAME}:${port(plain)}`, '*']) {
    const r = await pull(['--insecure', plainRef()], { HTTPS_PROXY: proxy.url, HTTP_PROXY: proxy.url, NO_PROXY: noProxy });
    // Directly, the made-up name does not resolve: proof the proxy was not asked.
    assertFailed(r, new RegExp(`cannot resolve the host name of ${PLAIN_NAME}`));
  }
  assert.deepEqual([proxy.connects, proxy.forwards], [[], []]);
  const other = await pull(['--insecure', plainRef()], { http_proxy: proxy.url, HTTPS_PROXY: proxy.url, no_proxy: 'other.test,10.0.0.0/8' });
  assert.equal(other.code, 0, other.stderr);
  assert.ok(proxy.forwards.length > 0, 'entries that do not match leave the proxy in use');
  proxy.reset();
  const local = await pull([`${reg.host}/app/hello:1`], { HTTPS_PROXY: proxy.url, HTTP_PROXY: proxy.url });
  assert.equal(local.code, 0, local.stderr);
  assert.equal(local.stdout, imageId());
  assert.deepEqual([proxy.connects, proxy.forwards], [[], []], 'a loopback registry is reached directly, as Go does');
});

test('a proxy that wants credentials (407) is EAUTH naming it and the registry, without retries', async () => {
  proxy.reset();
  proxy.auth = { user: 'alice', password: 's3cret' };
  const none = await pull(['--insecure', plainRef()], { HTTPS_PROXY: proxy.url });
  assertFailed(none, new RegExp(`proxy ${proxy.url} \\(from HTTPS_PROXY\\) requires credentials for ${PLAIN_NAME}:\\d+ \\(407 Proxy Authentication Required\\); give them in HTTPS_PROXY`));
  assert.equal(proxy.connects.length, 1);
  proxy.connects = [];
  const wrong = await pull(['--insecure', plainRef()], { HTTPS_PROXY: `http://alice:wrong-s3cret@${proxy.url.slice(7)}` });
  assertFailed(wrong, new RegExp(`proxy ${proxy.url} \\(from HTTPS_PROXY\\) refused the credentials given in HTTPS_PROXY for ${PLAIN_NAME}:\\d+`));
  assert.doesNotMatch(wrong.stderr, /alice/, 'not even the user name is printed');
  // Plain http through the proxy (after the tunnelled https try): the 407 answers the request itself.
  const viaHttp = await pull(['--insecure', plainRef()], { HTTPS_PROXY: `http://alice:s3cret@${proxy.url.slice(7)}`, HTTP_PROXY: `http://bob:s3cret@${proxy.url.slice(7)}` });
  assertFailed(viaHttp, new RegExp(`proxy ${proxy.url} \\(from HTTP_PROXY\\) refused the credentials given in HTTP_PROXY for ${PLAIN_NAME}:\\d+ \\(407 Proxy Authentication Required\\)`));
  assert.equal(proxy.forwards.length, 0);
});

test('a proxy that refuses the tunnel: 403 is EAUTH at once, 502 is retried then ENETWORK', async () => {
  proxy.reset();
  proxy.refuse = 403;
  const forbidden = await pull(['--insecure', plainRef()], { HTTPS_PROXY: proxy.url });
  assertFailed(forbidden, new RegExp(`proxy ${proxy.url} \\(from HTTPS_PROXY\\) refused to tunnel to ${PLAIN_NAME}:\\d+ \\(403 Refused By Test\\)`));
  assert.equal(proxy.connects.length, 1);
  proxy.connects = [];
  proxy.refuse = 502;
  const bad = await pull(['--insecure', plainRef()], { HTTPS_PROXY: proxy.url });
  assertFailed(bad, new RegExp(`manifest of ${PLAIN_NAME}:\\d+/app/hello:1: proxy ${proxy.url} \\(from HTTPS_PROXY\\) could not tunnel to ${PLAIN_NAME}:\\d+ \\(502 Refused By Test\\) \\(gave up after 4 attempts\\)`));
  assert.equal(proxy.connects.length, 4);
});

test('an unreachable proxy is ENETWORK naming it, after the usual retries', async () => {
  const down = `http://127.0.0.1:${await closedPort()}`;
  const t0 = Date.now();
  const r = await pull(['--insecure', plainRef()], { HTTPS_PROXY: down, HTTP_PROXY: down });
  assertFailed(r, new RegExp(`manifest of ${PLAIN_NAME}:\\d+/app/hello:1: connection to proxy ${down} \\(from HTTPS_PROXY\\) refused \\(gave up after 4 attempts\\)`));
  assert.ok(Date.now() - t0 >= 1000, 'retried with back-off');
});

test('a proxy that accepts and never answers CONNECT fails within seconds, naming it', async () => {
  const held = new Set<net.Socket>();
  let accepted = 0;
  const silent = net.createServer((s) => {
    accepted++;
    held.add(s);
    s.once('close', () => held.delete(s));
    s.on('error', () => s.destroy()); // the client giving up resets the connection: expected
  });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
  try {
    const t0 = Date.now();
    const r = await pull(['--insecure', plainRef()], { HTTPS_PROXY: url });
    assertFailed(r, new RegExp(`manifest of ${PLAIN_NAME}:\\d+/app/hello:1: proxy ${url} \\(from HTTPS_PROXY\\) did not open a tunnel to ${PLAIN_NAME}:\\d+ within \\d+ ms \\(gave up after 2 attempts\\)`));
    assert.ok(Date.now() - t0 < 20_000, `gave up in ${Date.now() - t0} ms`);
    assert.equal(accepted, 2, 'a proxy that twice cannot give a tunnel is not tried further');
  } finally {
    for (const s of held) s.destroy();
    await new Promise<void>((r) => silent.close(() => r()));
  }
});

test('a malformed proxy URL is EINVAL naming the variable, with no password shown', async () => {
  for (const [value, why] of [['http://proxy.test:99999', /does not parse/], ['ftp://proxy.test:21', /scheme ftp/], ['http://bob:s3cret@[::1', /does not parse/]] as const) {
    const r = await pull(['--insecure', plainRef()], { HTTPS_PROXY: value });
    assertFailed(r, /^hutch: HTTPS_PROXY is not a usable proxy URL/);
    assert.match(r.stderr, why);
  }
  const socks = await pull(['--insecure', plainRef()], { https_proxy: 'socks5://127.0.0.1:1080' });
  assertFailed(socks, /https_proxy names a SOCKS proxy \(socks5:\/\/127\.0\.0\.1:1080\); only http:\/\/ and https:\/\/ proxies/);
});

test('which variable applies: upper case first, per scheme, ALL_PROXY not read (as Go)', () => {
  const https = new URL('https://quay.io/v2/');
  const http = new URL('http://reg.test:5000/v2/');
  const pick = (env: NodeJS.ProcessEnv, url: URL): string | undefined => proxyFor(url, env)?.name;
  assert.equal(pick({ HTTPS_PROXY: 'http://a:1', https_proxy: 'http://b:2' }, https), 'proxy http://a:1 (from HTTPS_PROXY)');
  assert.equal(pick({ HTTPS_PROXY: '', https_proxy: 'b:2' }, https), 'proxy http://b:2 (from https_proxy)');
  assert.equal(pick({ HTTP_PROXY: 'http://a:1' }, https), undefined, 'HTTP_PROXY is not used for https');
  assert.equal(pick({ HTTP_PROXY: 'a' }, http), 'proxy http://a (from HTTP_PROXY)');
  assert.equal(pick({ ALL_PROXY: 'http://a:1', all_proxy: 'http://a:1' }, https), undefined);
  const withAuth = proxyFor(https, { HTTPS_PROXY: 'http://u%3Ax:p%40ss@10.1.1.1:3128' })!;
  assert.equal(withAuth.authorization, `Basic ${Buffer.from('u:x:p@ss').toString('base64')}`);
  assert.equal(withAuth.name, 'proxy http://10.1.1.1:3128 (from HTTPS_PROXY)');
  assert.throws(() => proxyFor(https, { HTTPS_PROXY: 'http://:1' }), (e) => isHutchError(e, 'EINVAL') && /HTTPS_PROXY/.test(e.message));
});

test('NO_PROXY entries match as in Go: names, suffixes, *, IPs, CIDRs, ports, loopback', () => {
  const cases: [string, string, string, boolean][] = [
    ['example.com', 'example.com', '443', true], ['example.com', 'a.b.example.com', '443', true], ['example.com', 'notexample.com', '443', false],
    ['.example.com', 'example.com', '443', false], ['.example.com', 'x.example.com', '443', true], ['*.example.com', 'x.example.com', '443', true],
    ['EXAMPLE.com', 'example.com', '443', true], [' a.test , example.com ', 'example.com', '443', true],
    ['example.com:5000', 'example.com', '5000', true], ['example.com:5000', 'example.com', '443', false],
    ['*', 'anything.at.all', '1', true], ['a.test,*', 'b.test', '1', true], ['*x.test', 'ax.test', '443', false],
    ['10.1.2.3', '10.1.2.3', '443', true], ['10.1.2.3', '10.1.2.4', '443', false], ['10.1.2.3:5000', '10.1.2.3', '443', false],
    ['10.0.0.0/8', '10.200.1.1', '443', true], ['10.0.0.0/8', '11.0.0.1', '443', false], ['fd00::/8', 'fd00::5', '443', true],
    ['::1', '2001:db8::1', '443', false], ['[2001:db8::1]:443', '2001:db8::1', '443', true], ['2001:db8::1', '2001:db8::1', '5000', true],
    ['', 'localhost', '80', true], ['', '127.0.0.1', '5000', true], ['', '127.9.9.9', '5000', true], ['', '::1', '5000', true],
    ['', 'registry.test', '443', false], ['', 'foo.localhost', '443', false], [',,', 'a.test', '443', false],
    // IPv6 entries are for IPv6 hosts only (Go's rule), but IPv4-mapped ones (and hosts) match IPv4 too.
    ['::/0', '10.1.2.3', '443', false], ['2001:db8::/32', '10.1.2.3', '443', false],
    ['::ffff:0:0/96', '10.1.2.3', '443', true], ['::ffff:10.1.2.3', '10.1.2.3', '443', true], ['::ffff:10.1.2.3', '10.1.2.4', '443', false],
    ['::/0', '2001:db8::1', '443', true], ['10.0.0.0/8', '::ffff:10.1.2.3', '443', true],
    // International names as URLs carry them (punycode).
    ['bücher.example', 'xn--bcher-kva.example', '443', true], ['.bücher.example', 'a.xn--bcher-kva.example', '443', true],
    ['.bücher.example', 'xn--bcher-kva.example', '443', false],
  ];
  for (const [list, host, port, bypass] of cases) {
    assert.equal(bypassesProxy(host, port, parseNoProxy(list)), bypass, `NO_PROXY=${JSON.stringify(list)} for ${host}:${port}`);
  }
  assert.equal(proxyFor(new URL('https://Example.COM/v2/'), { HTTPS_PROXY: 'p:1', no_proxy: 'example.com:443' }), undefined, 'the default port counts');
});

test('a proxy URL that does not parse never shows its password, whatever characters it holds', () => {
  for (const [value, shown] of [
    ['http://alice:pa/ss@proxy:3128', '"http://***@proxy:3128"'], ['alice:pa/ss@proxy:3128', '"***@proxy:3128"'],
    ['http://alice:p%zzss@proxy:3128', '"http://***@proxy:3128"'],
    ['ftp://alice:pa/ss@proxy', '"ftp://***@proxy"'], ['http://proxy:bad', '"http://proxy:bad"'],
  ] as const) {
    assert.throws(() => parseProxyUrl('HTTPS_PROXY', value), (e) => isHutchError(e, 'EINVAL') && e.message.includes(shown)
      && !/pa\/ss|zzss/.test(e.message), value);
  }
});

test('a proxy\'s answer to CONNECT is shown on one line without control characters (no terminal escapes)', async () => {
  let answer = '';
  const fake = net.createServer((s) => { s.on('error', () => undefined); s.once('data', () => s.end(answer)); });
  await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
  const target = { hostname: '127.0.0.1', port: (fake.address() as AddressInfo).port, tls: false, name: 'proxy http://fake', variable: 'HTTPS_PROXY', key: 'fake' };
  try {
    for (const [sent, shown] of [
      ['HTTP/1.1 418 \x1b[31mteapot\x1b[0m\r\n\r\n', '(418 ?[31mteapot?[0m)'],
      ['HELLO\nthere\x07\r\n\r\n', 'with HTTP: "HELLO?there?"'],
    ] as const) {
      answer = sent;
      await assert.rejects(openTunnel(target, 'reg.test:443', 2000), (e) => {
        const message = (e as Error).message;
        return message.includes(shown) && !/[\x00-\x1f\x7f]/.test(message);
      }, JSON.stringify(sent));
    }
  } finally {
    await new Promise<void>((r) => fake.close(() => r()));
  }
});
