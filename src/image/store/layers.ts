// Storing one image whose manifest and config are known: layer blobs made present (downloaded or
// imported), missing layers unpacked bottom-up, each checked against the config's diff_ids, and the
// record and names written last, so a failure never leaves a registered image.
import fs from 'node:fs';
import path from 'node:path';
import { HutchError } from '../../errors.js';
import { MEDIA, type IdMapping, type ImageConfigFile, type ImageManifest, type ImageRecord, type ProgressEvent, type StoredLayer } from '../types.js';
import { chainIds, exists, hexOf, isDigest, lockAsync, removeTree, sha256Of, syncDir, writeFileAtomic, type StoreLayout } from './layout.js';
import type { ImageRecords } from './records.js';
import { writeLayerRecord } from './sizes.js';

/** An image ready to be stored: its manifest and config bytes, and how to get each layer's blob. */
export interface ImageToStore {
  manifestBytes: Buffer;
  manifest: ImageManifest;
  configBytes: Buffer;
  /** Canonical names to point at it; repo@digest names it is known by. */
  names: string[];
  repoDigests: string[];
  /** Makes the blob of manifest layer `i` present in the store (called only for layers not yet unpacked). */
  fetchLayer(i: number): Promise<void>;
  onProgress?: (e: ProgressEvent) => void;
}

/** What storing needs from the store. */
export interface StoreParts { layout: StoreLayout; records: ImageRecords; ids: IdMapping }

const LAYER_TYPES = new Set<string>([MEDIA.ociLayer, MEDIA.ociLayerGzip, MEDIA.ociLayerZstd, MEDIA.dockerLayerGzip, 'application/vnd.docker.image.rootfs.diff.tar']);
const DOWNLOADS_AT_ONCE = 3;

/** Checks a manifest's shape; EINVAL naming what is wrong. */
export function checkManifest(m: ImageManifest, what: string): void {
  if (m === null || typeof m !== 'object' || m.schemaVersion !== 2 || typeof m.config?.digest !== 'string' || !Array.isArray(m.layers)) {
    throw new HutchError('EINVAL', `${what}: not an image manifest (schemaVersion 2 with a config and layers)`);
  }
  for (const d of [m.config, ...m.layers]) {
    if (!isDigest(d.digest)) throw new HutchError('EUNSUPPORTED', `${what}: blob digest ${String(d.digest).slice(0, 80)} is not sha256`);
    if (!Number.isSafeInteger(d.size) || d.size < 0) throw new HutchError('EINVAL', `${what}: blob ${d.digest} has a bad size ${String(d.size)}`);
  }
  for (const l of m.layers) {
    if (l.mediaType === MEDIA.dockerForeignLayerGzip) throw new HutchError('EUNSUPPORTED', `${what}: layer ${l.digest} is a foreign layer (not distributable); hutch does not fetch those`);
    if (l.mediaType !== undefined && !LAYER_TYPES.has(l.mediaType)) throw new HutchError('EUNSUPPORTED', `${what}: layer ${l.digest} has media type ${l.mediaType}, which hutch cannot unpack`);
  }
}

/** Parses and checks a config blob against its manifest. */
export function parseConfig(bytes: Buffer, manifest: ImageManifest, what: string): ImageConfigFile {
  let cfg: ImageConfigFile;
  try {
    cfg = JSON.parse(bytes.toString('utf8')) as ImageConfigFile;
  } catch (e) {
    throw new HutchError('EINVAL', `${what}: config ${manifest.config.digest} is not JSON: ${(e as Error).message}`, { cause: e });
  }
  const diffIds = cfg?.rootfs?.diff_ids;
  if (!Array.isArray(diffIds) || !diffIds.every((d) => typeof d === 'string' && isDigest(d))) {
    throw new HutchError('EINVAL', `${what}: config ${manifest.config.digest} has no valid rootfs.diff_ids`);
  }
  if (diffIds.length !== manifest.layers.length) {
    throw new HutchError('EINVAL', `${what}: config lists ${diffIds.length} diff_ids but the manifest has ${manifest.layers.length} layers`);
  }
  if (cfg.config !== undefined && (cfg.config === null || typeof cfg.config !== 'object')) throw new HutchError('EINVAL', `${what}: config.config is not an object`);
  return cfg;
}

