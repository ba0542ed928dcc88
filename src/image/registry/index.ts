// The OCI distribution (registry v2) client: manifests and indexes, blobs, auth, retries. One client
// may serve many concurrent downloads: its agents, challenges and tokens are shared.
import type { Socket } from 'node:net';
import { HutchError, errnoCode } from '../../errors.js';
import { formatReference } from '../reference.js';
import type { Descriptor, ImageManifest, ImagePlatform, ImageReference, ProgressEvent } from '../types.js';
import { RegistryAuth, authFiles } from './auth.js';
import { downloadToFile, fetchBlobToMemory, sha256, type BlobJob, type DownloadReport } from './blobs.js';
import { MANIFEST_ACCEPT, MAX_MANIFEST_BYTES, formatPlatform, hostPlatform, parseManifest, selectPlatform, type ParsedManifest } from './manifests.js';
import { describeNetworkError, makeAgents, readBody, retryAfterMs, send, TransientFailure, withRetries, type Agents, type Exchange, type RetryPolicy, type SendOptions } from './transport.js';

export { parsePlatform, formatPlatform, hostPlatform, platformMatches, MAX_MANIFEST_BYTES } from './manifests.js';
export { parseChallenge, authFiles, findCredentials, type Credentials } from './auth.js';
export type { DownloadReport } from './blobs.js';

/** How the client reaches registries. */
export interface RegistryOptions {
  /** Registries (host[:port]) reached without TLS checks, or over plain http when https fails; `true` = every registry. */
  insecure?: boolean | string[];
  /** Docker-style auth file; default $REGISTRY_AUTH_FILE, then ~/.docker/config.json. */
  authFile?: string;
  /** Attempts per request on network errors and 5xx/429 (with back-off); default 4. */
  retries?: number;
  /** Per-request timeout for headers and between body chunks; default 30 s. */
  timeoutMs?: number;
  /** Limit for making a connection (TCP and TLS); default 5 s, at most `timeoutMs`. A host that twice cannot be connected to is not tried further. */
  connectTimeoutMs?: number;
  /** First back-off between attempts (doubles each time, with jitter); default 250 ms. */
  retryDelayMs?: number;
}

/** A manifest resolved for one platform. */
export interface ResolvedManifest {
  /** Digest of the manifest itself (not of the index). */
  digest: string;
  mediaType: string;
  bytes: Buffer;
  manifest: ImageManifest;
  /** The index it was picked from, when the reference named an index. */
  indexDigest?: string;
  /** The platform of the index entry that was picked. */
  platform?: ImagePlatform;
}

/** A manifest document as fetched. */
interface FetchedManifest { digest: string; bytes: Buffer; parsed: ParsedManifest }

/** A client for OCI registries: manifests, blobs, auth. */
export class RegistryClient {
  private readonly agents: Agents = makeAgents();
  private readonly auth: RegistryAuth;
  private readonly policy: RetryPolicy;
  private readonly downloads = new Map<string, Promise<DownloadReport>>();
  /** The scheme each insecure registry answered on. */
  private readonly schemes = new Map<string, 'https' | 'http'>();

  constructor(readonly options: RegistryOptions = {}) {
    this.auth = new RegistryAuth(authFiles(options.authFile), (url) => this.sendOptions(url, {}));
    this.policy = { attempts: Math.max(1, options.retries ?? 4), baseDelayMs: options.retryDelayMs ?? 250, maxDelayMs: 10_000 };
  }

  /** Fetches the manifest of `ref`; an index is resolved to the entry for `platform` (default: this machine's). */
  async resolveManifest(ref: ImageReference, platform?: ImagePlatform): Promise<ResolvedManifest> {
    const what = formatReference(ref);
    const top = await this.fetchManifest(ref, ref.digest ?? ref.tag ?? 'latest', what);
    if (top.parsed.kind === 'manifest') {
      return { digest: top.digest, mediaType: top.parsed.mediaType, bytes: top.bytes, manifest: top.parsed.manifest };
    }
    const entry = selectPlatform(top.parsed.index, platform ?? hostPlatform(), what);
    const child = await this.fetchManifest(ref, entry.digest, `${what} (${formatPlatform(entry.platform!)})`, entry);
    if (child.parsed.kind !== 'manifest') {
      throw new HutchError('EUNSUPPORTED', `${what}: the index entry for ${formatPlatform(entry.platform!)} is itself an index`, { id: what });
    }
    return {
      digest: child.digest, mediaType: child.parsed.mediaType, bytes: child.bytes, manifest: child.parsed.manifest,
      indexDigest: top.digest, platform: entry.platform!,
    };
  }

