// The client's file calls. Contents move in FILE_CHUNK pieces, one call each, so a transfer of any
// size stays within the frame limit and is paced by the caller (a pull-based stream for reads).
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { HutchError } from '../errors.js';
import type { CallOptions } from './client.js';
import {
  FILE_CHUNK, MAX_LIST_ENTRIES,
  type DirEntry, type FileStat, type MethodName, type Params, type Result,
} from './protocol.js';

/** Makes one checked call to the agent. */
export type Caller = <M extends MethodName>(method: M, params: Params<M>, opts?: CallOptions) => Promise<Result<M>>;

/** Default cap of readFile (whole file in memory); larger files go through createReadStream. */
export const DEFAULT_READ_MAX_BYTES = 64 * 1024 * 1024;
/** Default cap of list (entries held in memory). */
export const DEFAULT_LIST_MAX_ENTRIES = 100_000;

/** Where to read: a byte range of the file (to its end by default). */
export interface ReadRange { offset?: number; length?: number }

/** File operations through the agent, in the sandbox's own view of its filesystem. */
export class FileTransfers {
  constructor(private readonly call: Caller) {}

  /** Reads one chunk at `offset`: at most `want` bytes, and whether the end of the file was reached. */
  private async chunk(path: string, offset: number, want: number, opts?: CallOptions): Promise<{ bytes: Buffer; eof: boolean }> {
    const r = await this.call('readFile', { path, offset, length: want }, opts);
    const bytes = Buffer.from(r.data, 'base64');
    if (bytes.length > want) throw new HutchError('EPROTO', `agent returned ${bytes.length} bytes of ${path} for a ${want}-byte read`, { path });
    // An empty read ends the file even if the agent did not say so: no endless loop on a bad agent.
    return { bytes, eof: r.eof || bytes.length === 0 };
  }

  /** Reads a file (or a range of it) into memory; EINVAL if it exceeds `maxBytes`. */
  async readFile(path: string, opts: CallOptions & ReadRange & { maxBytes?: number } = {}): Promise<Buffer> {
    const maxBytes = opts.maxBytes ?? DEFAULT_READ_MAX_BYTES;
    const end = opts.length === undefined ? Infinity : (opts.offset ?? 0) + opts.length;
    const parts: Buffer[] = [];
    let offset = opts.offset ?? 0, total = 0;
    while (offset < end) {
      const { bytes, eof } = await this.chunk(path, offset, Math.min(FILE_CHUNK, end - offset), opts);
      parts.push(bytes);
      total += bytes.length;
      offset += bytes.length;
      if (total > maxBytes) throw new HutchError('EINVAL', `${path} is larger than ${maxBytes} bytes: use createReadStream`, { path });
      if (eof) break;
    }
    return Buffer.concat(parts, total);
  }

