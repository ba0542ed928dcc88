// What an import reads from: a tar archive (plain or gzip; a file or stdin) or an OCI layout dir.
// Files of an archive are never written by their names: each regular file is streamed into a numbered
// temp file of the store while its sha256 is computed, and looked up later by its (normalised) name.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough, Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { HutchError } from '../../errors.js';
import { exists, hexOf, syncDir, type StoreLayout } from '../store/layout.js';

/** Largest JSON file (manifest.json, index.json, a config, a manifest) read into memory. */
export const MAX_JSON_BYTES = 16 * 1024 * 1024;
/** Most entries an archive may hold (an image archive has a few per layer). */
const MAX_ENTRIES = 100_000;

/** Files of an archive or layout, by name (`blobs/sha256/<hex>`, `manifest.json`, `<id>/layer.tar`). */
export interface ImportSource {
  /** Where the input came from, for messages. */
  label: string;
  has(name: string): boolean;
  /** A small file's bytes; ENOTFOUND when absent, EINVAL when larger than `max`. */
  read(name: string, max?: number): Promise<Buffer>;
  /** The sha256 digest of a file. */
  digestOf(name: string): Promise<string>;
  /** Puts the file into the store as a blob (checked against `expected` when given); returns its digest and size. */
  importBlob(name: string, expected?: { digest: string; size?: number }): Promise<{ digest: string; size: number }>;
}

/** Normalises an archive entry name; refuses names that leave the archive (absolute, `..`). */
export function entryName(raw: string, label: string): string {
  const n = path.posix.normalize(raw.replace(/^(\.\/)+/, ''));
  if (raw.startsWith('/') || n === '..' || n.startsWith('../')) throw new HutchError('EPERM', `${label}: entry ${JSON.stringify(raw)} leaves the archive; refusing it`);
  return n.replace(/\/+$/, '');
}

interface TarFile { tmp: string; digest: string; size: number }

/** Reads a whole tar stream (gzip detected) into temp files under `work`. */
export async function readTar(input: Readable, work: string, layout: StoreLayout, label: string): Promise<ImportSource> {
  const files = new Map<string, TarFile>();
  const links = new Map<string, string>(); // name → the name it points at (symlinks resolved to archive names)
  const { Parser } = await import('tar');
  let count = 0;
  const writes: Promise<void>[] = [];
  const parser = new Parser({
    strict: true,
    onReadEntry: (entry) => {
      if (++count > MAX_ENTRIES) { parser.abort(new Error(`more than ${MAX_ENTRIES} entries`)); return; }
      let name: string;
      try {
        name = entryName(entry.path, label);
      } catch (e) {
        parser.abort(e as Error);
        return;
      }
      if (entry.type === 'SymbolicLink' || entry.type === 'Link') {
        const target = entry.linkpath ?? '';
        // A symlink's target is relative to its dir; a hard link names an entry of the archive.
        const joined = entry.type === 'SymbolicLink' && !target.startsWith('/') ? path.posix.join(path.posix.dirname(name), target) : target;
        const t = path.posix.normalize(joined);
        if (!t.startsWith('/') && t !== '..' && !t.startsWith('../')) links.set(name, t);
        entry.resume();
        return;
      }
      if (entry.type !== 'File' && entry.type !== 'OldFile' && entry.type !== 'ContiguousFile') { entry.resume(); return; }
      const tmp = path.join(work, String(count));
      const hash = createHash('sha256');
      let size = 0;
      const counter = new Transform({ transform(chunk: Buffer, _enc, cb) { hash.update(chunk); size += chunk.length; cb(null, chunk); } });
      writes.push(pipeline(entry as unknown as Readable, counter, fs.createWriteStream(tmp, { mode: 0o600 })).then(() => {
        files.set(name, { tmp, digest: `sha256:${hash.digest('hex')}`, size });
      }));
    },
  });
  try {
    const head = await sniff(input);
    const plain = head.gzip ? head.stream.pipe(zlib.createGunzip()) : head.stream;
    await pipeline(plain, parser as unknown as NodeJS.WritableStream);
    await Promise.all(writes);
  } catch (e) {
    await Promise.allSettled(writes);
    if ((e as { code?: string }).code === 'EPERM' || (e as Error).name === 'HutchError') throw e;
    throw new HutchError('EINVAL', `${label}: not a readable tar archive: ${(e as Error).message}`, { cause: e });
  }
  if (count === 0) throw new HutchError('EINVAL', `${label}: empty archive (no tar entries)`);

  const resolve = (name: string): TarFile | undefined => {
    let n = name;
    for (let hops = 0; hops < 16; hops++) {
      const f = files.get(n);
      if (f) return f;
      const next = links.get(n);
      if (next === undefined) return undefined;
      n = next;
    }
    return undefined;
  };
  const need = (name: string): TarFile => {
    const f = resolve(name);
    if (!f) throw new HutchError('ENOTFOUND', `${label}: the archive has no file ${name}`);
    return f;
  };
  return {
    label,
    has: (name) => resolve(name) !== undefined,
    async read(name, max = MAX_JSON_BYTES) {
      const f = need(name);
      if (f.size > max) throw new HutchError('EINVAL', `${label}: ${name} is ${f.size} bytes; more than ${max} is refused`);
      return fs.readFileSync(f.tmp);
    },
    async digestOf(name) { return need(name).digest; },
    async importBlob(name, expected) {
      const f = need(name);
      check(label, name, f.digest, f.size, expected);
      const dest = layout.blob(f.digest);
      // Two names may share a temp file (links): once moved, the blob is there.
      if (!exists(dest)) {
        fs.renameSync(f.tmp, dest);
        syncDir(path.dirname(dest));
      }
      return { digest: f.digest, size: f.size };
    },
  };
}

