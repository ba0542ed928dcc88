// A pull: resolve the manifest, fetch and check the config, download the missing layer blobs (one
// download per blob across concurrent pulls: a per-blob lock, the second pull waits and finds the
// blob), then store the image. The whole pull holds the store's gc lock shared, so a prune waits.
import { HutchError } from '../../errors.js';
import type { FileLock } from '../../linux/index.js';
import { formatReference, parseReference } from '../reference.js';
import { formatPlatform, parsePlatform, platformMatches, type RegistryClient } from '../registry/index.js';
import type { Descriptor, ImagePlatform, ImageRecord, ImageReference, ProgressEvent } from '../types.js';
import { exists, hexOf, lockAsync, lockSync } from './layout.js';
import { checkManifest, putBlobBytes, storeImage, type StoreParts } from './layers.js';
import type { PullOptions } from './index.js';

/** Largest config blob accepted. */
const MAX_CONFIG_BYTES = 8 * 1024 * 1024;

/** Pulls `text` (an image reference) into the store. */
export async function pullImage(parts: StoreParts, text: string, opts: PullOptions): Promise<ImageRecord> {
  const ref = parseReference(text);
  const name = formatReference(ref);
  const { RegistryClient } = await import('../registry/index.js');
  const { platform, onProgress, ...registryOptions } = opts;
  // Loopback registries speak plain http unless told otherwise, as docker's default 127.0.0.0/8 rule has it.
  if (registryOptions.insecure === undefined && isLoopback(ref.registry)) registryOptions.insecure = [ref.registry];
  const client = new RegistryClient(registryOptions);
  const gc = await lockAsync(parts.layout.lock('gc'), 'shared', 5 * 60_000);
  try {
    parts.layout.sweepDeadTemp();
    const wanted = typeof platform === 'string' ? parsePlatform(platform) : platform;
    const resolved = await client.resolveManifest(ref, wanted);
    checkManifest(resolved.manifest, name);
    // An index entry was picked for its platform; a single manifest's platform is in its config.
    const config = await fetchConfig(parts, client, ref, resolved.manifest.config,
      (bytes) => { if (wanted && !resolved.platform) checkConfigPlatform(bytes, wanted, name); });
    const pinned = (digest: string): string => formatReference({ registry: ref.registry, repository: ref.repository, digest });
    const repoDigests = [pinned(resolved.digest), ...(resolved.indexDigest ? [pinned(resolved.indexDigest)] : [])];
    // Pulled by tag: named by it. Pulled by digest: named `repo@digest`, so it is not dangling.
    const names = ref.digest ? [pinned(ref.digest)] : [formatReference({ registry: ref.registry, repository: ref.repository, tag: ref.tag ?? 'latest' })];
    return await storeImage(parts, {
      manifestBytes: resolved.bytes, manifest: resolved.manifest, configBytes: config, names, repoDigests,
      fetchLayer: (i) => downloadOnce(parts, client, ref, resolved.manifest.layers[i]!, onProgress),
      ...(onProgress ? { onProgress } : {}),
    }, name);
  } finally {
    gc.release();
    client.close();
  }
}

/** True for `localhost`, `127.x.y.z` and `[::1]`, with or without a port. */
export function isLoopback(registry: string): boolean {
  const host = registry.startsWith('[') ? registry.slice(1, registry.indexOf(']')) : registry.split(':')[0]!;
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * Refuses a single-platform image whose config names another platform than the one asked for, as
 * docker does ("does not match the specified platform"): a pull never stores a wrong-arch image
 * under a name. A config without os and architecture is taken as it is.
 */
function checkConfigPlatform(configBytes: Buffer, want: ImagePlatform, name: string): void {
  let config: { os?: unknown; architecture?: unknown; variant?: unknown };
  try {
    config = JSON.parse(configBytes.toString('utf8')) as typeof config;
  } catch {
    return; // not JSON: the store's own check of the config says so
  }
  if (typeof config.os !== 'string' || typeof config.architecture !== 'string' || !config.os || !config.architecture) return;
  const have: ImagePlatform = { os: config.os, architecture: config.architecture, ...(typeof config.variant === 'string' && config.variant ? { variant: config.variant } : {}) };
  if (platformMatches(have, want)) return;
  throw new HutchError('ENOTFOUND', `${name} has no image for ${formatPlatform(want)} (it is a single-platform image for ${formatPlatform(have)})`, { id: name });
}

/** The config blob: from the store when there, else fetched (the client checks its digest; so do we); `check` runs before it is stored. */
async function fetchConfig(parts: StoreParts, client: RegistryClient, ref: ImageReference, desc: Descriptor, check: (bytes: Buffer) => void): Promise<Buffer> {
  const file = parts.layout.blob(desc.digest);
  if (exists(file)) {
    const { readFileSync } = await import('node:fs');
    const stored = readFileSync(file);
    check(stored);
    return stored;
  }
  if (desc.size > MAX_CONFIG_BYTES) throw new HutchError('EINVAL', `image config ${desc.digest} is ${desc.size} bytes; more than ${MAX_CONFIG_BYTES} is refused`);
  const bytes = await client.fetchBlob(ref, desc, MAX_CONFIG_BYTES);
  check(bytes);
  putBlobBytes(parts.layout, desc.digest, bytes);
  return bytes;
}

/** Makes a layer blob present: under its lock, downloaded (resuming a partial file) unless already there. */
async function downloadOnce(parts: StoreParts, client: RegistryClient, ref: ImageReference, desc: Descriptor, onProgress?: (e: ProgressEvent) => void): Promise<void> {
  const { layout } = parts;
  const file = layout.blob(desc.digest);
  if (exists(file)) { onProgress?.({ digest: desc.digest, phase: 'exists', done: desc.size, total: desc.size }); return; }
  const lockFile = layout.lock(`blob-${hexOf(desc.digest)}`);
  let lock: FileLock | null = lockSync(lockFile, 'exclusive', 0);
  if (!lock) {
    onProgress?.({ digest: desc.digest, phase: 'waiting', done: 0, total: desc.size });
    lock = await lockAsync(lockFile, 'exclusive');
  }
  try {
    if (exists(file)) { onProgress?.({ digest: desc.digest, phase: 'exists', done: desc.size, total: desc.size }); return; }
    // The client's own waiting/done events are not the layer's: it still has to be unpacked.
    const relay = onProgress && ((e: ProgressEvent): void => { if (e.phase !== 'waiting' && e.phase !== 'done') onProgress(e); });
    await client.downloadBlob(ref, desc, file, relay);
    if (!exists(file)) throw new HutchError('EINTERNAL', `download of ${desc.digest} ended without the blob in ${file}`, { path: file });
  } finally {
    lock.release();
  }
}
