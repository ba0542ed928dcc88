// Tar streams of a sandbox's files, both ways, through its agent (never through host paths).
// Download walks the tree with stat/list/read calls; upload parses with the `tar` package and
// refuses absolute names and `..` before anything of that entry is written.
import { once } from 'node:events';
import path from 'node:path';
import { Header, Pax, Parser, type ReadEntry } from 'tar';
import { replacing, walkTree, type AgentClient, type TreeEntry } from '../agent/index.js';
import { HutchError } from '../errors.js';

const BLOCK = 512;

/** One tar header (with a PAX header in front when the name or link is too long for ustar). */
function header(data: { path: string; mode: number; size: number; mtimeMs: number; type: 'File' | 'Directory' | 'SymbolicLink'; linkpath?: string }): Buffer {
  const fields = {
    path: data.path, mode: data.mode & 0o7777, size: data.size, mtime: new Date(Math.max(0, data.mtimeMs)),
    type: data.type, uid: 0, gid: 0, ...(data.linkpath !== undefined ? { linkpath: data.linkpath } : {}),
  };
  const h = new Header(fields);
  const block = Buffer.alloc(BLOCK);
  h.encode(block, 0);
  return h.needPax ? Buffer.concat([new Pax(fields).encode(), block]) : block;
}

/**
 * The tar stream of `root` (a file or a directory tree); names start at root's base name. The tree
 * is walked first, so that a device, fifo or socket in it is refused before a byte is sent.
 */
export async function* tarOf(files: AgentClient, root: string): AsyncGenerator<Buffer> {
  const base = path.posix.basename(root) || '.';
  for (const e of await walkTree(files, root, { follow: true })) {
    const name = e.rel === '' ? base : `${base}/${e.rel}`;
    if (e.type === 'dir') {
      yield header({ path: `${name}/`, mode: e.mode, size: 0, mtimeMs: e.mtimeMs, type: 'Directory' });
    } else if (e.type === 'symlink') {
      yield header({ path: name, mode: e.mode, size: 0, mtimeMs: e.mtimeMs, type: 'SymbolicLink', linkpath: e.linkTarget ?? '' });
    } else {
      yield* fileEntry(files, e, name);
    }
  }
  yield Buffer.alloc(BLOCK * 2);
}

/** A regular file's header and content, exactly the size its header gives. */
async function* fileEntry(files: AgentClient, e: TreeEntry, name: string): AsyncGenerator<Buffer> {
  yield header({ path: name, mode: e.mode, size: e.size, mtimeMs: e.mtimeMs, type: 'File' });
  let sent = 0;
  for await (const chunk of files.createReadStream(e.path, { length: e.size })) {
    const b = chunk as Buffer;
    const take = b.subarray(0, Math.max(0, e.size - sent)); // a file that grew is cut at its listed size
    sent += take.length;
    if (take.length) yield take;
  }
  if (sent < e.size) yield Buffer.alloc(e.size - sent); // a file that shrank is padded: the header said its size
  if (e.size % BLOCK) yield Buffer.alloc(BLOCK - (e.size % BLOCK));
}

/** A tar entry's name made relative and checked: no absolute names, no `..`, no NUL. */
export function safeEntryPath(name: string): string {
  if (name.includes('\0')) throw new HutchError('EPERM', 'tar entry name contains a NUL byte');
  if (name.startsWith('/')) throw new HutchError('EPERM', `tar entry ${name.slice(0, 200)} has an absolute name: refused`, { path: name });
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new HutchError('EPERM', `tar entry ${name.slice(0, 200)} escapes the target directory: refused`, { path: name });
  return parts.join('/');
}

/** What an upload did. */
export interface UnpackResult { files: number; dirs: number; links?: number; bytes: number }

