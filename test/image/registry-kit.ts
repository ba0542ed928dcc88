// Test kit for the registry client and for pull tests: a real registry (Debian's docker-registry) on
// loopback, images built in memory and pushed over the v2 API, and a "front": a small HTTP server in the
// test process that sits before the registry, demands auth (bearer tokens or basic) and makes faults.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { tar, type TarEntry } from '../e2e/tar.js';
import { endWithThisProcess } from '../suite-run.js';
import type { Descriptor, ImageIndex, ImageManifest, ImagePlatform, ImageRuntimeConfig } from '../../src/image/types.js';

export type { TarEntry } from '../e2e/tar.js';

/** `sha256:<hex>` of `data`. */
export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

// ---- the registry -------------------------------------------------------------------------------

/** A running docker-registry on 127.0.0.1 (plain http), storage in a temp dir. */
export interface TestRegistry {
  /** host:port, e.g. 127.0.0.1:41455 */
  host: string;
  dir: string;
  /** The registry's process. */
  pid: number;
  /** Kills the registry, waits for it, removes its dir. */
  stop(): Promise<void>;
}

/** Starts /usr/bin/docker-registry on a port the kernel picks; resolves once it listens. */
export async function startRegistry(): Promise<TestRegistry> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-registry-'));
  const config = path.join(dir, 'config.yml');
  fs.writeFileSync(config, [
    'version: 0.1', 'log:', '  level: info', '  accesslog:', '    disabled: true',
    'storage:', '  filesystem:', `    rootdirectory: ${path.join(dir, 'data')}`, '  delete:', '    enabled: true',
    'http:', '  addr: 127.0.0.1:0', '  secret: hutch-test-only', '',
  ].join('\n'));
  const child = spawn('/usr/bin/docker-registry', ['serve', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  endWithThisProcess(child); // a test that fails before stopping it must not hang on it
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  let log = '';
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    const host = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`docker-registry did not start: ${log.slice(-500)}`)), 15_000);
      const onData = (d: Buffer): void => {
        log += d.toString();
        const m = log.match(/listening on (127\.0\.0\.1:\d+)/);
        if (m) { clearTimeout(timer); resolve(m[1]!); }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.once('exit', () => { clearTimeout(timer); reject(new Error(`docker-registry exited: ${log.slice(-500)}`)); });
    });
    drain(child);
    return { host, dir, pid: child.pid!, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** Keeps reading the daemon's output (so it never blocks on a full pipe), keeping none of it. */
function drain(child: ChildProcess): void {
  child.stdout!.removeAllListeners('data').resume();
  child.stderr!.removeAllListeners('data').resume();
}

// ---- pushing images built in memory -------------------------------------------------------------

/** One raw HTTP exchange with a body read whole (for pushing). */
async function exchange(method: string, url: string, headers: Record<string, string> = {}, body?: Buffer): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers: { ...headers, ...(body ? { 'content-length': String(body.length) } : {}) } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Uploads one blob (monolithic: POST then PUT with the digest); returns its digest. */
export async function pushBlob(host: string, repo: string, data: Buffer): Promise<string> {
  const digest = sha256(data);
  const start = await exchange('POST', `http://${host}/v2/${repo}/blobs/uploads/`);
  if (start.status !== 202 || !start.headers.location) throw new Error(`blob upload start: ${start.status} ${start.body}`);
  const loc = new URL(start.headers.location, `http://${host}`);
  loc.searchParams.set('digest', digest);
  const put = await exchange('PUT', loc.href, { 'content-type': 'application/octet-stream' }, data);
  if (put.status !== 201) throw new Error(`blob upload: ${put.status} ${put.body}`);
  return digest;
}

/** PUTs a manifest or index under `reference` (a tag or its digest); returns the registry's digest. */
export async function putManifest(host: string, repo: string, reference: string, mediaType: string, bytes: Buffer): Promise<string> {
  const r = await exchange('PUT', `http://${host}/v2/${repo}/manifests/${reference}`, { 'content-type': mediaType }, bytes);
  if (r.status !== 201) throw new Error(`manifest put ${repo}:${reference}: ${r.status} ${r.body}`);
  return String(r.headers['docker-content-digest'] ?? sha256(bytes));
}

/** An image to build: layers as tar entries (gzipped here) or as finished blobs. */
export interface ImageInput {
  layers: (TarEntry[] | Buffer)[];
  /** Default linux/amd64. */
  platform?: ImagePlatform;
  runtime?: ImageRuntimeConfig;
  /** Media types: OCI (default) or Docker schema 2. */
  format?: 'oci' | 'docker';
}

/** What was pushed: the manifest, its digest and every blob. */
export interface PushedImage {
  repo: string;
  digest: string;
  mediaType: string;
  bytes: Buffer;
  manifest: ImageManifest;
  platform: ImagePlatform;
  configBytes: Buffer;
  /** The layer blobs as pushed, in manifest order; diffIds are the sha256 of their uncompressed tars. */
  layerBlobs: Buffer[];
  diffIds: string[];
}

/** Builds an image in memory (config JSON and gzipped layers) and pushes it; `tag` undefined = by digest only. */
export async function pushImage(host: string, repo: string, tag: string | undefined, input: ImageInput): Promise<PushedImage> {
  const oci = (input.format ?? 'oci') === 'oci';
  const platform = input.platform ?? { os: 'linux', architecture: 'amd64' };
  const layerBlobs: Buffer[] = [];
  const diffIds: string[] = [];
  const layers: Descriptor[] = [];
  for (const l of input.layers) {
    const raw = Buffer.isBuffer(l) ? l : tar(l);
    const gz = raw[0] === 0x1f && raw[1] === 0x8b;
    const blob = Buffer.isBuffer(l) ? l : zlib.gzipSync(raw);
    layerBlobs.push(blob);
    diffIds.push(sha256(gz ? zlib.gunzipSync(raw) : raw));
    const mediaType = oci ? (gz || !Buffer.isBuffer(l) ? 'application/vnd.oci.image.layer.v1.tar+gzip' : 'application/vnd.oci.image.layer.v1.tar')
      : 'application/vnd.docker.image.rootfs.diff.tar.gzip';
    layers.push({ mediaType, digest: await pushBlob(host, repo, blob), size: blob.length });
  }
  const configBytes = Buffer.from(JSON.stringify({
    ...platform, created: '2024-01-01T00:00:00Z',
    config: input.runtime ?? { Cmd: ['/bin/sh'], Env: ['PATH=/usr/bin:/bin'] },
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: diffIds.map(() => ({ created_by: 'registry-kit' })),
  }));
  const config: Descriptor = {
    mediaType: oci ? 'application/vnd.oci.image.config.v1+json' : 'application/vnd.docker.container.image.v1+json',
    digest: await pushBlob(host, repo, configBytes), size: configBytes.length,
  };
  const mediaType = oci ? 'application/vnd.oci.image.manifest.v1+json' : 'application/vnd.docker.distribution.manifest.v2+json';
  const manifest: ImageManifest = { schemaVersion: 2, mediaType, config, layers };
  const bytes = Buffer.from(JSON.stringify(manifest, null, 2));
  const digest = await putManifest(host, repo, tag ?? sha256(bytes), mediaType, bytes);
  return { repo, digest, mediaType, bytes, manifest, platform, configBytes, layerBlobs, diffIds };
}

/** Pushes an index (OCI, or a Docker manifest list) over images already pushed to `repo`; returns its digest and bytes. */
export async function pushIndex(host: string, repo: string, tag: string, images: PushedImage[], format: 'oci' | 'docker' = 'oci'): Promise<{ digest: string; bytes: Buffer; index: ImageIndex }> {
  const mediaType = format === 'oci' ? 'application/vnd.oci.image.index.v1+json' : 'application/vnd.docker.distribution.manifest.list.v2+json';
  const index: ImageIndex = {
    schemaVersion: 2, mediaType,
    manifests: images.map((i) => ({ mediaType: i.mediaType, digest: i.digest, size: i.bytes.length, platform: i.platform })),
  };
  const bytes = Buffer.from(JSON.stringify(index, null, 2));
  return { digest: await putManifest(host, repo, tag, mediaType, bytes), bytes, index };
}

// ---- the front: auth and faults -----------------------------------------------------------------

/** How the front guards the registry. */
export interface FrontOptions {
  /** `bearer`: token auth with its own /token endpoint; `basic`: basic auth; `none` (default): faults only. */
  auth?: 'none' | 'bearer' | 'basic';
  /** Accepted user → password. With users set, anonymous tokens are refused unless `anonymous` is true. */
  users?: Record<string, string>;
  anonymous?: boolean;
  /** Identity (refresh) tokens the token endpoint takes in an OAuth2 POST (grant_type=refresh_token) → user. */
  identityTokens?: Record<string, string>;
  /** Lifetime the token endpoint announces (expires_in), seconds; default 300. */
  tokenTtlSeconds?: number;
  /** Serve https with this key and certificate (PEM), e.g. from selfSignedCert(). */
  tls?: { key: string; cert: string };
  /** How long idle connections are kept, ms; default 1000 (which node's agents take as too short to reuse). */
  keepAliveMs?: number;
}

/** Faults the front makes; change them between requests. Counts go down as faults are made. */
export interface Faults {
  /** Paths the faults apply to (default: any /v2/<repo>/... path). */
  match: RegExp;
  /** The next N matching requests get their connection destroyed without an answer. */
  resets: number;
  /** The next `count` matching blob GETs are cut (connection destroyed) after `bytes` bytes of body. */
  cut: { bytes: number; count: number };
  /** The next `count` matching blob GETs stall (the connection stays open, nothing more is sent) after `bytes`. */
  stall: { bytes: number; count: number };
  /** The next `count` matching requests are answered with `code` (e.g. 503, 429), with an optional Retry-After. */
  status: { code: number; count: number; retryAfter?: string };
  /** Blob digests whose bodies get one byte changed. */
  corrupt: Set<string>;
  /** Forward requests without their Range header (a server that ignores Range). */
  ignoreRange: boolean;
  /** Answers a request itself when it returns something (e.g. a schema 1 or oversized manifest, a redirect). */
  respond?: (method: string, path: string) => { status: number; headers?: Record<string, string>; body?: Buffer } | undefined;
}

/** One request the front saw, after auth. */
export interface SeenRequest { method: string; path: string; range?: string; authorization?: string; status: number }

/** A running front. */
export interface RegistryFront {
  /** host:port to give the client. */
  host: string;
  faults: Faults;
  /** /v2 requests seen (including refused ones). */
  requests: SeenRequest[];
  /** Token requests: the Authorization header they came with and the scope asked for; a POST's method and form. */
  tokenRequests: { authorization?: string; scope?: string; status: number; method?: string; form?: Record<string, string> }[];
  stop(): Promise<void>;
}

/** Starts a front on 127.0.0.1 before the registry at `target` (host:port). */
export async function startFront(target: string, opts: FrontOptions = {}): Promise<RegistryFront> {
  const mode = opts.auth ?? 'none';
  const ttl = opts.tokenTtlSeconds ?? 300;
  const users = opts.users ?? {};
  const anonymous = opts.anonymous ?? Object.keys(users).length === 0;
  const tokens = new Map<string, number>(); // token → expiry (ms)
  const faults: Faults = { match: /^\/v2\/.+/, resets: 0, cut: { bytes: 0, count: 0 }, stall: { bytes: 0, count: 0 }, status: { code: 503, count: 0 }, corrupt: new Set(), ignoreRange: false };
  const requests: SeenRequest[] = [];
  const tokenRequests: RegistryFront['tokenRequests'] = [];
  let self = '';
  const userOf = (header: string | undefined): string | undefined | null => {
    if (!header?.startsWith('Basic ')) return undefined;
    const [u, ...p] = Buffer.from(header.slice(6), 'base64').toString().split(':');
    return users[u!] !== undefined && users[u!] === p.join(':') ? u! : null;
  };
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const url = new URL(req.url ?? '/', `http://${self}`);
    if (url.pathname === '/token' && req.method === 'POST') {
      // OAuth2 (docker's identity tokens): a form with grant_type=refresh_token; a refusal is 400 invalid_grant.
      const parts: Buffer[] = [];
      req.on('data', (d: Buffer) => parts.push(d));
      req.on('end', () => {
        const form = Object.fromEntries(new URLSearchParams(Buffer.concat(parts).toString('utf8')));
        const user = form.grant_type === 'refresh_token' ? opts.identityTokens?.[form.refresh_token ?? ''] : undefined;
        const ok = mode === 'bearer' && user !== undefined && !!form.client_id && form.service === 'hutch-test' && !!form.scope;
        tokenRequests.push({ authorization: req.headers.authorization, scope: form.scope, status: ok ? 200 : 400, method: 'POST', form });
        if (!ok) { res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"invalid_grant"}'); return; }
        const token = randomBytes(12).toString('hex');
        tokens.set(token, Date.now() + ttl * 1000);
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: token, expires_in: ttl, scope: form.scope }));
      });
      return;
    }
    if (url.pathname === '/token') {
      const user = userOf(req.headers.authorization);
      const ok = mode === 'bearer' && user !== null && (user !== undefined || anonymous);
      tokenRequests.push({ authorization: req.headers.authorization, scope: url.searchParams.get('scope') ?? undefined, status: ok ? 200 : 401 });
      if (!ok) { res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"bad credentials"}'); return; }
      const token = randomBytes(12).toString('hex');
      tokens.set(token, Date.now() + ttl * 1000);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, expires_in: ttl, issued_at: new Date().toISOString() }));
      return;
    }
    const seen: SeenRequest = { method: req.method ?? 'GET', path: url.pathname, range: req.headers.range, authorization: req.headers.authorization, status: 0 };
    requests.push(seen);
    const deny = (challenge: string): void => {
      seen.status = 401;
      res.writeHead(401, { 'www-authenticate': challenge, 'content-type': 'application/json' })
        .end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
    };
    const repo = url.pathname.match(/^\/v2\/(.+)\/(manifests|blobs|tags)\//)?.[1];
    if (mode === 'bearer') {
      const token = req.headers.authorization?.startsWith('Bearer ') ? req.headers.authorization.slice(7) : '';
      if (!((tokens.get(token) ?? 0) > Date.now())) {
        return deny(`Bearer realm="${opts.tls ? 'https' : 'http'}://${self}/token",service="hutch-test"${repo ? `,scope="repository:${repo}:pull"` : ''}`);
      }
    } else if (mode === 'basic' && !userOf(req.headers.authorization)) {
      return deny('Basic realm="hutch-test"');
    }
    const faulty = faults.match.test(url.pathname);
    if (faulty && faults.resets > 0) { faults.resets--; seen.status = -1; req.socket.destroy(); return; }
    if (faulty && faults.status.count > 0) {
      faults.status.count--;
      seen.status = faults.status.code;
      res.writeHead(faults.status.code, faults.status.retryAfter ? { 'retry-after': faults.status.retryAfter } : {}).end('fault');
      return;
    }
    const own = faults.respond?.(seen.method, url.pathname);
    if (own) { seen.status = own.status; res.writeHead(own.status, own.headers ?? {}).end(own.body); return; }
    const headers = { ...req.headers, host: target };
    delete headers.authorization;
    if (faults.ignoreRange) delete headers.range;
    const blob = url.pathname.match(/\/blobs\/(sha256:[0-9a-f]{64})$/)?.[1];
    const cut = faulty && blob && seen.method === 'GET' && faults.cut.count > 0 ? (faults.cut.count--, faults.cut.bytes) : -1;
    const stall = faulty && blob && seen.method === 'GET' && cut < 0 && faults.stall.count > 0 ? (faults.stall.count--, faults.stall.bytes) : -1;
    const up = http.request(`http://${target}${req.url}`, { method: req.method, headers }, (ur) => {
      seen.status = ur.statusCode ?? 0;
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      let sent = 0;
      let flipped = false;
      ur.on('data', (d: Buffer) => {
        if (blob && faults.corrupt.has(blob) && !flipped && d.length) { d = Buffer.from(d); d[0] = d[0]! ^ 0xff; flipped = true; }
        if (cut >= 0 && sent + d.length >= cut) { res.write(d.subarray(0, cut - sent)); res.socket?.destroy(); ur.destroy(); return; }
        if (stall >= 0 && sent + d.length >= stall) { res.write(d.subarray(0, stall - sent)); ur.destroy(); return; }
        sent += d.length;
        res.write(d);
      });
      ur.on('end', () => res.end());
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  };
  const server = opts.tls ? https.createServer(opts.tls, handler) : http.createServer(handler);
  server.keepAliveTimeout = opts.keepAliveMs ?? 1000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  self = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    host: self, faults, requests, tokenRequests,
    stop: () => new Promise<void>((r) => { server.close(() => r()); server.closeAllConnections(); }),
  };
}

