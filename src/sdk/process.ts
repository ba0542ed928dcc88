// A process in a sandbox, streamed over a WebSocket: output through callbacks or async iterators,
// stdin, resize, signals, and its exit.
import WebSocket from 'ws';
import { AbortError, apiError, HutchApiError } from './errors.js';
import type { CallOptions, Transport } from './transport.js';

/** How a process ended. */
export interface ExitInfo { exitCode: number | null; signal: string | null }

/** One piece of output. */
export interface OutputChunk { stream: 'stdout' | 'stderr'; data: Buffer }

/** Options of spawn. */
export interface SpawnOptions extends CallOptions {
  env?: Record<string, string>;
  cwd?: string;
  /** Run as UID or UID:GID inside the sandbox (default: the sandbox's user). */
  user?: number | string;
  /** A terminal of this size (true = 80x24); output then comes on stdout only. */
  tty?: boolean | { cols: number; rows: number };
  /** Keep stdin open for writeStdin (default false: the process reads end of input). */
  stdin?: boolean;
  /**
   * It outlives this client: when the stream closes (disconnect(), the program exits, the signal
   * aborts, the timeout passes) the process runs on, and hutchd keeps its latest 1 MiB of output
   * for the next client (sandbox.processes.connect). Default false: hutchd kills it.
   */
  detached?: boolean;
  /** Called with each piece of output; a stream with a callback is not kept for the iterators. */
  onStdout?: (data: Buffer) => void;
  onStderr?: (data: Buffer) => void;
}

/** Options of processes.connect: the output callbacks and the call options of spawn. */
export type AttachOptions = Pick<SpawnOptions, 'onStdout' | 'onStderr' | 'timeoutMs' | 'signal'>;

/** Largest stdin frame sent (hutchd refuses messages over 1 MiB). */
const STDIN_FRAME_BYTES = 256 * 1024;

/** Output held for iterators before the socket is paused (and with it, the process). */
const MAX_QUEUED_BYTES = 8 * 1024 * 1024;

/**
 * A running process (from Sandbox.spawn or processes.connect). The timeout and signal of the call
 * cover the stream's whole life.
 */
export class SandboxProcess {
  /** Its pid inside the sandbox (0: the command did not exist, see exec). */
  pid = 0;
  /** Output not kept because it was waited for and never read (past 8 MiB), in bytes. */
  droppedBytes = 0;
  private readonly queue: OutputChunk[] = [];
  private queuedBytes = 0;
  private waiters: (() => void)[] = [];
  private ended = false;
  private failure: HutchApiError | undefined;
  private readonly exit: Promise<ExitInfo>;
  private iterating = false;
  /** Iterators now reading the queue. */
  private readers = 0;
  /** wait() was called: while nobody reads, unread output must not stall the process. */
  private waited = false;
  private disconnected = false;

