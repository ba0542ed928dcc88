// Safe layer unpacking: a layer blob (tar, gzip or zstd) becomes one overlayfs lower dir, written
// in a temp dir beside its target and renamed into place, or nothing at all. The rules (what is
// refused, skipped, how ids map, whiteouts) are in docs/image-unpack.md.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errnoCode, HutchError, isHutchError } from '../../errors.js';
import { assertCleanAbsolute, syncfs } from '../../linux/index.js';
import type { IdMapping } from '../types.js';
import { openLayer, type LayerCompression, type LayerStream } from './decompress.js';
import { TarReader } from './tar-reader.js';
import { LayerWriter, type SkippedEntry } from './writer.js';
import { layerDiskSize } from './size.js';

export { detectCompression, type LayerCompression } from './decompress.js';
export { OPAQUE_XATTR, isWhiteout } from './layers.js';
export type { SkippedEntry } from './writer.js';
export { layerDiskSize } from './size.js';

/** How one layer is unpacked. */
export interface UnpackOptions {
  /** Host ids the files get (inside id n → base + n). */
  ids: IdMapping;
  /** The unpacked dirs of the layers below this one, nearest first: hard links to their files are copied from there. */
  lowerDirs: string[];
  /** Largest number of entries accepted (default 1,000,000). */
  maxEntries?: number;
  /** The diffId the layer must have (`sha256:<hex>`, from the image config); a mismatch is EINTEGRITY and nothing is kept. */
  diffId?: string;
  /** What errors call the layer (e.g. its digest); default the blob's file name. */
  name?: string;
  /** Largest uncompressed size accepted, in bytes (default: no limit). */
  maxBytes?: number;
  /** Why maxBytes is what it is (the store's free space): said when a layer is over it, with code ENOSPC. */
  limitReason?: string;
  /** Write the layer out to disk (syncfs) before renaming it into place, so a crash cannot leave a complete-looking layer with lost data (default false: costs time on slow disks). */
  sync?: boolean;
}

/** What unpacking a layer found. */
export interface UnpackResult {
  /** sha256 of the uncompressed tar: `sha256:<hex>`. */
  diffId: string;
  entries: number;
  /** Entries not made, by kind (e.g. devices), with a reason. */
  skipped: SkippedEntry[];
  compression: LayerCompression;
  /** Size of the uncompressed tar, in bytes. */
  bytes: number;
  /** The unpacked layer's size on disk (see layerDiskSize: what `docker images` counts). */
  diskSize: number;
}

const DEFAULT_MAX_ENTRIES = 1_000_000;
/** Largest pax or GNU long-name header: real ones are a few hundred bytes. */
const MAX_META_BYTES = 1 << 20;
/** Most pax/GNU headers before one entry (real tars have up to 4: g, x, L, K). */
const MAX_META_RUN = 32;

/**
 * Unpacks the layer blob at `blob` (tar, gzip or zstd; detected from its first bytes) into `target`,
 * which must not exist: written in a temp dir beside it and renamed into place. Whiteouts become
 * overlayfs whiteouts, opaque dirs get the overlay opaque xattr. An entry that would write outside
 * the layer is refused with an error naming it, and nothing is left.
 */