  /** A stream of a file's bytes, fetched a chunk at a time as the consumer reads. */
  createReadStream(path: string, opts: ReadRange & { timeoutMs?: number } = {}): Readable {
    const end = opts.length === undefined ? Infinity : (opts.offset ?? 0) + opts.length;
    let offset = opts.offset ?? 0;
    const callOpts: CallOptions = opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs };
    const stream: Readable = new Readable({
      highWaterMark: FILE_CHUNK,
      // Readable calls read() again only after a push, so at most one chunk call is in flight.
      read: () => {
        if (offset >= end) return void stream.push(null);
        this.chunk(path, offset, Math.min(FILE_CHUNK, end - offset), callOpts).then(({ bytes, eof }) => {
          offset += bytes.length;
          if (bytes.length > 0) stream.push(bytes);
          if (eof) stream.push(null);
        }, (e: Error) => stream.destroy(e));
      },
    });
    return stream;
  }

  /**
   * Writes `data` to a file, replacing it (or appending with `append`); `mode` applies to the file.
   * Returns the number of bytes written.
   */
  async writeFile(path: string, data: Buffer | string | Readable | AsyncIterable<Uint8Array>,
    opts: CallOptions & { mode?: number; append?: boolean } = {}): Promise<number> {
    // Content of more than one chunk goes to a staged file next to the target, moved over it once
    // all of it arrived: a source that fails midway (a refused or cut upload) leaves the old file whole.
    const append = opts.append ?? false;
    let staged: string | undefined;
    let first = true, written = 0;
    const send = async (bytes: Buffer, last: boolean): Promise<void> => {
      if (first && !last && !append) staged = stagedPathFor(path);
      const params: Params<'writeFile'> = { path: staged ?? path, data: bytes.toString('base64'), append: first ? append : true };
      if (first && opts.mode !== undefined) params.mode = opts.mode;
      const r = await this.call('writeFile', params, opts);
      if (r.written !== bytes.length) throw new HutchError('EPROTO', `agent wrote ${r.written} of ${bytes.length} bytes to ${path}`, { path });
      written += bytes.length;
      first = false;
    };
    const source: Iterable<Uint8Array> | AsyncIterable<Uint8Array> = typeof data === 'string' ? [Buffer.from(data)] : Buffer.isBuffer(data) ? [data] : data;
    try {
      // Small pieces from a stream are gathered into whole chunks: one call per FILE_CHUNK. A full
      // chunk is sent once more data follows it, so that the last call knows it is the last.
      let held: Buffer[] = [], heldBytes = 0;
      for await (const piece of source) {
        let buf = Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
        while (heldBytes + buf.length > FILE_CHUNK) {
          const take = FILE_CHUNK - heldBytes;
          await send(Buffer.concat([...held, buf.subarray(0, take)]), false);
          held = [];
          heldBytes = 0;
          buf = buf.subarray(take);
        }
        if (buf.length > 0) {
          held.push(Buffer.from(buf)); // copied: the source may reuse its buffer
          heldBytes += buf.length;
        }
      }
      if (heldBytes > 0 || first) await send(Buffer.concat(held, heldBytes), true);
      if (staged !== undefined) await this.call('replaceFile', { path, staged, ...(opts.mode !== undefined ? { mode: opts.mode } : {}) }, opts);
    } catch (e) {
      if (staged !== undefined) await this.call('remove', { path: staged }, { timeoutMs: 5000 }).catch(() => undefined); // best effort: the upload's error is the one to report
      throw e;
    }
    return written;
  }

  /** Lists a directory (all pages); EINVAL if it has more than `maxEntries` entries. */
  async list(path: string, opts: CallOptions & { maxEntries?: number } = {}): Promise<DirEntry[]> {
    const maxEntries = opts.maxEntries ?? DEFAULT_LIST_MAX_ENTRIES;
    const out: DirEntry[] = [];
    for (let offset = 0; ; offset += MAX_LIST_ENTRIES) {
      const page = await this.call('list', { path, offset, limit: MAX_LIST_ENTRIES }, opts);
      if (page.total > maxEntries) throw new HutchError('EINVAL', `${path} has ${page.total} entries, more than ${maxEntries}`, { path });
      out.push(...page.entries);
      if (offset + MAX_LIST_ENTRIES >= page.total) return out;
    }
  }

  /** Stats a path (a symlink itself unless `follow`). */
  stat(path: string, opts: CallOptions & { follow?: boolean } = {}): Promise<FileStat> {
    return this.call('stat', { path, ...(opts.follow !== undefined ? { follow: opts.follow } : {}) }, opts);
  }

  /** Creates a directory (with its parents when `parents`). */
  async mkdir(path: string, opts: CallOptions & { parents?: boolean; mode?: number } = {}): Promise<void> {
    const params: Params<'mkdir'> = { path };
    if (opts.parents !== undefined) params.parents = opts.parents;
    if (opts.mode !== undefined) params.mode = opts.mode;
    await this.call('mkdir', params, opts);
  }

  /** Removes a file, symlink or empty directory, or a whole tree with `recursive`. */
  async remove(path: string, opts: CallOptions & { recursive?: boolean } = {}): Promise<void> {
    await this.call('remove', { path, ...(opts.recursive !== undefined ? { recursive: opts.recursive } : {}) }, opts);
  }

  /** Makes a symlink at `path` holding `target`. */
  async symlink(path: string, target: string, opts: CallOptions = {}): Promise<void> {
    await this.call('symlink', { path, target }, opts);
  }

  /** Renames `from` to `path` inside the sandbox (rename(2)). */
  async rename(from: string, path: string, opts: CallOptions = {}): Promise<void> {
    await this.call('rename', { path, from }, opts);
  }

  /** Makes a hard link at `path` to the existing file `existing`. */
  async hardLink(path: string, existing: string, opts: CallOptions = {}): Promise<void> {
    await this.call('link', { path, existing }, opts);
  }
}

/** The staged file of an upload to `path`: hidden, next to it (so that the final rename stays on one filesystem). */
function stagedPathFor(path: string): string {
  const slash = path.lastIndexOf('/');
  return `${path.slice(0, slash + 1)}.${path.slice(slash + 1).slice(0, 200)}.hutch-upload-${randomBytes(6).toString('hex')}`;
}