/**
 * Unpacks a tar stream into `dest` (which must be a directory in the sandbox). Files, dirs, symlinks
 * (any target: it resolves inside the sandbox) and hard links (to an entry under `dest`) are made;
 * a later entry replaces an earlier one. An entry that escapes stops the upload with EPERM, a device,
 * fifo or other kind with EINVAL naming it: entries before it stay written.
 */
export async function untarInto(files: AgentClient, dest: string, source: AsyncIterable<Buffer>): Promise<UnpackResult> {
  const st = await files.stat(dest, { follow: true });
  if (st.type !== 'dir') throw new HutchError('EINVAL', `${dest} is not a directory in the sandbox`, { path: dest });
  const result: UnpackResult = { files: 0, dirs: 0, bytes: 0 };
  const parser = new Parser({ strict: true });
  let failure: unknown;
  let chain: Promise<void> = Promise.resolve();
  const fail = (e: unknown) => { failure ??= e; };
  parser.on('entry', (e: ReadEntry) => {
    chain = chain.then(async () => {
      if (failure) return void e.resume();
      try {
        await unpackEntry(files, dest, e, result);
      } catch (err) {
        fail(err);
        e.resume();
      }
    });
  });
  parser.on('error', (e: Error) => fail(new HutchError('EINVAL', `malformed tar stream: ${e.message}`, { cause: e })));
  // Registered now: the parser may emit its end synchronously inside end().
  const ended = new Promise<void>((resolve) => { parser.once('end', resolve); parser.once('close', resolve); });
  parser.on('warn', (_code: string, message: string | Error) => fail(new HutchError('EINVAL', `malformed tar stream: ${message instanceof Error ? message.message : message}`)));
  for await (const chunk of source) {
    if (failure) break;
    if (!parser.write(chunk)) await once(parser, 'drain');
  }
  if (!failure) {
    parser.end();
    await ended;
  }
  await chain;
  if (failure) throw failure;
  return result;
}

// What the kinds an upload refuses are called.
const TAR_KINDS: Record<string, string> = { FIFO: 'a fifo', CharacterDevice: 'a character device', BlockDevice: 'a block device' };

async function unpackEntry(files: AgentClient, dest: string, e: ReadEntry, result: UnpackResult): Promise<void> {
  const rel = safeEntryPath(e.path);
  if (rel === '') return void e.resume(); // the archive's own root (./)
  const target = path.posix.join(dest, rel);
  const mode = (e.mode ?? 0o644) & 0o7777;
  if (e.type === 'Directory') {
    await files.mkdir(target, { parents: true, mode: mode || 0o755 });
    result.dirs++;
    e.resume();
  } else if (e.type === 'File' || e.type === 'OldFile' || e.type === 'ContiguousFile') {
    const parent = path.posix.dirname(target);
    if (parent !== dest) await files.mkdir(parent, { parents: true });
    result.bytes += await files.writeFile(target, e as unknown as AsyncIterable<Uint8Array>, { mode });
    result.files++;
  } else if (e.type === 'SymbolicLink' || e.type === 'Link') {
    const linkpath = e.linkpath ?? '';
    if (linkpath === '' || linkpath.includes('\0')) throw new HutchError('EINVAL', `tar entry ${rel} is a link without a target`, { path: rel });
    // A hard link names another entry of the archive: it must stay under dest, like every name.
    const existing = e.type === 'Link' ? path.posix.join(dest, safeEntryPath(linkpath)) : undefined;
    const parent = path.posix.dirname(target);
    if (parent !== dest) await files.mkdir(parent, { parents: true });
    await replacing(files, target, () => (existing === undefined ? files.symlink(target, linkpath) : files.hardLink(target, existing)));
    result.links = (result.links ?? 0) + 1;
    e.resume();
  } else {
    const kind = TAR_KINDS[e.type] ?? `an entry of type ${e.type}`;
    throw new HutchError('EINVAL', `tar entry ${rel} is ${kind}: only regular files, directories, symlinks and hard links are unpacked`, { path: rel });
  }
}