/** Puts bytes into the store as a blob after checking them against `digest`. */
export function putBlobBytes(layout: StoreLayout, digest: string, bytes: Buffer): void {
  const got = sha256Of(bytes);
  if (got !== digest) throw new HutchError('EINTEGRITY', `blob ${digest} has digest ${got}: refusing it`);
  if (!exists(layout.blob(digest))) writeFileAtomic(layout.blob(digest), bytes);
}

/** Stores the image: unpacks its missing layers and registers it; returns the record. */
export async function storeImage(parts: StoreParts, img: ImageToStore, what: string): Promise<ImageRecord> {
  const { layout } = parts;
  checkManifest(img.manifest, what);
  const cfg = parseConfig(img.configBytes, img.manifest, what);
  const id = img.manifest.config.digest;
  putBlobBytes(layout, id, img.configBytes);
  putBlobBytes(layout, sha256Of(img.manifestBytes), img.manifestBytes);
  const diffIds = cfg.rootfs.diff_ids;
  const chains = chainIds(diffIds);
  const dirs = chains.map((c) => layout.layer(c));
  const report = (i: number, phase: ProgressEvent['phase']): void => {
    const l = img.manifest.layers[i]!;
    img.onProgress?.({ digest: l.digest, phase, done: phase === 'done' || phase === 'exists' ? l.size : 0, total: l.size });
  };

  // Downloads run ahead (a few at a time) while layers unpack in order, each on top of the ones below.
  const pool = new FetchPool((i) => img.fetchLayer(i));
  const fetchOnce = (i: number): Promise<void> => pool.fetch(img.manifest.layers[i]!.digest, i);
  const missing = dirs.map((d) => !exists(d));
  missing.forEach((m, i) => { if (m) void fetchOnce(i); });
  try {
    for (let i = 0; i < dirs.length; i++) {
      if (!missing[i]) { report(i, 'exists'); continue; }
      await fetchOnce(i);
      await unpackOne(parts, img, i, diffIds[i]!, dirs, what);
      report(i, 'done');
    }
  } finally {
    // Never return while a download still writes into the store; queued ones are not started.
    await pool.stop();
  }

  const layers: StoredLayer[] = img.manifest.layers.map((l, i) => ({
    digest: l.digest, mediaType: l.mediaType ?? MEDIA.ociLayerGzip, size: l.size, diffId: diffIds[i]!, chainId: chains[i]!,
  }));
  const record: ImageRecord = {
    id, names: img.names, manifestDigest: sha256Of(img.manifestBytes), repoDigests: img.repoDigests,
    architecture: String(cfg.architecture ?? ''), os: String(cfg.os ?? ''),
    ...(typeof cfg.created === 'string' ? { created: cfg.created } : {}),
    storedAt: new Date().toISOString(), size: layers.reduce((s, l) => s + l.size, 0), layers, config: cfg.config ?? {},
  };
  const lock = await lockAsync(layout.lock('names'), 'exclusive', 60_000);
  try {
    return parts.records.register(record, img.names);
  } finally {
    lock.release();
  }
}

/** Runs fetches (one per blob digest) at most DOWNLOADS_AT_ONCE at a time; stop() cancels queued ones and waits for running ones. */
class FetchPool {
  private readonly started = new Map<string, Promise<void>>();
  private readonly queue: (() => void)[] = [];
  private running = 0;
  private stopped = false;

  constructor(private readonly run: (i: number) => Promise<void>) {}

  fetch(digest: string, i: number): Promise<void> {
    let p = this.started.get(digest);
    if (p) return p;
    p = new Promise<void>((resolve, reject) => {
      const go = (): void => {
        if (this.stopped) { reject(new HutchError('EINTERNAL', `download of ${digest} cancelled`)); return; }
        this.running++;
        this.run(i).then(resolve, reject).finally(() => { this.running--; this.queue.shift()?.(); });
      };
      if (this.running < DOWNLOADS_AT_ONCE) go(); else this.queue.push(go);
    });
    p.catch(() => { /* the unpack loop awaits it; this marks it handled while it waits its turn */ });
    this.started.set(digest, p);
    return p;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const go of this.queue.splice(0)) go(); // each rejects at once
    await Promise.allSettled(this.started.values());
  }
}

