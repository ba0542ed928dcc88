// Looking a path up through a stack of unpacked layer dirs the way overlayfs would see it: the
// nearest layer that has the path wins, whiteouts delete, opaque dirs hide the layers below.
// Used for hard links whose target is in a lower layer, and for the metadata of implied parents.
import * as fs from 'node:fs';
import { lgetxattr } from '../../linux/index.js';
import { entryError, lstatOrNull } from './paths.js';

/** The xattr overlayfs reads to make a dir opaque (host root mounts the layers: trusted.* applies). */
export const OPAQUE_XATTR = 'trusted.overlay.opaque';

/** An overlay whiteout: a character device 0/0. */
export function isWhiteout(st: fs.Stats): boolean {
  return st.isCharacterDevice() && st.rdev === 0;
}

/** Where a path was found: the index of the layer in the stack, its host path and lstat. */
export interface Found { layer: number; path: string; stat: fs.Stats }

/**
 * Finds layer-relative `rel` in `layers` (topmost first). A symlink met on the way is refused (the
 * path would resolve inside the sandbox, not here; or, with onSymlink 'absent', counts as not found);
 * null when no layer has it or it was deleted.
 * `entry` and `label` name the entry that asked, for errors.
 */
export function findInLayers(rel: string, layers: string[], label: string, entry: string, onSymlink: 'refuse' | 'absent' = 'refuse'): Found | null {
  const parts = rel.split('/');
  for (let i = 0; i < layers.length; i++) {
    let dir = layers[i]!;
    let hidesBelow = false;
    let complete = true;
    for (let c = 0; c < parts.length - 1; c++) {
      dir = `${dir}/${parts[c]}`;
      const st = lstatOrNull(dir);
      if (!st) {
        complete = false;
        break;
      }
      if (isWhiteout(st) || (!st.isDirectory() && !st.isSymbolicLink())) return null;
      if (st.isSymbolicLink()) {
        if (onSymlink === 'absent') return null;
        throw entryError('EPERM', label, entry, `refers to ${JSON.stringify(rel)} through the symlink ${JSON.stringify(parts.slice(0, c + 1).join('/'))}: refused`);
      }
      if (lgetxattr(dir, OPAQUE_XATTR)?.toString() === 'y') hidesBelow = true;
    }
    if (complete) {
      const p = `${layers[i]}/${rel}`;
      const st = lstatOrNull(p);
      if (st) return isWhiteout(st) ? null : { layer: i, path: p, stat: st };
    }
    if (hidesBelow) return null;
  }
  return null;
}
