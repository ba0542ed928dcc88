// The files of a sandbox: read, write, list, stat, mkdir, remove, and tar upload/download.
import type { Readable } from 'node:stream';
import WebSocket from 'ws';
import { apiError, HutchApiError } from './errors.js';
import { readAll, type CallOptions, type Transport } from './transport.js';

/** A change seen by watch. */
export interface FileChange { kind: 'created' | 'modified' | 'removed'; path: string }

/** What stat gives. */
export interface FileInfo { path: string; type: 'file' | 'dir' | 'symlink' | 'other'; size: number; mode: number; uid: number; gid: number; mtimeMs: number; linkTarget: string | null }

/** One directory entry. */
export interface DirEntry { name: string; type: 'file' | 'dir' | 'symlink' | 'other'; size: number; mode: number; mtimeMs: number }

/** What an upload unpacked. */
export interface UploadResult { files: number; dirs: number; /** Symlinks and hard links made. */ links?: number; bytes: number }

/** File calls of one sandbox (sandbox.files). */
export class SandboxFiles {
  /** @internal Use sandbox.files. */
  constructor(private readonly t: Transport, private readonly id: string) {}

  private route(suffix = ''): string {
    return `/v1/sandboxes/${encodeURIComponent(this.id)}/files${suffix}`;
  }

  /** Reads a file: a Buffer, or a string with `encoding`. */
  async read(path: string, opts?: CallOptions): Promise<Buffer>;
  async read(path: string, opts: CallOptions & { encoding: BufferEncoding }): Promise<string>;
  async read(path: string, opts: CallOptions & { encoding?: BufferEncoding } = {}): Promise<Buffer | string> {
    const buf = await readAll(await this.t.request({ ...opts, method: 'GET', path: this.route(), query: { path } }));
    return opts.encoding ? buf.toString(opts.encoding) : buf;
  }

  /** A stream of a file's bytes (for large files). */
  async readStream(path: string, opts: CallOptions = {}): Promise<Readable> {
    return this.t.request({ ...opts, method: 'GET', path: this.route(), query: { path } });
  }

  /**
   * Writes a file (replacing it, or appending with `append`); `mode` such as 0o755. Missing parent
   * directories are made (0755) unless `parents: false` (then a missing parent is NotFoundError).
   * Returns bytes written.
   */
  async write(path: string, data: string | Uint8Array | Readable | AsyncIterable<Uint8Array>, opts: CallOptions & { mode?: number; append?: boolean; parents?: boolean } = {}): Promise<number> {
    const body = typeof data === 'string' ? data : data instanceof Uint8Array ? Buffer.from(data.buffer, data.byteOffset, data.byteLength) : data;
    const r = await this.t.json<{ written: number }>({
      ...opts, method: 'PUT', path: this.route(), body, contentType: 'application/octet-stream',
      query: { path, ...(opts.mode !== undefined ? { mode: opts.mode.toString(8) } : {}), ...(opts.append ? { append: true } : {}), ...(opts.parents === false ? {} : { parents: true }) },
    });
    return r.written;
  }

  /** Lists a directory. */
  async list(path: string, opts: CallOptions = {}): Promise<DirEntry[]> {
    return (await this.t.json<{ entries: DirEntry[] }>({ ...opts, method: 'GET', path: this.route('/list'), query: { path } })).entries;
  }

  /** Stats a path (a symlink itself unless `follow`). */
  stat(path: string, opts: CallOptions & { follow?: boolean } = {}): Promise<FileInfo> {
    return this.t.json<FileInfo>({ ...opts, method: 'GET', path: this.route('/stat'), query: { path, ...(opts.follow ? { follow: true } : {}) } });
  }

  /** True when the path exists. */
  async exists(path: string, opts: CallOptions = {}): Promise<boolean> {
    try {
      await this.stat(path, opts);
      return true;
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOTFOUND') return false;
      throw e;
    }
  }

  /** Makes a directory (with its parents when `parents`). */
  async mkdir(path: string, opts: CallOptions & { parents?: boolean; mode?: number } = {}): Promise<void> {
    await this.t.json({ ...opts, method: 'POST', path: this.route('/mkdir'), json: { path, ...(opts.parents ? { parents: true } : {}), ...(opts.mode !== undefined ? { mode: opts.mode } : {}) } });
  }

  /** Removes a file, link or empty directory (a whole tree with `recursive`). */
  async remove(path: string, opts: CallOptions & { recursive?: boolean } = {}): Promise<void> {
    await this.t.json({ ...opts, method: 'DELETE', path: this.route(), query: { path, ...(opts.recursive ? { recursive: true } : {}) } });
  }

