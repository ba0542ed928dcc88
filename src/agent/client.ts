// The host-side client of the agent. Everything the agent sends is untrusted: frames are size-limited,
// every response and event is schema-checked, and anything unexpected drops the connection (EPROTO).
import * as fs from 'node:fs';
import * as net from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { errnoCode, HutchError, isHutchError } from '../errors.js';
import { FileTransfers, type ReadRange } from './client-files.js';
import { forwardOver } from './client-forward.js';
import { WatchChannels, type WatchHandle, type WatchListener } from './client-watch.js';
import { ProcessChannel, type ChannelLink, type ProcessHandle } from './process-handle.js';
import { connectedWithin } from './socket-connect.js';
import {
  checkEvent, checkResponse, decodeCredit, decodeData, encodeCreditFrame, encodeDataFrame, encodeJsonFrame,
  FrameDecoder, FrameType, MAX_REQUEST_ID, parseJsonPayload, resultChecks,
  type ConnectParams, type DirEntry, type ExecParams, type ExitStatus, type FileStat, type Frame, type MethodName, type Params,
  type PingResult, type ProcessInfo, type Result, type SignalTarget, type StatsResult, type WatchParams,
} from './protocol.js';

/** Options of one call. */
export interface CallOptions {
  /** Fails the call with ETIMEDOUT after this long (default DEFAULT_CALL_TIMEOUT_MS; wait has none). */
  timeoutMs?: number;
  /** Fails the call when aborted. */
  signal?: AbortSignal;
}

/** Timeout of every call except `wait`, unless the call says otherwise. */
export const DEFAULT_CALL_TIMEOUT_MS = 10_000;
/** Timeout of `connectSocket` unless given. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
/** O_PATH (Linux, x86-64 and arm64): opens the socket inode itself, not a connection to it. */
const O_PATH = 0o10000000;
/** How many timed-out call ids are remembered so that their late responses are recognised. */
const ABANDONED_IDS = 1024;

interface Pending {
  method: MethodName;
  /** Runs synchronously on success, before later frames of the same chunk are handled. */
  accept: (result: unknown) => void;
  reject: (e: Error) => void;
  cleanup: () => void;
}

/** A connection to one agent. Calls may run concurrently; so may many processes' streams. */
export class AgentClient {
  private readonly decoder = new FrameDecoder([FrameType.RESPONSE, FrameType.EVENT, FrameType.DATA, FrameType.CREDIT]);
  private readonly pending = new Map<number, Pending>();
  private readonly abandoned = new Map<number, MethodName>();
  private readonly channels = new Map<number, ProcessChannel>();
  private readonly closeListeners: ((err: HutchError | null) => void)[] = [];
  private readonly link: ChannelLink;
  private nextId = 1;
  private closeReason: HutchError | null | undefined;
  private readonly files: FileTransfers;
  private readonly watches = new WatchChannels();
  private readonly onData = (chunk: Buffer): void => this.onBytes(chunk);
  private readonly onEnd = (): void => this.shutDown(new HutchError('EPROTO', 'the agent closed the connection'));
  private readonly onClosed = (): void => this.shutDown(new HutchError('EPROTO', 'the agent connection closed'));
  private readonly onError = (e: Error): void => this.shutDown(new HutchError('EPROTO', `agent connection: ${e.message}`, { cause: e }));

  private constructor(private readonly input: Readable, private readonly output: Writable) {
    input.on('data', this.onData);
    input.on('end', this.onEnd);
    input.on('close', this.onClosed);
    input.on('error', this.onError);
    if ((output as unknown) !== input) output.on('error', this.onError);
    this.link = {
      sendData: (pid, fd, bytes) => this.write(encodeDataFrame(pid, fd, bytes)),
      sendCredit: (pid, fd, bytes) => this.write(encodeCreditFrame(pid, fd, bytes)),
      resize: async (pid, cols, rows) => void (await this.call('resize', { pid, cols, rows })),
      kill: async (pid, signal) => void (await this.call('signal', { signal, target: { pid } })),
    };
    this.files = new FileTransfers((method, params, opts) => this.call(method, params, opts));
  }