/** Refuses a file whose digest or size is not what a descriptor (or its blob name) says. */
function check(label: string, name: string, digest: string, size: number, expected?: { digest: string; size?: number }): void {
  const named = /^blobs\/sha256\/([0-9a-f]{64})$/.exec(name)?.[1];
  if (named !== undefined && hexOf(digest) !== named) throw new HutchError('EINTEGRITY', `${label}: ${name} has digest ${digest}, not the one its name says; refusing it`);
  if (expected && expected.digest !== digest) throw new HutchError('EINTEGRITY', `${label}: ${name} has digest ${digest}, but ${expected.digest} was expected; refusing it`);
  if (expected?.size !== undefined && expected.size !== size) throw new HutchError('EINTEGRITY', `${label}: ${name} is ${size} bytes, but its descriptor says ${expected.size}; refusing it`);
}

/** Looks at the first bytes of a stream (gzip or not) and gives back a stream that still has them. */
async function sniff(input: Readable): Promise<{ gzip: boolean; stream: Readable }> {
  const first: Buffer = await new Promise((resolve, reject) => {
    const onReadable = (): void => {
      const chunk = input.read() as Buffer | null;
      if (chunk === null) return;
      cleanup();
      resolve(chunk);
    };
    const onEnd = (): void => { cleanup(); resolve(Buffer.alloc(0)); };
    const onError = (e: Error): void => { cleanup(); reject(e); };
    const cleanup = (): void => { input.off('readable', onReadable); input.off('end', onEnd); input.off('error', onError); };
    input.on('readable', onReadable);
    input.once('end', onEnd);
    input.once('error', onError);
  });
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  out.write(first);
  input.pipe(out);
  input.once('error', (e) => out.destroy(e));
  return { gzip: first[0] === 0x1f && first[1] === 0x8b, stream: out };
}

/** An OCI layout dir: files are read without following symlinks, and blobs are copied (and hashed) into the store. */
export function layoutDir(dir: string, work: string, layout: StoreLayout): ImportSource {
  const label = dir;
  let n = 0;
  const open = (name: string): number => {
    const clean = entryName(name, label);
    // Every component must be a real dir and the file a regular file: a link could point anywhere.
    let p = dir;
    const parts = clean.split('/');
    for (const [i, part] of parts.entries()) {
      p = path.join(p, part);
      let st: fs.Stats;
      try {
        st = fs.lstatSync(p);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new HutchError('ENOTFOUND', `${label}: the layout has no file ${clean}`, { path: p });
        throw e;
      }
      const last = i === parts.length - 1;
      if (last ? !st.isFile() : !st.isDirectory()) throw new HutchError('EPERM', `${label}: ${clean} is not a regular file inside the layout (a symlink or special file); refusing it`, { path: p });
    }
    return fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  };
  const has = (name: string): boolean => {
    try {
      fs.closeSync(open(name));
      return true;
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOTFOUND') return false;
      throw e;
    }
  };
  const copy = async (name: string): Promise<TarFile> => {
    const fd = open(name);
    const tmp = path.join(work, `copy-${++n}`);
    const hash = createHash('sha256');
    let size = 0;
    const counter = new Transform({ transform(chunk: Buffer, _enc, cb) { hash.update(chunk); size += chunk.length; cb(null, chunk); } });
    await pipeline(fs.createReadStream('', { fd }), counter, fs.createWriteStream(tmp, { mode: 0o600 }));
    return { tmp, digest: `sha256:${hash.digest('hex')}`, size };
  };
  return {
    label,
    has,
    async read(name, max = MAX_JSON_BYTES) {
      const fd = open(name);
      try {
        const size = fs.fstatSync(fd).size;
        if (size > max) throw new HutchError('EINVAL', `${label}: ${name} is ${size} bytes; more than ${max} is refused`);
        return fs.readFileSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    },
    async digestOf(name) {
      const f = await copy(name);
      fs.rmSync(f.tmp, { force: true });
      return f.digest;
    },
    async importBlob(name, expected) {
      const f = await copy(name);
      try {
        check(label, name, f.digest, f.size, expected);
        const dest = layout.blob(f.digest);
        if (!exists(dest)) { fs.renameSync(f.tmp, dest); syncDir(path.dirname(dest)); }
      } finally {
        fs.rmSync(f.tmp, { force: true });
      }
      return { digest: f.digest, size: f.size };
    },
  };
}