  /** Fetches a small blob (a config) into memory, verified against `desc`; refuses more than `maxBytes`. */
  async fetchBlob(ref: ImageReference, desc: Descriptor, maxBytes = 16 * 1024 * 1024): Promise<Buffer> {
    return fetchBlobToMemory(this.blobJob(ref, desc), maxBytes);
  }

  /**
   * Downloads a blob to `dest`: resumes `${dest}.partial` when it exists, verifies size and digest,
   * then renames into place. A mismatch removes the partial file and throws. Concurrent calls for
   * the same `dest` share one download.
   */
  async downloadBlob(ref: ImageReference, desc: Descriptor, dest: string, onProgress?: (e: ProgressEvent) => void): Promise<void> {
    await this.downloadBlobWithReport(ref, desc, dest, onProgress);
  }

  /** downloadBlob, telling how much was resumed and how many requests the body took. */
  async downloadBlobWithReport(ref: ImageReference, desc: Descriptor, dest: string, onProgress?: (e: ProgressEvent) => void): Promise<DownloadReport> {
    const running = this.downloads.get(dest);
    if (running) return running;
    const job = downloadToFile(this.blobJob(ref, desc, onProgress), dest).finally(() => this.downloads.delete(dest));
    this.downloads.set(dest, job);
    return job;
  }

  /** Closes idle keep-alive connections; requests still running are not touched, and the client stays usable. */
  close(): void {
    for (const agent of Object.values(this.agents)) {
      for (const sockets of Object.values(agent.freeSockets) as (Socket[] | undefined)[]) for (const socket of sockets ?? []) socket.destroy();
    }
  }

  private isInsecure(host: string): boolean {
    const list = this.options.insecure;
    return list === true || (Array.isArray(list) && list.includes(host));
  }

  /**
   * Sends a request to a registry's API (docker.io's lives at registry-1.docker.io). Secure registries
   * get https; an insecure one gets https without certificate checks, and plain http when that fails
   * with a TLS error or a refused connection (the scheme that worked is remembered).
   */
  private async sendToRegistry(registry: string, pathAndQuery: string, headers: Record<string, string>): Promise<Exchange> {
    const host = registry === 'docker.io' ? 'registry-1.docker.io' : registry;
    const known = this.isInsecure(registry) ? this.schemes.get(registry) : 'https';
    const to = (scheme: string): URL => new URL(`${scheme}://${host}${pathAndQuery}`);
    if (known) return send(to(known), this.sendOptions(to(known), headers));
    try {
      const ex = await send(to('https'), this.sendOptions(to('https'), headers));
      this.schemes.set(registry, 'https');
      return ex;
    } catch (e) {
      const why = describeNetworkError(e, host);
      if (!why.tls && errnoCode(e) !== 'ECONNREFUSED') throw e;
      const ex = await send(to('http'), this.sendOptions(to('http'), headers));
      this.schemes.set(registry, 'http');
      return ex;
    }
  }

  private sendOptions(url: URL, headers: Record<string, string>): SendOptions {
    const timeoutMs = this.options.timeoutMs ?? 30_000;
    const connectTimeoutMs = Math.min(this.options.connectTimeoutMs ?? 5_000, timeoutMs);
    return { headers, timeoutMs, connectTimeoutMs, agents: this.agents, insecureTls: this.isInsecure(url.host) };
  }

  private blobJob(ref: ImageReference, desc: Descriptor, onProgress?: (e: ProgressEvent) => void): BlobJob {
    const what = `${ref.registry}/${ref.repository}`;
    const open = (offset: number): Promise<Exchange> =>
      this.open(ref, `blobs/${desc.digest}`, offset > 0 ? { Range: `bytes=${offset}-` } : {},
        (detail) => new HutchError('ENOTFOUND', `blob ${desc.digest} not found in ${what}${detail}`, { id: desc.digest }));
    const job: BlobJob = { desc, what, host: ref.registry, policy: this.policy, open };
    if (onProgress) job.onProgress = onProgress;
    return job;
  }