export async function unpackLayer(blob: string, target: string, opts: UnpackOptions): Promise<UnpackResult> {
  const label = opts.name ?? path.basename(blob);
  assertCleanAbsolute(target, `layer ${label} target`);
  if (fs.existsSync(target)) throw new HutchError('EEXIST', `layer ${label}: target ${target} already exists`, { id: label, path: target });
  let tmp: string;
  try {
    tmp = fs.mkdtempSync(`${target}.tmp-`);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') throw new HutchError('ENOTFOUND', `layer ${label}: the dir of ${target} does not exist`, { id: label, path: target });
    throw new HutchError('EINTERNAL', `layer ${label}: cannot make a temp dir beside ${target}: ${(e as Error).message}`, { id: label, path: target, cause: e });
  }
  let input: LayerStream | undefined;
  let writer: LayerWriter | undefined;
  try {
    input = openLayer(blob, label);
    writer = new LayerWriter(tmp, opts.ids, opts.lowerDirs, label, opts.maxEntries ?? DEFAULT_MAX_ENTRIES);
    const reader = new TarReader(writer, label, { maxMetaBytes: MAX_META_BYTES, maxMetaRun: MAX_META_RUN });
    const hash = createHash('sha256');
    const maxBytes = opts.maxBytes ?? Infinity;
    let bytes = 0;
    let parsing = false; // an error while false came from reading or decompressing
    try {
      for await (const chunk of input.stream) {
        bytes += chunk.length;
        if (bytes > maxBytes) {
          throw opts.limitReason
            ? new HutchError('ENOSPC', `layer ${label} needs more than the ${maxBytes} bytes it may take uncompressed: ${opts.limitReason}`, { id: label })
            : new HutchError('EINVAL', `layer ${label} is over the limit of ${maxBytes} bytes uncompressed (${reader.where()})`, { id: label });
        }
        hash.update(chunk);
        parsing = true;
        reader.write(chunk);
        parsing = false;
      }
      // The decompressor's verdict first: "truncated gzip" says more than "truncated tar".
      await input.done();
    } catch (e) {
      throw !parsing && isHutchError(e, 'EINTEGRITY') ? withWhere(e, reader.where()) : e;
    }
    reader.finish();
    writer.finish();
    const diffId = `sha256:${hash.digest('hex')}`;
    if (opts.diffId !== undefined && opts.diffId !== diffId) {
      throw new HutchError('EINTEGRITY', `layer ${label} has diffId ${diffId}, not the expected ${opts.diffId}`, { id: label });
    }
    // Measured while the new files are in the page cache: one lstat per entry.
    const diskSize = layerDiskSize(tmp);
    if (opts.sync) syncTree(tmp);
    place(tmp, target, label);
    return { diffId, entries: writer.entries, skipped: writer.skipped, compression: input.compression, bytes, diskSize };
  } catch (e) {
    writer?.abort();
    await input?.close();
    throw removeTemp(tmp, e);
  }
}

/** Flushes the file system that `dir` is on: its files' data and metadata reach the disk. */
function syncTree(dir: string): void {
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    syncfs(fd, dir);
  } finally {
    fs.closeSync(fd);
  }
}

/** Renames the finished temp dir to `target`. */
function place(tmp: string, target: string, label: string): void {
  try {
    fs.renameSync(tmp, target);
  } catch (e) {
    const code = errnoCode(e);
    if (code === 'EEXIST' || code === 'ENOTEMPTY') throw new HutchError('EEXIST', `layer ${label}: target ${target} appeared while unpacking`, { id: label, path: target });
    throw new HutchError('EINTERNAL', `layer ${label}: cannot move the unpacked layer to ${target}: ${(e as Error).message}`, { id: label, path: target, cause: e });
  }
}

/** Removes the temp dir after `cause`; returns the error to throw (which says so if removing failed too). */
function removeTemp(tmp: string, cause: unknown): unknown {
  try {
    fs.rmSync(tmp, { recursive: true, force: true });
    return cause;
  } catch (e) {
    const first = cause instanceof Error ? cause.message : String(cause);
    return new HutchError('EINTERNAL', `${first}; and its temp dir ${tmp} could not be removed: ${(e as Error).message}`, { path: tmp, cause });
  }
}

/** `e` with where in the tar it happened added to its message. */
function withWhere(e: HutchError, where: string): HutchError {
  const about: { id?: string; path?: string; cause: unknown } = { cause: e.cause ?? e };
  if (e.id !== undefined) about.id = e.id;
  if (e.path !== undefined) about.path = e.path;
  return new HutchError(e.code, `${e.message} (${where})`, about);
}