  /**
   * Connects to the agent's unix socket at `socketPath` without following a symlink planted in its
   * place: the path is opened O_PATH|O_NOFOLLOW, must be a socket, and is connected through
   * /proc/self/fd (which also lifts the 108-byte sun_path limit).
   */
  static async connectSocket(socketPath: string, opts: { timeoutMs?: number } = {}): Promise<AgentClient> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    let fd: number;
    try {
      fd = fs.openSync(socketPath, O_PATH | fs.constants.O_NOFOLLOW);
    } catch (e) {
      const c = errnoCode(e);
      if (c === 'ENOENT') throw new HutchError('ENOTFOUND', `no agent socket at ${socketPath}`, { path: socketPath, cause: e });
      throw new HutchError(c === 'EACCES' ? 'EPERM' : 'EINVAL', `cannot open agent socket ${socketPath}: ${c}`, { path: socketPath, cause: e });
    }
    try {
      if (!fs.fstatSync(fd).isSocket()) {
        throw new HutchError('EPERM', `${socketPath} is not a socket (refusing a symlink or other file in its place)`, { path: socketPath });
      }
      const sock = await connectWithin(`/proc/self/fd/${fd}`, socketPath, timeoutMs);
      return new AgentClient(sock, sock);
    } finally {
      fs.closeSync(fd);
    }
  }

  /** A client over a pair of streams, e.g. the stdout/stdin of `runc exec … main.js --stdio`. */
  static fromStreams(readable: Readable, writable: Writable): AgentClient {
    return new AgentClient(readable, writable);
  }

  /** True once the connection is closed (by close(), the agent, or a protocol error). */
  get closed(): boolean {
    return this.closeReason !== undefined;
  }

  /** Runs `cb` once when the connection closes: with the error, or null after close(). */
  onClose(cb: (err: HutchError | null) => void): void {
    if (this.closeReason !== undefined) {
      const reason = this.closeReason;
      queueMicrotask(() => cb(reason));
    } else this.closeListeners.push(cb);
  }

  /** Closes the connection; calls in flight fail with ESTATE. Processes in the sandbox keep running. */
  close(): void {
    this.shutDown(null);
  }

  /** Makes one call: checks the result against the protocol, with a timeout and abort signal. */
  call<M extends MethodName>(method: M, params: Params<M>, opts: CallOptions & { defaultTimeoutMs?: number | null } = {},
    onResult?: (r: Result<M>) => void): Promise<Result<M>> {
    return new Promise<Result<M>>((resolve, reject) => {
      if (this.closeReason !== undefined) {
        return reject(new HutchError('ESTATE', `agent connection is closed${this.closeReason ? `: ${this.closeReason.message}` : ''}`));
      }
      const id = this.nextId;
      this.nextId = this.nextId >= MAX_REQUEST_ID ? 1 : this.nextId + 1;
      let frame: Buffer;
      try {
        frame = encodeJsonFrame(FrameType.REQUEST, { id, method, params });
      } catch (e) {
        return reject(e);
      }
      if (opts.signal?.aborted) return reject(new HutchError('ETIMEDOUT', `agent call ${method} was aborted`, { cause: opts.signal.reason }));
      const timeoutMs = opts.timeoutMs ?? (opts.defaultTimeoutMs === undefined ? DEFAULT_CALL_TIMEOUT_MS : opts.defaultTimeoutMs);
      const timer = timeoutMs === null ? undefined : setTimeout(() => this.abandon(id, new HutchError('ETIMEDOUT', `agent call ${method} timed out after ${timeoutMs} ms`)), timeoutMs);
      const onAbort = (): void => this.abandon(id, new HutchError('ETIMEDOUT', `agent call ${method} was aborted`, { cause: opts.signal?.reason }));
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, {
        method,
        accept: (r) => { onResult?.(r as Result<M>); resolve(r as Result<M>); },
        reject,
        cleanup: () => { if (timer) clearTimeout(timer); opts.signal?.removeEventListener('abort', onAbort); },
      });
      this.write(frame);
    });
  }

  private abandon(id: number, err: HutchError): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    p.cleanup();
    this.abandoned.set(id, p.method);
    if (this.abandoned.size > ABANDONED_IDS) this.abandoned.delete(this.abandoned.keys().next().value!);
    p.reject(err);
  }

  private write(frame: Buffer): void {
    if (this.closeReason === undefined) this.output.write(frame);
  }

  private onBytes(chunk: Buffer): void {
    if (this.closeReason !== undefined) return;
    try {
      for (const frame of this.decoder.push(chunk)) this.onFrame(frame);
    } catch (e) {
      const err = isHutchError(e) && e.code === 'EPROTO' ? e
        : new HutchError('EPROTO', `agent broke the protocol: ${(e as Error).message}`, { cause: e });
      this.shutDown(err);
    }
  }

  private onFrame(frame: Frame): void {
    switch (frame.type) {
      case FrameType.RESPONSE: return this.onResponse(parseJsonPayload(frame.payload));
      case FrameType.EVENT: return this.onEvent(parseJsonPayload(frame.payload));
      case FrameType.DATA: {
        const d = decodeData(frame.payload);
        return this.channel(d.pid).data(d.fd, d.bytes);
      }
      case FrameType.CREDIT: {
        const c = decodeCredit(frame.payload);
        if (c.fd !== 0) throw new HutchError('EPROTO', `agent sent credit for fd ${c.fd}; only stdin takes credit`);
        return this.channel(c.pid).stdinCredit(c.bytes);
      }
      default: throw new HutchError('EPROTO', `agent sent frame type ${frame.type}`);
    }
  }

  private channel(pid: number): ProcessChannel {
    const ch = this.channels.get(pid);
    if (!ch) throw new HutchError('EPROTO', `agent sent a stream frame for unknown process ${pid}`, { id: String(pid) });
    return ch;
  }

  private onResponse(raw: unknown): void {
    const msg = checkResponse(raw, 'response');
    const p = this.pending.get(msg.id);
    if (!p) {
      const method = this.abandoned.get(msg.id);
      if (!method) throw new HutchError('EPROTO', `agent answered unknown call id ${msg.id}`);
      this.abandoned.delete(msg.id);
      if (method === 'exec' && 'result' in msg) this.orphanedExec(resultChecks.exec(msg.result, 'exec result').pid);
      if (method === 'watch' && 'result' in msg) this.orphanedWatch(resultChecks.watch(msg.result, 'watch result').watchId);
      return;
    }
    this.pending.delete(msg.id);
    p.cleanup();
    if ('error' in msg) {
      const { code, message, id, path } = msg.error;
      return p.reject(new HutchError(code, message, { ...(id !== undefined ? { id } : {}), ...(path !== undefined ? { path } : {}) }));
    }
    try {
      p.accept(resultChecks[p.method](msg.result, `${p.method} result`));
    } catch (e) {
      const err = isHutchError(e) ? e
        : new HutchError('EPROTO', `agent sent a malformed ${p.method} result: ${(e as Error).message}`, { cause: e });
      p.reject(err);
      throw err;
    }
  }

  /** An exec that timed out on our side started after all: nobody will read it, so stop it. */
  private orphanedExec(pid: number): void {
    // A pid this side already streams: taking it over would cut that process off without a word.
    if (this.channels.has(pid)) throw new HutchError('EPROTO', `agent answered a timed-out exec with pid ${pid}, a process already running`, { id: String(pid) });
    const ch = new ProcessChannel(pid, false, false, this.link);
    ch.stdout.resume();
    ch.stderr.resume();
    this.channels.set(pid, ch);
    // A failure here means it already exited or the connection went away: nothing left to stop.
    this.link.kill(pid, 'SIGKILL').catch(() => undefined);
  }

  /** A watch that timed out on our side started after all: stop it, ignoring its events. */
  private orphanedWatch(watchId: number): void {
    this.watches.orphaned(watchId);
    this.call('unwatch', { watchId }).catch(() => undefined); // fails only if the connection is gone: so is the watch
  }

  private onEvent(raw: unknown): void {
    const ev = checkEvent(raw, 'event');
    if (ev.event === 'error') throw new HutchError(ev.code, `agent dropped the connection: ${ev.message}`);
    if (ev.event === 'watch' || ev.event === 'watch-end') return this.watches.event(ev);
    const ch = this.channel(ev.pid);
    ch.exited({ exitCode: ev.exitCode, signal: ev.signal }); // if this throws, shutDown fails the channel
    this.channels.delete(ev.pid);
  }

  private shutDown(reason: HutchError | null): void {
    if (this.closeReason !== undefined) return;
    this.closeReason = reason;
    const err = reason ?? new HutchError('ESTATE', 'agent connection closed by the client');
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.cleanup();
      p.reject(err);
    }
    for (const ch of this.channels.values()) ch.lost(err);
    this.channels.clear();
    this.watches.lost(err);
    this.output.end();
    this.input.destroy();
    if ((this.output as unknown) !== this.input) this.output.destroy();
    for (const cb of this.closeListeners.splice(0)) cb(reason);
  }

  /**
   * Makes this connection, before any call on it, a byte pipe to a TCP port on the sandbox's
   * loopback (the `connect` call, client-forward.ts); the client is closed for calls afterwards.
   */
  forwardPort(params: ConnectParams, opts: { timeoutMs?: number } = {}): Promise<net.Socket> {
    if (!(this.input instanceof net.Socket) || (this.output as unknown) !== this.input) {
      return Promise.reject(new HutchError('EUNSUPPORTED', 'a forward needs a socket connection to the agent'));
    }
    if (this.closeReason !== undefined || this.nextId !== 1) {
      return Promise.reject(new HutchError('ESTATE', 'a forward needs a fresh agent connection'));
    }
    const sock = this.input;
    sock.off('data', this.onData);
    sock.off('end', this.onEnd);
    sock.off('close', this.onClosed);
    sock.off('error', this.onError);
    this.closeReason = new HutchError('ESTATE', 'the agent connection became a forward');
    for (const cb of this.closeListeners.splice(0)) cb(this.closeReason);
    return forwardOver(sock, params, opts.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS);
  }

  /** ping: the agent's protocol version, pid and uptime. */
  ping(opts?: CallOptions): Promise<PingResult> {
    return this.call('ping', {}, opts);
  }

  /** Starts a process; its streams and exit arrive through the returned handle. */
  async exec(params: ExecParams, opts?: CallOptions): Promise<ProcessHandle> {
    let channel: ProcessChannel | undefined;
    await this.call('exec', params, opts, ({ pid }) => {
      // Registered before any later frame is read: the process's output may follow right away.
      if (this.channels.has(pid)) throw new HutchError('EPROTO', `agent reported pid ${pid} twice`, { id: String(pid) });
      channel = new ProcessChannel(pid, params.tty !== undefined, params.stdin, this.link);
      this.channels.set(pid, channel);
    });
    return channel!;
  }

  /** Waits for a process the agent started to finish (no timeout unless given). */
  wait(pid: number, opts: CallOptions = {}): Promise<ExitStatus> {
    return this.call('wait', { pid }, { ...opts, defaultTimeoutMs: null });
  }

  /** Sends a signal to a process, a process group, or every process; returns how many it reached. */
  async signal(signal: string | number, target: SignalTarget, opts?: CallOptions): Promise<number> {
    return (await this.call('signal', { signal, target }, opts)).delivered;
  }

  /** Resizes the terminal of a tty process. */
  async resize(pid: number, cols: number, rows: number, opts?: CallOptions): Promise<void> {
    await this.call('resize', { pid, cols, rows }, opts);
  }

  /** The sandbox's processes (at most MAX_PS_ENTRIES). */
  async ps(opts?: CallOptions): Promise<ProcessInfo[]> {
    return (await this.call('ps', {}, opts)).processes;
  }

  /** Process count, memory and load as seen from inside the sandbox. */
  stats(opts?: CallOptions): Promise<StatsResult> {
    return this.call('stats', {}, opts);
  }

  /** Reads a file (or a byte range) into memory; EINVAL beyond `maxBytes` (default 64 MiB). */
  readFile(path: string, opts?: CallOptions & ReadRange & { maxBytes?: number }): Promise<Buffer> {
    return this.files.readFile(path, opts);
  }

  /** A stream of a file's bytes, fetched chunk by chunk as it is read. */
  createReadStream(path: string, opts?: ReadRange & { timeoutMs?: number }): Readable {
    return this.files.createReadStream(path, opts);
  }

  /** Writes a file from a Buffer, string or stream (replacing it, or appending); returns bytes written. */
  writeFile(path: string, data: Buffer | string | Readable | AsyncIterable<Uint8Array>,
    opts?: CallOptions & { mode?: number; append?: boolean }): Promise<number> {
    return this.files.writeFile(path, data, opts);
  }

  /** Lists a directory, sorted by name; EINVAL beyond `maxEntries` (default 100000). */
  list(path: string, opts?: CallOptions & { maxEntries?: number }): Promise<DirEntry[]> {
    return this.files.list(path, opts);
  }

  /** Stats a path; a symlink itself unless `follow`. */
  stat(path: string, opts?: CallOptions & { follow?: boolean }): Promise<FileStat> {
    return this.files.stat(path, opts);
  }

  /** Creates a directory (and its parents with `parents`). */
  mkdir(path: string, opts?: CallOptions & { parents?: boolean; mode?: number }): Promise<void> {
    return this.files.mkdir(path, opts);
  }

  /** Removes a file, symlink, empty directory, or a tree with `recursive`. */
  remove(path: string, opts?: CallOptions & { recursive?: boolean }): Promise<void> {
    return this.files.remove(path, opts);
  }

  /** Makes a symlink at `path` holding `target`. */
  symlink(path: string, target: string, opts?: CallOptions): Promise<void> {
    return this.files.symlink(path, target, opts);
  }

  /** Renames `from` to `path` inside the sandbox (rename(2)). */
  rename(from: string, path: string, opts?: CallOptions): Promise<void> {
    return this.files.rename(from, path, opts);
  }

  /** Makes a hard link at `path` to the existing file `existing`. */
  hardLink(path: string, existing: string, opts?: CallOptions): Promise<void> {
    return this.files.hardLink(path, existing, opts);
  }

  /**
   * Watches a path for changes (inotify in the agent); `listener` hears them until close() or the
   * watch's end. EINVAL "unknown method" from an agent that predates watches.
   */
  async watch(params: WatchParams, listener: WatchListener, opts?: CallOptions): Promise<WatchHandle> {
    // Registered before any later frame is read: changes may follow the answer right away.
    const r = await this.call('watch', params, { defaultTimeoutMs: 30_000, ...opts }, ({ watchId }) => this.watches.add(watchId, listener));
    const close = async (): Promise<void> => {
      if (this.watches.forget(r.watchId) && !this.closed) await this.call('unwatch', { watchId: r.watchId });
    };
    return { ...r, close };
  }

  /** Has the agent close its listener and every connection (this one too) before a checkpoint; SIGUSR2 to it listens again. */
  quiesce(opts?: CallOptions): Promise<Record<string, never>> {
    return this.call('quiesce', {}, opts);
  }

  /** Stops every process (SIGTERM, then SIGKILL after graceMs); the agent exits after replying. */
  shutdown(params: { graceMs: number }, opts?: CallOptions): Promise<{ killed: number }> {
    return this.call('shutdown', params, opts);
  }
}

/** Connects to a unix socket path within `timeoutMs`. */
function connectWithin(connectPath: string, shownPath: string, timeoutMs: number): Promise<net.Socket> {
  return connectedWithin(net.connect(connectPath), timeoutMs,
    () => new HutchError('ETIMEDOUT', `connecting to the agent at ${shownPath} timed out after ${timeoutMs} ms`, { path: shownPath }),
    (e) => {
      const c = errnoCode(e);
      const code = c === 'ECONNREFUSED' ? 'ENOTFOUND' : c === 'EACCES' ? 'EPERM' : 'EPROTO';
      return new HutchError(code, `cannot connect to the agent at ${shownPath}: ${c ?? e.message}`, { path: shownPath, cause: e });
    });
}

