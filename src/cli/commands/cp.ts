// hutch cp: copy files and directories between the host and a running sandbox.
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { HutchError, isHutchError } from '../../errors.js';
import { fileKind, MAX_TREE_DEPTH, MAX_TREE_ENTRIES, notCopyable, replacing, walkTree, type AgentClient } from '../../agent/index.js';
import type { Command } from '../command.js';

/** `ID:/path` → sandbox side; anything else is a host path. */
function splitRef(arg: string): { sandbox: string; path: string } | null {
  const m = /^([a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}):(.*)$/.exec(arg);
  if (!m) return null;
  if (!m[2]!.startsWith('/')) throw new HutchError('EINVAL', `cp: the path in ${arg} must be absolute inside the sandbox`);
  return { sandbox: m[1]!, path: m[2]! };
}

/** lstat, or null when nothing is there. */
function lstatOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

const { O_WRONLY, O_CREAT, O_NOFOLLOW, O_RDONLY, O_NONBLOCK } = fs.constants;

/** Copies the tree at `src` in the sandbox to the host path `dst`; a symlink is made, never followed. */
async function copyOut(files: AgentClient, src: string, dst: string): Promise<number> {
  // The whole tree is listed first: a device or fifo in it stops the copy before anything is written.
  const entries = await walkTree(files, src);
  for (const e of entries) {
    const to = e.rel === '' ? dst : path.join(dst, ...e.rel.split('/'));
    if (e.type === 'dir') {
      try {
        fs.mkdirSync(to, { mode: e.mode & 0o777 });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || !fs.lstatSync(to).isDirectory()) throw err;
      }
    } else if (e.type === 'symlink') {
      fs.rmSync(to, { force: true });
      fs.symlinkSync(e.linkTarget!, to); // made, never followed
    } else {
      // O_NOFOLLOW: a symlink already at `to` is an error, not a way to write elsewhere on the host.
      const fd = openHostTarget(to, e.mode & 0o777);
      await pipeline(files.createReadStream(e.path), fs.createWriteStream('', { fd }));
    }
  }
  return entries.length;
}

/**
 * Opens (creating) a host file to write: a symlink there is refused (ELOOP from O_NOFOLLOW), never
 * written through; so is a fifo or device (O_NONBLOCK: a fifo without a reader does not block).
 */
function openHostTarget(p: string, mode: number): number {
  let fd: number;
  try {
    fd = fs.openSync(p, O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK, mode);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw new HutchError('EEXIST', `cp: ${p} is a symlink on the host: not written through`, { path: p });
    if (code === 'ENXIO') throw new HutchError('EINVAL', `cp: ${p} on the host is a fifo or socket: not written to`, { path: p });
    throw e;
  }
  const st = fs.fstatSync(fd);
  if (!st.isFile()) {
    fs.closeSync(fd);
    throw new HutchError('EINVAL', `cp: ${p} on the host is ${fileKind(st)}: not written to`, { path: p });
  }
  fs.ftruncateSync(fd, 0);
  return fd;
}

/** A host entry to copy in. */
interface HostEntry { path: string; rel: string; st: fs.Stats }

/** The host tree at `root`, parents first, never following a symlink; a device, fifo or socket is refused. */
function walkHost(root: string): HostEntry[] {
  const out: HostEntry[] = [];
  const visit = (p: string, rel: string, depth: number): void => {
    const st = fs.lstatSync(p);
    if (!st.isFile() && !st.isDirectory() && !st.isSymbolicLink()) throw notCopyable(p, fileKind(st));
    if (out.length >= MAX_TREE_ENTRIES) throw new HutchError('EINVAL', `cp: ${root} holds more than ${MAX_TREE_ENTRIES} entries`, { path: root });
    out.push({ path: p, rel, st });
    if (!st.isDirectory()) return;
    if (depth >= MAX_TREE_DEPTH) throw new HutchError('EINVAL', `cp: ${p} is nested deeper than ${MAX_TREE_DEPTH} directories`, { path: p });
    for (const name of fs.readdirSync(p).sort()) visit(path.join(p, name), rel === '' ? name : `${rel}/${name}`, depth + 1);
  };
  visit(root, '', 0);
  return out;
}

/** Opens a host file for reading only if it is (still) a regular file: never a link, fifo or device. */
function openHostFile(p: string): number {
  const fd = fs.openSync(p, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  const st = fs.fstatSync(fd);
  if (!st.isFile()) {
    fs.closeSync(fd);
    throw notCopyable(p, fileKind(st));
  }
  return fd;
}

/** Copies the host tree at `src` into the sandbox at `dst`; symlinks are made there with their target as text. */
async function copyIn(files: AgentClient, src: string, dst: string): Promise<number> {
  const entries = walkHost(src);
  for (const e of entries) {
    const to = e.rel === '' ? dst : path.posix.join(dst, e.rel);
    const mode = e.st.mode & 0o777;
    if (e.st.isDirectory()) {
      await files.mkdir(to, { mode }).catch(async (err: unknown) => {
        if (!isHutchError(err, 'EEXIST')) throw err;
        // Something other than a directory there (a file, a link) is replaced, as tar does.
        if ((await files.stat(to)).type === 'dir') return;
        await files.remove(to);
        await files.mkdir(to, { mode });
      });
    } else if (e.st.isSymbolicLink()) {
      const target = fs.readlinkSync(e.path);
      await replacing(files, to, () => files.symlink(to, target));
    } else {
      await files.writeFile(to, fs.createReadStream('', { fd: openHostFile(e.path) }), { mode });
    }
  }
  return entries.length;
}

export const command: Command = {
  usage: 'hutch cp SRC DST',
  summary: 'Copy a file or directory between the host and a running sandbox; one side is ID:/path (paths inside are resolved in the sandbox\'s own view). A DST that is an existing directory receives SRC under its own name. Symlinks are copied as links (their target as text, never followed); a device, fifo or socket is refused.',
  flags: [],
  async run(ctx, args) {
    const [srcArg, dstArg] = args.operands;
    if (srcArg === undefined || dstArg === undefined || args.operands.length > 2) throw new HutchError('EINVAL', 'cp: need SRC and DST');
    const src = splitRef(srcArg);
    const dst = splitRef(dstArg);
    if ((src === null) === (dst === null)) throw new HutchError('EINVAL', 'cp: exactly one of SRC and DST must be ID:/path');
    const calls = await ctx.calls();
    try {
      if (src) {
        const files = await calls.files(src.sandbox);
        let target = path.resolve(dstArg);
        if (fs.existsSync(target) && fs.statSync(target).isDirectory()) target = path.join(target, path.posix.basename(src.path) || 'root');
        await copyOut(files, src.path, target);
      } else {
        const files = await calls.files(dst!.sandbox);
        const host = path.resolve(srcArg);
        // lstat: a dangling symlink is copied as the link it is.
        if (!lstatOrNull(host)) throw new HutchError('ENOTFOUND', `cp: ${host} does not exist`, { path: host });
        let target = dst!.path;
        const there = await files.stat(target, { follow: true }).catch((e: unknown) => {
          if (isHutchError(e) && e.code === 'ENOTFOUND') return null;
          throw e;
        });
        if (there?.type === 'dir') target = path.posix.join(target, path.basename(host));
        await copyIn(files, host, target);
      }
      return 0;
    } finally {
      calls.closeAll();
    }
  },
};
