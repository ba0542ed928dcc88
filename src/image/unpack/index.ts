// Safe layer unpacking. (Stub: the unpack helper fills it in.)
import { HutchError } from '../../errors.js';
import type { IdMapping } from '../types.js';

/** How one layer is unpacked. */
export interface UnpackOptions {
  /** Host ids the files get (inside id n → base + n). */
  ids: IdMapping;
  /** The unpacked dirs of the layers below this one, nearest first: hard links to their files are copied from there. */
  lowerDirs: string[];
  /** Largest number of entries accepted (default 1,000,000). */
  maxEntries?: number;
}

/** What unpacking a layer found. */
export interface UnpackResult {
  /** sha256 of the uncompressed tar: `sha256:<hex>`. */
  diffId: string;
  entries: number;
  /** Entries not made, by kind (e.g. devices), with a reason. */
  skipped: { name: string; reason: string }[];
}

/**
 * Unpacks the layer blob at `blob` (tar, gzip or zstd; detected from its first bytes) into `target`,
 * which must not exist: written in a temp dir beside it and renamed into place. Whiteouts become
 * overlayfs whiteouts, opaque dirs get the overlay opaque xattr. An entry that would write outside
 * the layer is refused with an error naming it, and nothing is left.
 */
export async function unpackLayer(blob: string, target: string, opts: UnpackOptions): Promise<UnpackResult> {
  void opts;
  throw new HutchError('EUNSUPPORTED', `layer unpacking not implemented yet: ${blob} → ${target}`);
}