  /** Fetches one manifest document by tag or digest, with size cap and digest checks. */
  private async fetchManifest(ref: ImageReference, reference: string, what: string, expected?: Descriptor): Promise<FetchedManifest> {
    return withRetries(`manifest of ${what}`, ref.registry, this.policy, async () => {
      const ex = await this.open(ref, `manifests/${reference}`, { Accept: MANIFEST_ACCEPT },
        (detail) => new HutchError('ENOTFOUND', `image ${what} not found${detail}`, { id: what }));
      if (ex.status !== 200) {
        ex.body.resume();
        throw new HutchError('EPROTO', `registry answered ${ex.status} for the manifest of ${what}`, { id: what });
      }
      const bytes = await readBody(ex, MAX_MANIFEST_BYTES, `manifest of ${what}`);
      const digest = sha256(bytes);
      const pinned = reference.startsWith('sha256:') ? reference : undefined;
      const announced = String(ex.headers['docker-content-digest'] ?? '');
      for (const [claim, source] of [[pinned, 'the reference'], [announced.startsWith('sha256:') ? announced : undefined, 'the registry\'s Docker-Content-Digest']] as const) {
        if (claim && claim !== digest) {
          throw new HutchError('EINTEGRITY', `manifest of ${what} does not match ${source} ${claim} (the content has ${digest})`, { id: what });
        }
      }
      if (expected && expected.size !== bytes.length) {
        throw new HutchError('EINTEGRITY', `manifest of ${what} is ${bytes.length} bytes, not the ${expected.size} its index entry says`, { id: what });
      }
      return { digest, bytes, parsed: parseManifest(bytes, ex.headers['content-type'], what) };
    });
  }

  /**
   * One GET under /v2/<repo>/ with auth: a 401 is answered (token or basic) and the request sent
   * again. Resolves with a 200, 206 or 416; 404 → `notFound()`; 401/403 → EAUTH; 429/5xx → transient.
   */
  private async open(ref: ImageReference, path: string, headers: Record<string, string>, notFound: (detail: string) => HutchError): Promise<Exchange> {
    const at = `/v2/${ref.repository}/${path}`;
    let auth = await this.auth.headersFor(ref.registry, ref.repository);
    let ex = await this.sendToRegistry(ref.registry, at, { ...headers, ...auth });
    if (ex.status === 401) {
      ex.body.resume();
      auth = await this.auth.answerChallenge(ref.registry, ref.repository, ex.headers['www-authenticate'], auth.Authorization, ex.url);
      ex = await this.sendToRegistry(ref.registry, at, { ...headers, ...auth });
    }
    if (ex.status === 200 || ex.status === 206 || ex.status === 416) return ex;
    const detail = await errorDetail(ex);
    const repo = `${ref.registry}/${ref.repository}`;
    if (ex.status === 404) throw notFound(detail);
    if (ex.status === 401 || ex.status === 403) throw this.auth.refused(ref.registry, ref.repository, detail);
    if (ex.status === 429 || ex.status >= 500) {
      throw new TransientFailure(`registry ${ref.registry} answered ${ex.status} for ${path}${detail}`, retryAfterMs(ex.headers['retry-after'], 30_000));
    }
    throw new HutchError('EPROTO', `registry ${ref.registry} answered ${ex.status} for ${repo}/${path}${detail}`, { id: repo });
  }
}

/** The registry's own words about an error (`: NAME_UNKNOWN repository name not known`), or ''. */
async function errorDetail(ex: Exchange): Promise<string> {
  try {
    const body = await readBody(ex, 64 * 1024, 'error body');
    const doc = JSON.parse(body.toString('utf8')) as { errors?: { code?: string; message?: string }[] };
    const first = doc.errors?.[0];
    return first ? `: ${[first.code, first.message].filter(Boolean).join(' ')}` : '';
  } catch {
    // Not JSON, too long or cut off: the status alone says what happened.
    ex.body.destroy();
    return '';
  }
}
