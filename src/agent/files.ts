// File operations, resolved in the sandbox's own view: the agent runs inside the sandbox's mount
// namespace, so plain fs calls see the sandbox's root. Paths are absolute and normalised; only regular
// files are read or written (a FIFO or device could block the agent or have side effects).
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { errnoCode, HutchError, isHutchError, type ErrorCode } from '../errors.js';
import { fileKind } from './file-kind.js';
import {
  FILE_CHUNK, MAX_LIST_ENTRIES,
  type DirEntry, type FileStat, type FileType, type LinkParams, type ListParams, type RenameParams, type ReplaceFileParams, type SymlinkParams, type ListResult, type MkdirParams,
  type ReadFileParams, type ReadFileResult, type RemoveParams, type StatParams, type WriteFileParams,
} from './protocol.js';

const FS_CODES: Record<string, ErrorCode> = {
  ENOENT: 'ENOTFOUND', EEXIST: 'EEXIST', EACCES: 'EPERM', EPERM: 'EPERM', EROFS: 'EPERM',
  ENOTDIR: 'EINVAL', EISDIR: 'EINVAL', EINVAL: 'EINVAL', ENOTEMPTY: 'EINVAL', ELOOP: 'EINVAL',
  ENAMETOOLONG: 'EINVAL', EXDEV: 'EINVAL', EBUSY: 'EPERM', ENXIO: 'EINVAL',
  ENOSPC: 'ENOSPC', EDQUOT: 'ENOSPC',
};

/** A Node fs error as a HutchError naming the operation and path. */
export function fsError(op: string, p: string, e: unknown): HutchError {
  if (isHutchError(e)) return e;
  const c = errnoCode(e) ?? 'unknown error';
  const why = c === 'ENOSPC' || c === 'EDQUOT' ? `no space left on the sandbox's disk (${c})` : c;
  return new HutchError(FS_CODES[c] ?? 'EINTERNAL', `${op} ${p}: ${why}`, { path: p, cause: e });
}

/** An absolute path, normalised ('/a/./b/../c/' → '/a/c'); EINVAL for relative paths or NUL bytes. */
export function normalizePath(p: string): string {
  if (!p.startsWith('/') || p.includes('\0')) throw new HutchError('EINVAL', `path must be absolute: ${p.slice(0, 200)}`, { path: p });
  const n = path.posix.normalize(p);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

function fileType(st: fs.Stats): FileType {
  return st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'other';
}

/** Runs an fs operation, turning its errors into HutchErrors about `p`. */
async function on<T>(op: string, p: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw fsError(op, p, e);
  }
}

const { O_RDONLY, O_WRONLY, O_CREAT, O_APPEND, O_NONBLOCK, O_NOCTTY } = fs.constants;

async function openRegular(op: string, p: string, flags: number, mode?: number): Promise<fsp.FileHandle> {
  const fh = await on(op, p, () => fsp.open(p, flags | O_NONBLOCK | O_NOCTTY, mode)).catch(async (e: unknown) => {
    // ENXIO: a fifo without a reader, or a socket; say what it is rather than the errno.
    if (!(isHutchError(e) && errnoCode(e.cause) === 'ENXIO')) throw e;
    const st = await fsp.stat(p).catch(() => null);
    throw new HutchError('EINVAL', `${op} ${p}: ${st ? fileKind(st) : 'a fifo or socket'}, not a regular file`, { path: p });
  });
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new HutchError('EINVAL', `${op} ${p}: ${fileKind(st)}, not a regular file`, { path: p });
    return fh;
  } catch (e) {
    await fh.close();
    throw fsError(op, p, e);
  }
}

/** Reads up to FILE_CHUNK bytes of a regular file from `offset`. */
export async function readFile(params: ReadFileParams): Promise<ReadFileResult> {
  const p = normalizePath(params.path);
  const offset = params.offset ?? 0;
  const length = Math.min(params.length ?? FILE_CHUNK, FILE_CHUNK);
  const fh = await openRegular('readFile', p, O_RDONLY);
  try {
    const size = (await fh.stat()).size;
    const buf = Buffer.alloc(length);
    const { bytesRead } = await on('readFile', p, () => fh.read(buf, 0, length, offset));
    // /proc-style files report size 0; for them only a short read says the end was reached.
    const eof = bytesRead < length || (size > 0 && offset + bytesRead >= size);
    return { data: buf.subarray(0, bytesRead).toString('base64'), size, eof };
  } finally {
    await fh.close();
  }
}

/** Writes one chunk to a regular file: truncating it first, or appending when `append` is set. */
export async function writeFile(params: WriteFileParams): Promise<{ written: number }> {
  const p = normalizePath(params.path);
  const data = Buffer.from(params.data, 'base64');
  const fh = await openRegular('writeFile', p, O_WRONLY | O_CREAT | (params.append ? O_APPEND : 0), params.mode ?? 0o644);
  try {
    if (!params.append) await on('writeFile', p, () => fh.truncate(0));
    if (params.mode !== undefined) await on('writeFile', p, () => fh.chmod(params.mode!));
    let written = 0;
    while (written < data.length) {
      const { bytesWritten } = await on('writeFile', p, () => fh.write(data, written, data.length - written, params.append ? null : written));
      written += bytesWritten;
    }
    return { written };
  } finally {
    await fh.close();
  }
}