  /** Unpacks a tar stream (or buffer) into a directory of the sandbox. */
  upload(dir: string, tar: Uint8Array | Readable | AsyncIterable<Uint8Array>, opts: CallOptions = {}): Promise<UploadResult> {
    const body = tar instanceof Uint8Array ? Buffer.from(tar.buffer, tar.byteOffset, tar.byteLength) : tar;
    return this.t.json<UploadResult>({ ...opts, method: 'PUT', path: `/v1/sandboxes/${encodeURIComponent(this.id)}/archive`, query: { path: dir }, body, contentType: 'application/x-tar' });
  }

  /** A tar stream of a file or tree of the sandbox (names start at its base name). */
  download(path: string, opts: CallOptions = {}): Promise<Readable> {
    return this.t.request({ ...opts, method: 'GET', path: `/v1/sandboxes/${encodeURIComponent(this.id)}/archive`, query: { path } });
  }

  /**
   * Watches a path (a directory's entries, or a file): with inotify in the sandbox, or (older agents,
   * inotify limits, a path that does not exist yet, or `mode: 'poll'`) as hutchd polls it every
   * `intervalMs` (default 500); `watch.mode` says which. Resolves once watching, so every change
   * after that is seen; iterate the result for changes; `close()` (or `signal`) ends it.
   */
  async watch(path: string, opts: CallOptions & { recursive?: boolean; intervalMs?: number; mode?: 'auto' | 'inotify' | 'poll' } = {}): Promise<FileWatch> {
    const url = this.t.wsUrl(`/v1/sandboxes/${encodeURIComponent(this.id)}/files/watch`, {
      path, ...(opts.recursive ? { recursive: true } : {}), ...(opts.intervalMs ? { intervalMs: opts.intervalMs } : {}), ...(opts.mode ? { mode: opts.mode } : {}),
    });
    const w = new FileWatch(new WebSocket(url, { headers: this.t.headers(), perMessageDeflate: false }), path, opts.signal);
    await w.ready;
    return w;
  }
}

/** A watch of a path (from files.watch): iterate it for changes. */
export class FileWatch implements AsyncIterable<FileChange> {
  private readonly queue: FileChange[] = [];
  private wake: (() => void) | undefined;
  private failure: HutchApiError | undefined;
  private closed = false;
  /** How hutchd watches: 'inotify' in the sandbox, or 'poll' (known once ready). */
  mode: 'inotify' | 'poll' | undefined;
  /** Resolves once hutchd watches (rejects if the watch could not start). */
  readonly ready: Promise<void>;

  /** @internal Use files.watch. */
  constructor(private readonly ws: WebSocket, path: string, signal?: AbortSignal) {
    let started!: (e?: Error) => void;
    this.ready = new Promise<void>((resolve, reject) => { started = (e) => (e ? reject(e) : resolve()); });
    const poke = () => { const w = this.wake; this.wake = undefined; w?.(); };
    ws.on('message', (d: Buffer) => {
      const m = JSON.parse(d.toString('utf8')) as { type: string; mode?: string; kind?: FileChange['kind']; path?: string; status?: number; error?: { code: string; message: string } };
      if (m.type === 'ready') {
        this.mode = m.mode === 'inotify' ? 'inotify' : 'poll'; // a hutchd without inotify watches says no mode
        started();
      }
      else if (m.type === 'change' && m.kind && m.path) this.queue.push({ kind: m.kind, path: m.path });
      else if (m.type === 'error' && m.error) this.failure = apiError(m.error.code, m.status ?? 500, m.error.message);
      poke();
    });
    ws.on('unexpected-response', (_req, res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => {
        try {
          const e = (JSON.parse(Buffer.concat(parts).toString('utf8')) as { error: { code: string; message: string } }).error;
          this.failure = apiError(e.code, res.statusCode ?? 500, e.message);
        } catch {
          this.failure = new HutchApiError('EPROTO', res.statusCode ?? 0, `hutchd refused to watch ${path} (${res.statusCode})`);
        }
        started(this.failure);
        ws.terminate();
      });
    });
    ws.on('error', (e) => { this.failure ??= new HutchApiError('ENETWORK', 0, `watch of ${path}: ${e.message}`, { cause: e }); started(this.failure); poke(); });
    ws.on('close', () => { this.closed = true; started(this.failure ?? new HutchApiError('ENETWORK', 0, `the watch of ${path} closed`)); poke(); });
    signal?.addEventListener('abort', () => this.close(), { once: true });
  }

  /** Ends the watch. */
  close(): void {
    this.ws.close();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<FileChange> {
    try {
      for (;;) {
        const c = this.queue.shift();
        if (c) { yield c; continue; }
        if (this.failure) throw this.failure;
        if (this.closed) return;
        await new Promise<void>((r) => { this.wake = r; });
      }
    } finally {
      this.ws.terminate();
    }
  }
}
