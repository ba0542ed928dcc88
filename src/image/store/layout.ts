// Where the store keeps things, and the small file operations every part of it uses: digests,
// chain ids, atomic writes, and locks (async for pulls, sync for the sync remove/prune API).
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { HutchError } from '../../errors.js';
import { FileLock, processAlive } from '../../linux/index.js';

const SHA256 = /^sha256:([0-9a-f]{64})$/;

/** The paths of one store root. */
export class StoreLayout {
  readonly blobs: string;
  readonly layers: string;
  readonly layerRecords: string;
  readonly images: string;
  readonly locks: string;
  readonly tmp: string;
  readonly namesFile: string;

  readonly root: string;

  constructor(root: string) {
    // Layer dirs become overlay lower dirs: they must be absolute.
    this.root = path.resolve(root);
    root = this.root;
    this.blobs = path.join(root, 'blobs', 'sha256');
    this.layers = path.join(root, 'layers');
    this.layerRecords = path.join(root, 'layer-records');
    this.images = path.join(root, 'images');
    this.locks = path.join(root, 'locks');
    this.tmp = path.join(root, 'tmp');
    this.namesFile = path.join(root, 'names.json');
  }

  /** Makes the store's dirs (root-only: layer dirs hold files of every sandbox user). */
  ensure(): void {
    for (const d of [this.blobs, this.layers, this.layerRecords, this.images, this.locks, this.tmp]) fs.mkdirSync(d, { recursive: true, mode: 0o700 });
  }

  /** The file of a blob. */
  blob(digest: string): string {
    return path.join(this.blobs, hexOf(digest));
  }

  /** The unpacked dir of a layer, by its chain id. */
  layer(chainId: string): string {
    return path.join(this.layers, hexOf(chainId));
  }

  /** The record file of an unpacked layer (its size on disk), by its chain id. */
  layerRecord(chainId: string): string {
    return path.join(this.layerRecords, `${hexOf(chainId)}.json`);
  }

  /** The record file of an image, by its id. */
  image(id: string): string {
    return path.join(this.images, `${hexOf(id)}.json`);
  }

  /** A lock file; `name` must be a plain file name. */
  lock(name: string): string {
    return path.join(this.locks, `${name}.lock`);
  }

  /** Removes work dirs under tmp/ whose process is gone (a killed pull or load); the caller holds the gc lock shared. */
  sweepDeadTemp(): void {
    let entries: string[];
    try {
      entries = fs.readdirSync(this.tmp);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    for (const e of entries) {
      const pid = Number(/^[a-z]+(?:-[0-9a-f]+)?-(\d+)-[0-9a-f]{8}$/.exec(e)?.[1]);
      if (Number.isInteger(pid) && pid > 0 && !processAlive(pid)) removeTree(path.join(this.tmp, e));
    }
  }

  /** A fresh private dir under tmp/ (removed by its user; a crash's leftovers go at the next pull, load or prune). */
  tempDir(tag: string): string {
    const dir = path.join(this.tmp, `${tag}-${process.pid}-${randomBytes(4).toString('hex')}`);
    fs.mkdirSync(dir, { mode: 0o700 });
    return dir;
  }
}

/** The hex of a `sha256:<hex>` digest; EINVAL for anything else (digests name files, so this guards paths). */
export function hexOf(digest: string): string {
  const m = SHA256.exec(digest);
  if (!m) throw new HutchError('EINVAL', `not a sha256 digest: ${JSON.stringify(digest).slice(0, 100)}`);
  return m[1]!;
}

/** True for `sha256:<64 hex>`. */
export function isDigest(text: string): boolean {
  return SHA256.test(text);
}

/** `sha256:<hex>` of `data`. */
export function sha256Of(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** Chain ids per the OCI image spec: chain(L0) = diff(L0), chain(Ln) = sha256(chain(Ln-1) + " " + diff(Ln)). */
export function chainIds(diffIds: string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) out.push(out.length === 0 ? d : sha256Of(`${out[out.length - 1]} ${d}`));
  return out;
}

/** Writes `data` to `file` atomically: temp file beside it, fsync, rename, fsync of the dir. */
export function writeFileAtomic(file: string, data: string | Buffer): void {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(3).toString('hex')}`;
  const fd = fs.openSync(tmp, 'wx', 0o600);
  try {
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  try {
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  syncDir(path.dirname(file));
}

/** fsync of a dir, so a rename into it survives a crash. */
export function syncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Parses a JSON file the store wrote; undefined when it does not exist. */
export function readJson<T>(file: string): T | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new HutchError('EINTEGRITY', `store file ${file} is not valid JSON: ${(e as Error).message}`, { path: file, cause: e });
  }
}

/** True when `p` exists (without following a final symlink). */
export function exists(p: string): boolean {
  try {
    fs.lstatSync(p);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

/** How long a pull waits for a lock another pull holds (a big layer may take that long to download). */
export const LONG_WAIT_MS = 60 * 60 * 1000;

/** Takes a lock, waiting up to `timeoutMs`. */
export function lockAsync(file: string, mode: 'shared' | 'exclusive', timeoutMs = LONG_WAIT_MS): Promise<FileLock> {
  return FileLock.acquire(file, mode, { timeoutMs });
}

/** Takes a lock from sync code: polls, sleeping between tries; null when not free within `timeoutMs`. */
export function lockSync(file: string, mode: 'shared' | 'exclusive', timeoutMs: number): FileLock | null {
  const deadline = Date.now() + timeoutMs;
  const nap = new Int32Array(new SharedArrayBuffer(4));
  for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
    const lock = FileLock.tryAcquire(file, mode);
    if (lock) return lock;
    if (Date.now() >= deadline) return null;
    Atomics.wait(nap, 0, 0, delay);
  }
}

/** Removes a file or dir tree (the store's own dirs hold no mounts; rm never follows symlinks). */
export function removeTree(p: string): void {
  fs.rmSync(p, { recursive: true, force: true, maxRetries: 3 });
}
