// One output stream (stdout or stderr) of an exec'd process, pumped to the connection that owns it.
// Flow control: at most OUTPUT_WINDOW bytes may be unacknowledged by the host (CREDIT frames), and
// the source is also paused while the connection's write buffer is full, so a slow host makes the
// process block on its pipe instead of the agent buffering without bound.
import { HutchError } from '../errors.js';
import { MAX_DATA_CHUNK, OUTPUT_WINDOW, type ExitEvent } from './protocol.js';

/** The connection side a process reports to (implemented by Session). */
export interface ProcessOwner {
  /** True while the connection's write buffer is over its limit; `resumeOwned` is called when it drains. */
  readonly congested: boolean;
  /** True once the connection is gone. */
  readonly isClosed: boolean;
  sendData(pid: number, fd: number, bytes: Buffer): void;
  sendCredit(pid: number, fd: number, bytes: number): void;
  sendExit(ev: ExitEvent): void;
}

/** What a pump reads from: a child's pipe or a pty. */
export interface OutputSource { pause(): void; resume(): void; destroy(): void }

/** The process a pump belongs to, as the pump sees it. */
export interface PumpHost {
  readonly pid: number;
  readonly owner: ProcessOwner | null;
  /** True once the process itself has exited (its output may still be draining). */
  readonly exited: boolean;
  pumpEnded(): void;
}

/** After the process exits, a pipe that stays silent this long is held open by a descendant: cut it. */
const POST_EXIT_IDLE_MS = 200;
/** After the process exits, at most this much more output is forwarded (a pipe holds far less). */
const POST_EXIT_MAX_BYTES = 4 * 1024 * 1024;
const EMPTY = Buffer.alloc(0);

/** Moves bytes of one stream from its source to the owning connection with flow control. */
export class OutputPump {
  private unacked = 0;
  private paused = false;
  private afterExit = 0;
  private idle: NodeJS.Timeout | undefined;
  ended = false;

  constructor(private readonly proc: PumpHost, readonly fd: 1 | 2, private readonly source: OutputSource) {}

  /** Forwards a chunk read from the source. */
  data(chunk: Buffer): void {
    if (this.ended) return;
    const owner = this.proc.owner;
    if (owner) {
      for (let i = 0; i < chunk.length; i += MAX_DATA_CHUNK) {
        owner.sendData(this.proc.pid, this.fd, chunk.subarray(i, i + MAX_DATA_CHUNK));
      }
      this.unacked += chunk.length;
    }
    if (this.proc.exited) {
      this.afterExit += chunk.length;
      if (this.afterExit > POST_EXIT_MAX_BYTES) return this.cut();
    }
    this.update();
  }

  /** The host consumed `bytes` of this stream. */
  credit(bytes: number): void {
    if (bytes > this.unacked) {
      throw new HutchError('EPROTO', `credit of ${bytes} bytes for ${this.proc.pid}/${this.fd} exceeds the ${this.unacked} sent`, { id: String(this.proc.pid) });
    }
    this.unacked -= bytes;
    this.update();
  }

  /** Re-evaluates pausing (after a credit, a drain, an owner change or the process exit). */
  update(): void {
    if (this.ended) return;
    const owner = this.proc.owner;
    if (!owner) this.unacked = 0; // nobody to wait for: output is discarded, never held
    const pause = owner !== null && (owner.congested || this.unacked >= OUTPUT_WINDOW);
    if (pause !== this.paused) {
      this.paused = pause;
      if (pause) this.source.pause(); else this.source.resume();
    }
    if (this.idle) clearTimeout(this.idle);
    this.idle = this.proc.exited && !this.paused ? setTimeout(() => this.cut(), POST_EXIT_IDLE_MS) : undefined;
  }

  /** The source reached its end (EOF, error or close). */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.idle) clearTimeout(this.idle);
    this.proc.owner?.sendData(this.proc.pid, this.fd, EMPTY);
    this.proc.pumpEnded();
  }

  /** Stops reading a pipe that a descendant of the exited process keeps open. */
  private cut(): void {
    this.source.destroy();
    this.end();
  }
}
