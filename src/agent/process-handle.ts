// The host side of a process started through the agent: its stdio as Node streams, with the
// protocol's flow control (credits) underneath, and its exit status.
import { Readable, Writable } from 'node:stream';
import { HutchError } from '../errors.js';
import { MAX_DATA_CHUNK, OUTPUT_WINDOW, STDIN_WINDOW, type ExitStatus } from './protocol.js';

/** A process started by `AgentClient.exec`. */
export interface ProcessHandle {
  /** Its pid inside the sandbox. */
  readonly pid: number;
  /** True when it runs on a pseudo-terminal (then everything comes on stdout and stderr is empty). */
  readonly tty: boolean;
  /** Its output. Consume it (or call resume()): unread output stalls the process, as with a pipe. */
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** Its input; ending it closes the process's stdin. Writing fails with EINVAL if exec had stdin: false. */
  readonly stdin: Writable;
  /**
   * Resolves once it has exited and all its output has arrived in stdout/stderr (which may still hold
   * some unread: wait for their 'end' too); rejects if the connection is lost first.
   */
  wait(): Promise<ExitStatus>;
  /** Resizes its terminal. */
  resize(cols: number, rows: number): Promise<void>;
  /** Sends it a signal (default SIGTERM). */
  kill(signal?: string | number): Promise<void>;
}

/** What a channel needs from the client that owns it. */
export interface ChannelLink {
  sendData(pid: number, fd: number, bytes: Buffer): void;
  sendCredit(pid: number, fd: number, bytes: number): void;
  resize(pid: number, cols: number, rows: number): Promise<void>;
  kill(pid: number, signal: string | number): Promise<void>;
}

/** Bytes consumed before the client returns credit to the agent (well under OUTPUT_WINDOW). */
const CREDIT_BATCH = 64 * 1024;
/** The agent may overshoot its window by what one read of the source brought in. */
const MAX_UNACKED_OUTPUT = 2 * OUTPUT_WINDOW;

class OutputStream extends Readable {
  unacked = 0;
  ended = false;

  constructor(private readonly pid: number, private readonly fd: 1 | 2, private readonly link: ChannelLink) {
    super();
  }

  override _read(): void {
    // Called when the consumer wants more: what was pushed so far has (mostly) been taken.
    if (this.unacked >= CREDIT_BATCH && !this.ended) {
      this.link.sendCredit(this.pid, this.fd, this.unacked);
      this.unacked = 0;
    }
  }

  receive(bytes: Buffer): void {
    const id = String(this.pid);
    if (this.ended) throw new HutchError('EPROTO', `agent sent fd ${this.fd} data of ${this.pid} after its end`, { id });
    if (bytes.length === 0) return this.finish();
    this.unacked += bytes.length;
    if (this.unacked > MAX_UNACKED_OUTPUT) throw new HutchError('EPROTO', `agent overran the output window of ${this.pid}`, { id });
    this.push(bytes);
  }

  finish(): void {
    if (this.ended) return;
    this.ended = true;
    this.push(null);
  }
}

/** One stdin write waiting for window. */
interface QueuedWrite { bytes: Buffer; done: (e?: Error | null) => void }

/** The client's record of one process: routes its frames and implements ProcessHandle. */
export class ProcessChannel implements ProcessHandle {
  readonly stdout: OutputStream;
  readonly stderr: OutputStream;
  readonly stdin: Writable;
  private stdinInFlight = 0;
  private queued: QueuedWrite | undefined;
  private finished = false;
  private readonly exit: Promise<ExitStatus>;
  private settle!: { resolve: (s: ExitStatus) => void; reject: (e: Error) => void };

  constructor(readonly pid: number, readonly tty: boolean, stdinWanted: boolean, private readonly link: ChannelLink) {
    this.stdout = new OutputStream(pid, 1, link);
    this.stderr = new OutputStream(pid, 2, link);
    if (tty) this.stderr.finish(); // a terminal has one output stream
    this.exit = new Promise((resolve, reject) => { this.settle = { resolve, reject }; });
    // The rejection is delivered to wait() callers; unobserved, it must not crash the host.
    this.exit.catch(() => undefined);
    this.stdin = new Writable({
      write: (chunk: Buffer, _enc, done) => {
        if (!stdinWanted) return done(new HutchError('EINVAL', `process ${pid} was started without stdin`, { id: String(pid) }));
        this.queued = { bytes: chunk, done };
        this.pumpStdin();
      },
      final: (done) => {
        if (stdinWanted && !this.finished) link.sendData(pid, 0, Buffer.alloc(0));
        done();
      },
    });
  }

  /** Sends queued stdin as far as the window allows. */
  private pumpStdin(): void {
    const q = this.queued;
    if (!q) return;
    if (this.finished) {
      // The process is gone: like a closed pipe, but without failing the writer.
      this.queued = undefined;
      return q.done();
    }
    while (q.bytes.length > 0 && this.stdinInFlight < STDIN_WINDOW) {
      const n = Math.min(q.bytes.length, STDIN_WINDOW - this.stdinInFlight, MAX_DATA_CHUNK);
      this.link.sendData(this.pid, 0, q.bytes.subarray(0, n));
      this.stdinInFlight += n;
      q.bytes = q.bytes.subarray(n);
    }
    if (q.bytes.length === 0) {
      this.queued = undefined;
      q.done();
    }
  }

  /** A DATA frame from the agent for this process. */
  data(fd: number, bytes: Buffer): void {
    if (fd === 1) return this.stdout.receive(bytes);
    if (fd === 2 && !this.tty) return this.stderr.receive(bytes);
    throw new HutchError('EPROTO', `agent sent data for fd ${fd} of ${this.pid}`, { id: String(this.pid) });
  }

  /** A CREDIT frame from the agent: that much stdin has been delivered. */
  stdinCredit(bytes: number): void {
    if (bytes > this.stdinInFlight) throw new HutchError('EPROTO', `agent credited ${bytes} stdin bytes of ${this.pid}, more than were sent`, { id: String(this.pid) });
    this.stdinInFlight -= bytes;
    this.pumpStdin();
  }

  /** The exit event: every output stream must have ended before it. */
  exited(status: ExitStatus): void {
    if (!this.stdout.ended || !this.stderr.ended) {
      throw new HutchError('EPROTO', `agent reported the exit of ${this.pid} before the end of its output`, { id: String(this.pid) });
    }
    this.finished = true;
    this.pumpStdin();
    this.settle.resolve(status);
  }

  /** The connection is gone before the exit: streams end, wait() rejects with `err`. */
  lost(err: HutchError): void {
    if (this.finished) return;
    this.finished = true;
    this.stdout.finish();
    this.stderr.finish();
    // A pending stdin write completes quietly: the loss is reported once, through wait(), rather
    // than also as an 'error' event that would crash a host that did not listen for it.
    const q = this.queued;
    this.queued = undefined;
    q?.done();
    this.settle.reject(err);
  }

  wait(): Promise<ExitStatus> {
    return this.exit;
  }

  resize(cols: number, rows: number): Promise<void> {
    return this.link.resize(this.pid, cols, rows);
  }

  kill(signal: string | number = 'SIGTERM'): Promise<void> {
    return this.link.kill(this.pid, signal);
  }
}
