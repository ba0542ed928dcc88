// The size of an unpacked layer on disk, as docker counts it for `docker images`: the apparent
// size (st_size) of every entry that is not a directory (file contents, symlink target lengths;
// whiteouts and fifos are 0), each hard-linked inode once. Directories count nothing.
import * as fs from 'node:fs';
import { HutchError } from '../../errors.js';

/**
 * Walks `dir` (an unpacked layer) without following symlinks and returns its size in bytes.
 * Entries that vanish during the walk are skipped; `dir` missing is ENOTFOUND.
 */
export function layerDiskSize(dir: string): number {
  const top = fs.lstatSync(dir, { throwIfNoEntry: false });
  if (!top) throw new HutchError('ENOTFOUND', `layer dir ${dir} does not exist`, { path: dir });
  if (!top.isDirectory()) throw new HutchError('EINTEGRITY', `layer dir ${dir} is not a directory`, { path: dir });
  const seen = new Set<bigint>();
  let size = 0;
  const pending = [dir];
  for (let current = pending.pop(); current !== undefined; current = pending.pop()) {
    for (const d of readDir(current, dir)) {
      const p = `${current}/${d.name}`;
      if (d.isDirectory()) { pending.push(p); continue; }
      const st = lstat(p, dir);
      if (!st || st.size === 0n) continue;
      if (st.nlink > 1n) {
        if (seen.has(st.ino)) continue;
        seen.add(st.ino);
      }
      size += Number(st.size);
    }
  }
  return size;
}

/** The entries of `current` (none when it was removed meanwhile). */
function readDir(current: string, layer: string): fs.Dirent[] {
  try {
    return fs.readdirSync(current, { withFileTypes: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new HutchError('EINTERNAL', `measuring layer ${layer}: cannot read ${current}: ${(e as Error).message}`, { path: current, cause: e });
  }
}

/** lstat of `p`; undefined when it was removed meanwhile. */
function lstat(p: string, layer: string): fs.BigIntStats | undefined {
  try {
    return fs.lstatSync(p, { bigint: true, throwIfNoEntry: false });
  } catch (e) {
    throw new HutchError('EINTERNAL', `measuring layer ${layer}: cannot stat ${p}: ${(e as Error).message}`, { path: p, cause: e });
  }
}