/** Unpacks layer `i` under its lock (another pull may have made it meanwhile) and checks its diff id. */
async function unpackOne(parts: StoreParts, img: ImageToStore, i: number, diffId: string, dirs: string[], what: string): Promise<void> {
  const target = dirs[i]!;
  const lock = await lockAsync(parts.layout.lock(`layer-${path.basename(target)}`), 'exclusive');
  try {
    if (!exists(target)) await unpackLocked(parts, img, i, diffId, dirs, what);
  } finally {
    lock.release();
  }
}

/** Space kept free on the store's filesystem whatever a layer says it needs: 5% of it, at most 512 MiB. */
const RESERVE_SHARE = 0.05;
const RESERVE_MAX_BYTES = 512 * 1024 * 1024;
/** Sets the reserve instead (bytes, or with a k/m/g suffix; 0 = none). */
export const RESERVE_ENV = 'HUTCH_IMAGE_STORE_RESERVE';

/** The reserve for a filesystem of `totalBytes`: $HUTCH_IMAGE_STORE_RESERVE, else 5% of it up to 512 MiB. */
export function storeReserve(totalBytes: number, env = process.env[RESERVE_ENV]): number {
  if (env === undefined || env === '') return Math.min(RESERVE_MAX_BYTES, Math.floor(totalBytes * RESERVE_SHARE));
  const m = /^(\d+)([kmg]?)b?$/i.exec(env.trim());
  if (!m) throw new HutchError('EINVAL', `invalid ${RESERVE_ENV} "${env.slice(0, 40)}": give bytes, or a size such as 256m or 1g`);
  return Number(m[1]) * 1024 ** ' kmg'.indexOf((m[2] || ' ').toLowerCase());
}

/** How many uncompressed bytes one layer may have (the free space of `dir`'s filesystem less a reserve), and why. */
function unpackBudget(dir: string): { maxBytes: number; limitReason: string } {
  const st = fs.statfsSync(dir);
  const free = st.bavail * st.bsize;
  const reserve = storeReserve(st.blocks * st.bsize);
  const mib = (n: number) => `${(n / 1048576).toFixed(n < 10 * 1048576 ? 1 : 0)} MiB`;
  return {
    maxBytes: Math.max(0, free - reserve),
    limitReason: `the image store's filesystem (${dir}) has ${mib(free)} free, of which ${mib(reserve)} is kept in reserve (${RESERVE_ENV}); free some space (hutch rmi) or lower the reserve`,
  };
}

/** Unpacks into a work dir, checks the diff id, then renames the layer into place. */
async function unpackLocked(parts: StoreParts, img: ImageToStore, i: number, diffId: string, dirs: string[], what: string): Promise<void> {
  const { layout } = parts;
  const desc = img.manifest.layers[i]!;
  const target = dirs[i]!;
  img.onProgress?.({ digest: desc.digest, phase: 'unpacking', done: 0, total: desc.size });
  const blob = layout.blob(desc.digest);
  if (!exists(blob)) throw new HutchError('EINTERNAL', `${what}: blob ${desc.digest} of layer ${i + 1} is missing from the store`, { path: blob });
  const work = layout.tempDir(`unpack-${hexOf(diffId).slice(0, 12)}`);
  try {
    const staged = path.join(work, 'layer');
    const { unpackLayer } = await import('../unpack/index.js');
    const result = await unpackLayer(blob, staged, {
      ids: parts.ids, lowerDirs: dirs.slice(0, i).reverse(), diffId, name: `${desc.digest} of ${what}`,
      // On disk before it is renamed into place (a crash must not leave a complete-looking layer
      // with lost data), and never larger than the store's free space less a reserve (a gzip bomb).
      sync: true, ...unpackBudget(layout.layers),
    });
    if (result.diffId !== diffId) {
      throw new HutchError('EINTEGRITY', `${what}: layer ${desc.digest} unpacks to diff id ${result.diffId}, but the image config says ${diffId}`);
    }
    fs.renameSync(staged, target);
    syncDir(layout.layers);
    // After the rename: a crash between the two leaves a layer without a record, measured when listed.
    writeLayerRecord(layout, `sha256:${path.basename(target)}`, diffId, result.diskSize);
  } finally {
    removeTree(work);
  }
}