/** Lists a directory sorted by name, one page of at most MAX_LIST_ENTRIES entries. */
export async function list(params: ListParams): Promise<ListResult> {
  const p = normalizePath(params.path);
  const offset = params.offset ?? 0;
  const limit = Math.min(params.limit ?? MAX_LIST_ENTRIES, MAX_LIST_ENTRIES);
  const names = (await on('list', p, () => fsp.readdir(p))).sort();
  const entries: DirEntry[] = [];
  for (const name of names.slice(offset, offset + limit)) {
    const full = p === '/' ? `/${name}` : `${p}/${name}`;
    let st: fs.Stats;
    try {
      st = await fsp.lstat(full);
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') continue; // removed since readdir: it is no longer in the directory
      throw fsError('list', full, e);
    }
    entries.push({ name, type: fileType(st), size: st.size, mode: st.mode & 0o7777, mtimeMs: Math.round(st.mtimeMs) });
  }
  return { entries, total: names.length };
}

/** Stats a path; the last component is a symlink's own stat unless `follow` is set. */
export async function stat(params: StatParams): Promise<FileStat> {
  const p = normalizePath(params.path);
  const st = await on('stat', p, () => (params.follow ? fsp.stat(p) : fsp.lstat(p)));
  const linkTarget = st.isSymbolicLink() ? await on('stat', p, () => fsp.readlink(p)) : null;
  return {
    type: fileType(st), size: st.size, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid,
    mtimeMs: Math.round(st.mtimeMs), linkTarget,
  };
}

/** Creates a directory (and its parents when `parents` is set; then an existing directory is fine). */
export async function mkdir(params: MkdirParams): Promise<Record<string, never>> {
  const p = normalizePath(params.path);
  await on('mkdir', p, () => fsp.mkdir(p, { recursive: params.parents ?? false, mode: params.mode ?? 0o755 }));
  return {};
}

/** Removes a file, a symlink (not its target), an empty directory, or a tree when `recursive` is set. */
export async function remove(params: RemoveParams): Promise<Record<string, never>> {
  const p = normalizePath(params.path);
  if (p === '/') throw new HutchError('EINVAL', 'refusing to remove /', { path: p });
  const st = await on('remove', p, () => fsp.lstat(p));
  if (!st.isDirectory()) await on('remove', p, () => fsp.unlink(p));
  else if (params.recursive) await on('remove', p, () => fsp.rm(p, { recursive: true }));
  else await on('remove', p, () => fsp.rmdir(p));
  return {};
}

/** Makes a symlink at `path` holding `target` (any text: it resolves inside the sandbox). */
export async function symlink(params: SymlinkParams): Promise<Record<string, never>> {
  const p = normalizePath(params.path);
  await on('symlink', p, () => fsp.symlink(params.target, p));
  return {};
}

/** Renames `from` to `path` (rename(2): atomic; a file or empty dir at `path` is replaced). */
export async function rename(params: RenameParams): Promise<Record<string, never>> {
  const p = normalizePath(params.path);
  const from = normalizePath(params.from);
  if (from === '/' || p === '/') throw new HutchError('EINVAL', 'refusing to rename /', { path: from });
  await on('rename', from, () => fsp.rename(from, p));
  return {};
}

/** Makes a hard link at `path` to the existing file `existing`. */
export async function link(params: LinkParams): Promise<Record<string, never>> {
  const p = normalizePath(params.path);
  await on('link', p, () => fsp.link(normalizePath(params.existing), p));
  return {};
}

/**
 * Moves a fully written staged file over `path` (an upload: the old file stays whole until then).
 * A symlink at `path` is followed, as a plain write would; the new file gets the owner of the one
 * it replaces, and its mode unless `mode` is given. Where the rename cannot cross (the link points to another filesystem), the
 * content is copied over the target instead.
 */
export async function replaceFile(params: ReplaceFileParams): Promise<Record<string, never>> {
  const staged = normalizePath(params.staged);
  let target = normalizePath(params.path);
  const old = await fsp.lstat(target).catch(() => null);
  if (old?.isSymbolicLink()) target = await fsp.realpath(target).catch(() => target);
  const replaced = old?.isSymbolicLink() ? await fsp.stat(target).catch(() => null) : old;
  if (replaced && !replaced.isFile()) throw new HutchError('EINVAL', `writeFile ${params.path}: ${fileKind(replaced)}, not a regular file`, { path: params.path });
  try {
    const mode = params.mode ?? (replaced ? replaced.mode & 0o7777 : undefined);
    if (mode !== undefined) await on('writeFile', target, () => fsp.chmod(staged, mode));
    if (replaced) await on('writeFile', target, () => fsp.chown(staged, replaced.uid, replaced.gid));
    try {
      await fsp.rename(staged, target);
    } catch (e) {
      if (errnoCode(e) !== 'EXDEV') throw fsError('writeFile', target, e);
      await on('writeFile', target, () => fsp.copyFile(staged, target));
    }
  } finally {
    await fsp.rm(staged, { force: true });
  }
  return {};
}