  /** @internal Use Sandbox.spawn or processes.connect. */
  constructor(private readonly ws: WebSocket, private readonly opts: SpawnOptions, started: (e?: HutchApiError) => void, cleanup: () => void) {
    let settle!: { resolve: (v: ExitInfo) => void; reject: (e: Error) => void };
    this.exit = new Promise((resolve, reject) => { settle = { resolve, reject }; });
    this.exit.catch(() => undefined); // reported through wait()
    let exitInfo: ExitInfo | undefined;
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) return this.output(data[0] === 2 ? 'stderr' : 'stdout', data.subarray(1));
      const m = JSON.parse(data.toString('utf8')) as { type: string; pid?: number; exitCode?: number | null; signal?: string | null; status?: number; error?: { code: string; message: string } };
      if (m.type === 'started') {
        this.pid = m.pid ?? 0;
        started();
      } else if (m.type === 'exit') {
        exitInfo = { exitCode: m.exitCode ?? null, signal: m.signal ?? null };
      } else if (m.type === 'error' && m.error) {
        this.failure = apiError(m.error.code, m.status ?? 500, m.error.message);
        started(this.failure);
      }
    });
    ws.on('error', (e) => {
      this.failure ??= e instanceof HutchApiError ? e : new HutchApiError('ENETWORK', 0, `process stream: ${e.message}`, { cause: e });
      started(this.failure);
    });
    ws.on('close', () => {
      cleanup();
      this.ended = true;
      this.wake();
      if (exitInfo) settle.resolve(exitInfo);
      else {
        const e = this.failure ?? new HutchApiError('ENETWORK', 0, `the process stream of ${this.pid} closed before its exit`);
        started(e);
        settle.reject(e);
      }
    });
  }

  private output(stream: 'stdout' | 'stderr', data: Buffer): void {
    const cb = stream === 'stdout' ? this.opts.onStdout : this.opts.onStderr;
    if (cb) return cb(data);
    this.queue.push({ stream, data });
    this.queuedBytes += data.length;
    if (this.queuedBytes > MAX_QUEUED_BYTES) {
      if (this.waited && this.readers === 0) this.dropOldest();
      else this.ws.pause();
    }
    this.wake();
  }

  /**
   * Drops the oldest output past the cap. Only while a wait() is pending and nothing iterates:
   * pausing then would stall the process (and with it the exit wait() is for) forever, and a paused
   * socket does not even keep node running.
   */
  private dropOldest(): void {
    while (this.queuedBytes > MAX_QUEUED_BYTES) {
      const c = this.queue.shift()!;
      this.queuedBytes -= c.data.length;
      this.droppedBytes += c.data.length;
    }
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Fails the stream from the client side (abort or timeout): the process is killed by hutchd. */
  fail(e: HutchApiError): void {
    this.failure ??= e;
    this.ws.terminate();
  }

  /** All output as it comes, stdout and stderr interleaved in arrival order (iterable once). */
  private async *iterate(): AsyncGenerator<OutputChunk> {
    if (this.iterating) throw new HutchApiError('ESTATE', 0, 'the output of a process can be iterated once');
    this.iterating = true;
    this.readers++;
    try {
      for (;;) {
        const c = this.queue.shift();
        if (c) {
          this.queuedBytes -= c.data.length;
          if (this.queuedBytes <= MAX_QUEUED_BYTES / 2 && this.ws.isPaused) this.ws.resume();
          yield c;
          continue;
        }
        if (this.ended) {
          if (this.failure && !(this.failure instanceof AbortError) && !this.disconnected) throw this.failure;
          return;
        }
        await new Promise<void>((r) => this.waiters.push(r));
      }
    } finally {
      this.readers--;
      this.unstallForWait();
    }
  }

  /** With a wait() pending and no reader, a stream paused for unread output flows again. */
  private unstallForWait(): void {
    if (!this.waited || this.readers > 0 || !this.ws.isPaused) return;
    this.dropOldest();
    this.ws.resume();
  }

  /** Iterates all output ({ stream, data }). */
  [Symbol.asyncIterator](): AsyncGenerator<OutputChunk> {
    return this.iterate();
  }

  /** Only stdout (stderr is dropped while iterating this). */
  get stdout(): AsyncIterable<Buffer> {
    return this.only('stdout');
  }

  /** Only stderr (stdout is dropped while iterating this). */
  get stderr(): AsyncIterable<Buffer> {
    return this.only('stderr');
  }

  private only(stream: 'stdout' | 'stderr'): AsyncIterable<Buffer> {
    const self = this;
    return { async *[Symbol.asyncIterator]() { for await (const c of self.iterate()) if (c.stream === stream) yield c.data; } };
  }

  /**
   * Resolves with its exit once all its output has arrived. Output nobody reads is kept up to 8 MiB
   * (the latest; older is dropped and counted in droppedBytes) rather than stalling the process.
   */
  wait(): Promise<ExitInfo> {
    this.waited = true;
    this.unstallForWait();
    return this.exit;
  }

  /** True when it outlives this client (spawned with detached, or reattached with connect). */
  get detached(): boolean {
    return this.opts.detached ?? false;
  }

  /**
   * Closes this client's stream; resolves once it is closed. A detached process runs on (connect to
   * it again by pid), any other is killed by hutchd. wait() then rejects unless the exit had arrived.
   */
  disconnect(): Promise<void> {
    this.disconnected = true;
    this.failure ??= new HutchApiError('ESTATE', 0, `disconnected from process ${this.pid}${this.detached ? ': it runs on (sandbox.processes.connect or .wait it by pid)' : ''}`);
    if (this.ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    const closed = new Promise<void>((resolve) => this.ws.once('close', () => resolve()));
    this.ws.close(1000, 'client disconnected');
    return closed;
  }

  private send(m: unknown): void {
    if (this.ws.readyState !== WebSocket.OPEN) throw new HutchApiError('ESTATE', 0, `process ${this.pid} has ended`);
    this.ws.send(typeof m === 'string' || Buffer.isBuffer(m) ? m : JSON.stringify(m));
  }

  /** Writes to its stdin (spawn with stdin: true); large writes go in pieces that fit hutchd's frame limit. */
  writeStdin(data: string | Uint8Array): void {
    const b = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    for (let off = 0; off < b.length; off += STDIN_FRAME_BYTES) this.send(b.subarray(off, off + STDIN_FRAME_BYTES));
  }

  /** Closes its stdin (it reads end of input). */
  closeStdin(): void {
    this.send({ type: 'close-stdin' });
  }

  /** Resizes its terminal (spawn with tty). */
  resize(cols: number, rows: number): void {
    this.send({ type: 'resize', cols, rows });
  }

  /** Sends it a signal (default SIGTERM). */
  kill(signal: string | number = 'SIGTERM'): void {
    this.send({ type: 'signal', signal });
  }
}

/** Opens the exec socket and starts the process; resolves once it runs. */
export function spawnProcess(t: Transport, sandboxId: string, cmd: string | string[], opts: SpawnOptions): Promise<SandboxProcess> {
  const tty = opts.tty === true ? { cols: 80, rows: 24 } : opts.tty || undefined;
  const start = {
    type: 'start', cmd, ...(opts.env ? { env: opts.env } : {}), ...(opts.cwd ? { cwd: opts.cwd } : {}), ...(opts.user !== undefined ? { user: String(opts.user) } : {}),
    ...(tty ? { tty } : {}), stdin: opts.stdin ?? false, ...(opts.detached ? { detached: true } : {}),
  };
  return openProcessStream(t, sandboxId, `/v1/sandboxes/${encodeURIComponent(sandboxId)}/exec`, opts, (ws) => ws.send(JSON.stringify(start)));
}

/** Attaches to a process hutchd started (detached, or by POST); resolves once attached. */
export function attachProcess(t: Transport, sandboxId: string, pid: number, opts: AttachOptions): Promise<SandboxProcess> {
  if (!Number.isInteger(pid) || pid < 1) return Promise.reject(new HutchApiError('EINVAL', 0, `invalid pid ${String(pid)}`));
  return openProcessStream(t, sandboxId, `/v1/sandboxes/${encodeURIComponent(sandboxId)}/processes/${pid}/attach`, { ...opts, detached: true }, () => undefined);
}

/** Opens a process stream at `route`, calls `opened` once the socket is open, resolves at 'started'. */
async function openProcessStream(t: Transport, sandboxId: string, route: string, opts: SpawnOptions, opened: (ws: WebSocket) => void): Promise<SandboxProcess> {
  const { signal, timeoutMs } = t.signalOf(opts);
  if (signal?.aborted) throw t.abortError(signal, timeoutMs, 'spawn');
  const ws = new WebSocket(t.wsUrl(route), { headers: t.headers(), perMessageDeflate: false });
  let proc!: SandboxProcess;
  const onAbort = () => proc.fail(t.abortError(signal!, timeoutMs, `process ${proc.pid || ''} of sandbox ${sandboxId}`.replace('  ', ' ')));
  const started = new Promise<void>((resolve, reject) => {
    proc = new SandboxProcess(ws, opts, (e) => (e ? reject(e) : resolve()), () => signal?.removeEventListener('abort', onAbort));
  });
  signal?.addEventListener('abort', onAbort, { once: true });
  ws.on('unexpected-response', (_req, res) => {
    const parts: Buffer[] = [];
    res.on('data', (c: Buffer) => parts.push(c));
    res.on('end', () => {
      let err: HutchApiError;
      try {
        const e = (JSON.parse(Buffer.concat(parts).toString('utf8')) as { error: { code: string; message: string } }).error;
        err = apiError(e.code, res.statusCode ?? 500, e.message);
      } catch {
        err = new HutchApiError('EPROTO', res.statusCode ?? 500, `hutchd refused the process stream with ${res.statusCode}`);
      }
      proc.fail(err);
    });
  });
  ws.once('open', () => opened(ws));
  await started;
  return proc;
}
