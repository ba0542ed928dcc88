// Which names a layer entry may have. A layer is untrusted input: a name that is absolute, climbs
// with `..`, holds a NUL or is longer than the kernel takes is refused before anything is written.
import fs from 'node:fs';
import { HutchError, type ErrorCode } from '../../errors.js';

/** Longest path the kernel takes, with its NUL (linux/limits.h). */
export const PATH_MAX = 4096;
/** Longest file name component. */
export const NAME_MAX = 255;

/** An error about one entry of a layer: `layer L: entry "name" <what>`. */
export function entryError(code: ErrorCode, label: string, name: string, what: string, cause?: unknown): HutchError {
  return new HutchError(code, `layer ${label}: entry ${JSON.stringify(name)} ${what}`, { id: label, path: name, cause });
}

/**
 * The layer-relative path of `raw` ('' for the layer root; `./a//b/` → `a/b`), or an error naming
 * `entry` (the entry's name) and what is wrong; `role` says which of its names it is
 * ('' for the entry's own name, e.g. 'has a hard link target that').
 */
export function layerPath(raw: string, label: string, entry = raw, role = ''): string {
  const subject = role ? `${role} ${JSON.stringify(raw)}` : 'name';
  if (raw.includes('\0')) throw entryError('EINVAL', label, entry, `${subject} holds a NUL byte: refused`);
  if (raw.startsWith('/')) throw entryError('EPERM', label, entry, `${subject} is absolute: refused (it would write outside the layer)`);
  if (raw === '') throw entryError('EINVAL', label, entry, `${subject} is empty: refused`);
  const parts: string[] = [];
  for (const part of raw.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') throw entryError('EPERM', label, entry, `${subject} has a ".." component: refused (it would write outside the layer)`);
    if (Buffer.byteLength(part) > NAME_MAX) throw entryError('EINVAL', label, entry, `${subject} has a component over ${NAME_MAX} bytes: refused`);
    parts.push(part);
  }
  const rel = parts.join('/');
  if (Buffer.byteLength(rel) >= PATH_MAX) throw entryError('EINVAL', label, entry, `${subject} is over ${PATH_MAX - 1} bytes: refused`);
  return rel;
}

/** The parent of a layer-relative path ('' for a top-level name). */
export function parentOf(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i < 0 ? '' : rel.slice(0, i);
}

/** The last component of a layer-relative path. */
export function baseOf(rel: string): string {
  return rel.slice(rel.lastIndexOf('/') + 1);
}

/** lstat, or null when nothing is there. */
export function lstatOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}