/** A self-signed certificate (default for 127.0.0.1) made by openssl in `dir`; undefined when openssl is missing. */
export function selfSignedCert(dir: string, subjectAltName = 'IP:127.0.0.1'): { key: string; cert: string } | undefined {
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key,
    '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', `subjectAltName=${subjectAltName}`], { encoding: 'utf8' });
  if (r.error) return undefined;
  if (r.status !== 0) throw new Error(`openssl req failed: ${r.stderr}`);
  return { key: fs.readFileSync(key, 'utf8'), cert: fs.readFileSync(cert, 'utf8') };
}

/** A loopback port nothing listens on (for "unreachable registry" tests). */
export async function closedPort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/**
 * A loopback port whose connections never complete (like a host that drops packets): a child node
 * listens with a backlog of 1 and blocks its event loop; connections made here fill the accept queue.
 */
export async function startBlackhole(): Promise<{ host: string; stop(): Promise<void> }> {
  const script = "const s=require('net').createServer();s.listen({port:0,host:'127.0.0.1',backlog:1},()=>{process.stdout.write(s.address().port+'\\n');Atomics.wait(new Int32Array(new SharedArrayBuffer(4)),0,0)})";
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const fillers: net.Socket[] = [];
  const stop = async (): Promise<void> => { for (const f of fillers) f.destroy(); child.kill('SIGKILL'); await exited; };
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once('exit', () => reject(new Error('blackhole child exited')));
  });
  // Fill the queue until a connection hangs; that one is dropped too.
  for (let i = 0; i < 8; i++) {
    const f = net.connect(port, '127.0.0.1');
    f.on('error', () => undefined); // a filler only holds a place in the queue
    fillers.push(f);
    const connected = await Promise.race([new Promise<boolean>((r) => f.once('connect', () => r(true))), new Promise<boolean>((r) => setTimeout(() => r(false), 300))]);
    if (!connected) return { host: `127.0.0.1:${port}`, stop };
  }
  await stop();
  throw new Error('could not fill the accept queue of the blackhole');
}

/** Writes a Docker-style auth file (`auths[host].auth` = base64 user:pass) into `dir`; returns its path. */
export function writeAuthFile(dir: string, entries: Record<string, { username: string; password: string }>): string {
  const auths: Record<string, { auth: string }> = {};
  for (const [host, c] of Object.entries(entries)) auths[host] = { auth: Buffer.from(`${c.username}:${c.password}`).toString('base64') };
  const file = path.join(dir, 'auth.json');
  fs.writeFileSync(file, JSON.stringify({ auths }));
  return file;
}
