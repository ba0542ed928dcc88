// Builds image layers for tests: tar archives (ustar headers, pax and GNU long names), gzip or zstd
// compressed, and hostile ones (traversal names, lying sizes, bad checksums, truncations).
// Written from the ustar/pax format description; used by the unpack, store and pull tests.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';

/** What kind of thing a tar entry is. */
export type LayerEntryType = 'file' | 'dir' | 'symlink' | 'link' | 'fifo' | 'char' | 'block';

/** How a layer blob is compressed. */
export type Compression = 'none' | 'gzip' | 'zstd';

/** One entry of a test layer. Only `name` is required: a file (a dir when the name ends with `/`). */
export interface LayerEntry {
  name: string;
  type?: LayerEntryType;
  content?: string | Buffer;
  /** Permission bits incl. setuid/setgid/sticky (default 0o644 files, 0o755 dirs, 0o777 symlinks). */
  mode?: number;
  uid?: number;
  gid?: number;
  /** Seconds since the epoch (default 1700000000). */
  mtime?: number;
  /** Symlink target, or the hard link's target entry name. */
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  /** Extra pax records written in an `x` header before the entry (e.g. `SCHILY.xattr.user.a`). */
  pax?: Record<string, string>;
  /** How a name or link name over 100 bytes is carried: a pax header (default) or GNU `L`/`K` entries. */
  longNames?: 'pax' | 'gnu';
  /** A size to declare in the header instead of the content's (hostile layers). */
  declaredSize?: number;
}

const TYPE_FLAG: Record<LayerEntryType, string> = {
  file: '0', link: '1', symlink: '2', char: '3', block: '4', dir: '5', fifo: '6',
};

/** Fields of one raw 512-byte header. Strings are written as they are (no checks): hostile tests need that. */
export interface RawHeader {
  name: string;
  typeflag: string;
  size?: number;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  /** Write this instead of the correct checksum. */
  badChecksum?: boolean;
}

/** Writes `value` into `field` of `block`: octal when it fits, else GNU base-256 (big sizes). */
function putNumber(block: Buffer, offset: number, width: number, value: number): void {
  const octal = Math.trunc(value).toString(8);
  if (value >= 0 && octal.length < width) {
    block.write(octal.padStart(width - 1, '0'), offset, 'latin1');
    block[offset + width - 1] = 0;
    return;
  }
  let v = BigInt(Math.trunc(value));
  for (let i = width - 1; i > 0; i--) {
    block[offset + i] = Number(v & 0xffn);
    v >>= 8n;
  }
  block[offset] = 0x80;
}

/** One 512-byte ustar header with a correct checksum (unless asked otherwise). */
export function tarHeader(h: RawHeader): Buffer {
  const block = Buffer.alloc(512);
  block.write(h.name, 0, 100, 'utf8');
  putNumber(block, 100, 8, h.mode ?? 0o644);
  putNumber(block, 108, 8, h.uid ?? 0);
  putNumber(block, 116, 8, h.gid ?? 0);
  putNumber(block, 124, 12, h.size ?? 0);
  putNumber(block, 136, 12, h.mtime ?? 1_700_000_000);
  block.write(h.typeflag, 156, 1, 'latin1');
  block.write(h.linkname ?? '', 157, 100, 'utf8');
  block.write('ustar\u000000', 257, 8, 'latin1');
  putNumber(block, 329, 8, h.devmajor ?? 0);
  putNumber(block, 337, 8, h.devminor ?? 0);
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of block) sum += b;
  if (h.badChecksum) sum += 1;
  block.write(sum.toString(8).padStart(6, '0'), 148, 'latin1');
  block[154] = 0;
  block[155] = 0x20;
  return block;
}

/** Zero bytes that pad `size` up to the next 512-byte boundary. */
export function padding(size: number): Buffer {
  return Buffer.alloc((512 - (size % 512)) % 512);
}

/** The body of a pax header: `len key=value\n` records (len counts the whole record). */
export function paxRecords(records: Record<string, string>): Buffer {
  const parts: Buffer[] = [];
  for (const [key, value] of Object.entries(records)) {
    const rest = Buffer.from(` ${key}=${value}\n`, 'utf8');
    let len = rest.length + 1;
    while (String(len).length + rest.length !== len) len = String(len).length + rest.length;
    parts.push(Buffer.from(String(len), 'latin1'), rest);
  }
  return Buffer.concat(parts);
}

