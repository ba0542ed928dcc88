// Whole trees in a sandbox, on top of the file calls: a walk that lists what a copy or an archive
// will hold (and refuses what neither can carry), and the making of an entry over an old one.
import path from 'node:path';
import { HutchError, isHutchError } from '../errors.js';
import type { CallOptions } from './client.js';
import type { DirEntry, FileStat } from './protocol.js';

/** The file calls a walk needs (an AgentClient has them). */
export interface TreeSource {
  stat(path: string, opts?: CallOptions & { follow?: boolean }): Promise<FileStat>;
  list(path: string, opts?: CallOptions & { maxEntries?: number }): Promise<DirEntry[]>;
}

/** One entry of a walked tree. */
export interface TreeEntry {
  /** Its absolute path in the sandbox. */
  path: string;
  /** Its path below the walk's root: '' for the root itself, else `a/b`. */
  rel: string;
  type: 'file' | 'dir' | 'symlink';
  size: number;
  mode: number;
  mtimeMs: number;
  /** A symlink's target, as text (never followed). */
  linkTarget?: string;
}

/** Deepest directory nesting a walk goes into. */
export const MAX_TREE_DEPTH = 64;
/** Most entries a walk holds. */
export const MAX_TREE_ENTRIES = 1_000_000;

/** The error for a device, fifo or socket met in a copy: one line naming it (`kind` for a host file). */
export function notCopyable(p: string, kind?: string): HutchError {
  const what = kind === undefined ? 'in the sandbox is a device, fifo or socket' : `is ${kind}`;
  return new HutchError('EINVAL', `${p} ${what}: only regular files, directories and symlinks can be copied`, { path: p });
}

/**
 * Lists the tree at `root` (or the one file or symlink it is), parents before children, children
 * sorted by name. The root is stat'ed following a symlink when `follow` is set; nothing below it is
 * followed. Refused (EINVAL, naming the path): a device, fifo or socket anywhere, more than
 * MAX_TREE_DEPTH levels or MAX_TREE_ENTRIES entries; EPROTO for names the sandbox should not list.
 */
export async function walkTree(files: TreeSource, root: string, opts: CallOptions & { follow?: boolean } = {}): Promise<TreeEntry[]> {
  const { follow, ...call } = opts;
  const top = await files.stat(root, { ...call, follow: follow ?? false });
  const out: TreeEntry[] = [];
  const add = (abs: string, rel: string, st: { type: string; size: number; mode: number; mtimeMs: number }, linkTarget?: string): TreeEntry => {
    if (st.type !== 'file' && st.type !== 'dir' && st.type !== 'symlink') throw notCopyable(abs);
    if (out.length >= MAX_TREE_ENTRIES) throw new HutchError('EINVAL', `${root} holds more than ${MAX_TREE_ENTRIES} entries`, { path: root });
    const e: TreeEntry = { path: abs, rel, type: st.type, size: st.size, mode: st.mode, mtimeMs: st.mtimeMs };
    if (linkTarget !== undefined) e.linkTarget = linkTarget;
    out.push(e);
    return e;
  };
  const linkOf = (abs: string, st: FileStat): string => {
    if (st.linkTarget === null || st.linkTarget === '' || st.linkTarget.includes('\0')) {
      throw new HutchError('EPROTO', `the sandbox gave a bad link target for ${abs}`, { path: abs });
    }
    return st.linkTarget;
  };
  const descend = async (dir: string, rel: string, depth: number): Promise<void> => {
    if (depth >= MAX_TREE_DEPTH) throw new HutchError('EINVAL', `${dir} is nested deeper than ${MAX_TREE_DEPTH} directories`, { path: dir });
    const seen = new Set<string>();
    for (const child of await files.list(dir, call)) {
      const name = plainName(child.name, dir);
      if (seen.has(name)) throw new HutchError('EPROTO', `the sandbox listed ${name} twice under ${dir}`, { path: dir });
      seen.add(name);
      const abs = path.posix.join(dir, name);
      const crel = rel === '' ? name : `${rel}/${name}`;
      if (child.type === 'symlink') {
        const st = await files.stat(abs, call);
        // Replaced by something else since the listing: what it is now is what is copied.
        if (st.type !== 'symlink') add(abs, crel, st);
        else add(abs, crel, st, linkOf(abs, st));
      } else {
        add(abs, crel, child);
      }
      if (child.type === 'dir') await descend(abs, crel, depth + 1);
    }
  };
  add(root, '', top, top.type === 'symlink' ? linkOf(root, top) : undefined);
  if (top.type === 'dir') await descend(root, '', 0);
  return out;
}

/** A name the sandbox listed must be one plain path component. */
function plainName(name: string, dir: string): string {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new HutchError('EPROTO', `the sandbox listed an invalid name under ${dir}`, { path: dir });
  }
  return name;
}

/** The file calls `replacing` needs. */
export interface EntryMaker {
  remove(path: string, opts?: CallOptions & { recursive?: boolean }): Promise<void>;
}

/** Makes an entry at `target`; one already there (not a directory, unless empty) is removed first, as tar does. */
export async function replacing(files: EntryMaker, target: string, make: () => Promise<void>): Promise<void> {
  try {
    await make();
  } catch (err) {
    if (!isHutchError(err, 'EEXIST')) throw err;
    await files.remove(target);
    await make();
  }
}
