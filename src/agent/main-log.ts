// The log of a sandbox's main process: its stdout and stderr, interleaved as they come, appended to
// main.log in the agent's run dir (shared with the host, which reads it for `hutch logs`). It is kept
// whatever connection there is, so the output of a detached main command is not lost; past its cap
// the file is rotated once (main.log.1), so the newest output is always there.
import * as fs from 'node:fs';

/** File name of the main process's log in the run dir; the previous part is `${MAIN_LOG_NAME}.1`. */
export const MAIN_LOG_NAME = 'main.log';
/** Bytes in main.log before it is rotated. */
export const MAIN_LOG_CAP_BYTES = 8 * 1024 * 1024;

/** An append-only log file with one rotation. */
export class MainLog {
  private fd: number | null = null;
  private size = 0;
  private failed = false;

  constructor(private readonly file: string, private readonly log: (m: string) => void, private readonly capBytes = MAIN_LOG_CAP_BYTES) {}

  /** Appends a chunk of output; a write that fails stops the log (reported once) but never the process. */
  write(chunk: Buffer | string): void {
    if (this.failed) return;
    const data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    try {
      if (this.fd === null) this.open();
      if (this.size > 0 && this.size + data.length > this.capBytes) this.rotate();
      fs.writeSync(this.fd!, data);
      this.size += data.length;
    } catch (e) {
      this.failed = true;
      this.log(`main log ${this.file}: ${(e as Error).message}; no more output is logged`);
    }
  }

  /** Closes the file. */
  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }

  private open(): void {
    this.fd = fs.openSync(this.file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_APPEND | fs.constants.O_NOFOLLOW, 0o644);
    this.size = fs.fstatSync(this.fd).size;
  }

  private rotate(): void {
    this.close();
    fs.renameSync(this.file, `${this.file}.1`);
    this.open();
  }
}