/** A meta entry (pax `x`/`g`, GNU `L`/`K`): header plus padded body. */
export function metaEntry(typeflag: string, body: Buffer, declaredSize = body.length): Buffer {
  return Buffer.concat([tarHeader({ name: '././@PaxHeader', typeflag, size: declaredSize }), body, padding(body.length)]);
}

/** The blocks of one entry, with whatever pax/GNU headers it needs before it. */
export function entryBlocks(e: LayerEntry): Buffer {
  const type = e.type ?? (e.name.endsWith('/') ? 'dir' : 'file');
  const content = type === 'file' ? Buffer.from(e.content ?? '') : Buffer.alloc(0);
  const linkname = e.linkname ?? '';
  const out: Buffer[] = [];
  const pax: Record<string, string> = { ...(e.pax ?? {}) };
  let name = e.name;
  let link = linkname;
  const gnu = e.longNames === 'gnu';
  if (Buffer.byteLength(name) > 100) {
    if (gnu) out.push(metaEntry('L', Buffer.from(name + '\0')));
    else pax.path = name;
    name = name.slice(0, 99);
  }
  if (Buffer.byteLength(link) > 100) {
    if (gnu) out.push(metaEntry('K', Buffer.from(link + '\0')));
    else pax.linkpath = link;
    link = link.slice(0, 99);
  }
  if (Object.keys(pax).length) out.unshift(metaEntry('x', paxRecords(pax)));
  const defaultMode = type === 'dir' ? 0o755 : type === 'symlink' ? 0o777 : 0o644;
  out.push(tarHeader({
    name, typeflag: TYPE_FLAG[type], size: e.declaredSize ?? content.length, mode: e.mode ?? defaultMode,
    uid: e.uid ?? 0, gid: e.gid ?? 0, mtime: e.mtime ?? 1_700_000_000, linkname: link,
    devmajor: e.devmajor ?? 0, devminor: e.devminor ?? 0,
  }));
  out.push(content, padding(content.length));
  return Buffer.concat(out);
}

/** The end-of-archive marker: two zero blocks. */
export const TAR_END = Buffer.alloc(1024);

/** An uncompressed tar of `entries`, ended with the end-of-archive marker unless `end` is false. */
export function tarOf(entries: LayerEntry[], opts: { end?: boolean } = {}): Buffer {
  const parts = entries.map(entryBlocks);
  if (opts.end !== false) parts.push(TAR_END);
  return Buffer.concat(parts);
}

/** `data` compressed with `compression` (zstd through the `zstd` tool). */
export function compress(data: Buffer, compression: Compression): Buffer {
  if (compression === 'none') return data;
  if (compression === 'gzip') return gzipSync(data);
  const r = spawnSync('zstd', ['-q', '-c', '-3'], { input: data, maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`zstd failed: ${r.stderr?.toString() ?? r.error?.message}`);
  return r.stdout;
}

/** A layer blob: the tar of `entries`, compressed (gzip unless told). */
export function makeLayer(entries: LayerEntry[], compression: Compression = 'gzip'): Buffer {
  return compress(tarOf(entries), compression);
}

/** `sha256:<hex>` of `data`. */
export function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** A layer written to a file in `dir`: its path, its digest (compressed) and diffId (uncompressed). */
export interface WrittenLayer { path: string; digest: string; diffId: string; size: number; blob: Buffer }

/** Writes the layer of `entries` (or a raw tar given as a Buffer) to `dir`/<digest hex>; returns where and its digests. */
export function writeLayer(dir: string, entries: LayerEntry[] | Buffer, compression: Compression = 'gzip'): WrittenLayer {
  const tar = Buffer.isBuffer(entries) ? entries : tarOf(entries);
  const blob = compress(tar, compression);
  const digest = sha256(blob);
  const file = path.join(dir, digest.slice('sha256:'.length));
  fs.writeFileSync(file, blob);
  return { path: file, digest, diffId: sha256(tar), size: blob.length, blob };
}

/** The whiteout entry that deletes `target` (a path in the layer) in the layers below. */
export function whiteout(target: string): LayerEntry {
  const dir = path.posix.dirname(target);
  const wh = `.wh.${path.posix.basename(target)}`;
  return { name: dir === '.' ? wh : `${dir}/${wh}` };
}

/** The entry that makes `dir` opaque: what the layers below have in it is hidden. */
export function opaque(dir: string): LayerEntry {
  return { name: `${dir.replace(/\/+$/, '')}/.wh..wh..opq` };
}
