// Processes that hutchd started: their output is held (up to a cap) until a client attaches, then
// forwarded with backpressure; the exit status is kept a while after the end for `wait`.
import { PassThrough, Readable, Writable } from 'node:stream';
import type { ExitStatus, ProcessHandle } from '../agent/index.js';
import { HutchError } from '../errors.js';

/** Where a process's output goes while a client is attached. */
export interface OutputSink {
  /** Delivers output of fd 1 or 2; false means "stop until drained() is called". */
  write(fd: 1 | 2, data: Buffer): boolean;
  /** The process ended and all its output was delivered. */
  exit(status: ExitStatus): void;
}

/** Output held per process while no client is attached; past it the process blocks on its writes. */
export const HELD_OUTPUT_BYTES = 256 * 1024;
/** Output a detached process keeps while no client is attached: its latest, older output is dropped. */
export const DETACHED_TAIL_BYTES = 1024 * 1024;

/**
 * What a process does while no client is attached: `kill` (started by the exec socket), `hold` its
 * output up to HELD_OUTPUT_BYTES and then block on its writes (POST without `detached`), or run
 * on keeping the last DETACHED_TAIL_BYTES of its output (`detached`).
 */
export type Unattended = 'kill' | 'hold' | 'keep-tail';

/** How long the status of an exited process is kept for `wait` and late attaches. */
const EXITED_KEEP_MS = 5 * 60_000;
/** Exited processes kept per sandbox (with their held output); older ones are forgotten first. */
const EXITED_KEEP_PER_SANDBOX = 64;

/** One process started through the API. */
export class ProcessEntry {
  private held: { fd: 1 | 2; data: Buffer }[] = [];
  private heldBytes = 0;
  private sink: OutputSink | null = null;
  private status: ExitStatus | undefined;
  private discarding = false;
  /** Resolves once it exited and all its output was read from the agent. */
  readonly done: Promise<ExitStatus>;
  readonly startedAt = new Date().toISOString();

  constructor(readonly sandboxId: string, readonly handle: ProcessHandle, readonly argv: string[], readonly unattended: Unattended) {
    const ended = (s: NodeJS.ReadableStream) => new Promise<void>((resolve) => {
      const r = s as NodeJS.ReadableStream & { readableEnded?: boolean };
      if (r.readableEnded) return resolve();
      s.once('end', () => resolve());
      s.once('close', () => resolve());
    });
    handle.stdout.on('data', (d: Buffer) => this.output(1, d));
    handle.stderr.on('data', (d: Buffer) => this.output(2, d));
    this.done = Promise.all([handle.wait(), ended(handle.stdout), ended(handle.stderr)]).then(([s]) => {
      this.status = s;
      this.sink?.exit(s);
      return s;
    });
    this.done.catch(() => undefined); // reported to whoever waits
  }

  get pid(): number {
    return this.handle.pid;
  }

  /** The exit status, once known. */
  get exitStatus(): ExitStatus | undefined {
    return this.status;
  }

  get attached(): boolean {
    return this.sink !== null;
  }

  /** True when it outlives its clients. */
  get detached(): boolean {
    return this.unattended !== 'kill';
  }

  private output(fd: 1 | 2, data: Buffer): void {
    if (this.discarding) return;
    if (this.sink) {
      if (!this.sink.write(fd, data)) this.pauseOutput();
      return;
    }
    this.held.push({ fd, data });
    this.heldBytes += data.length;
    if (this.unattended === 'keep-tail') this.dropOldest(DETACHED_TAIL_BYTES);
    else if (this.heldBytes >= HELD_OUTPUT_BYTES) this.pauseOutput();
  }

  /** Drops the oldest held output past `keep` bytes. */
  private dropOldest(keep: number): void {
    while (this.heldBytes > keep) {
      const first = this.held[0]!;
      const over = this.heldBytes - keep;
      if (first.data.length <= over) {
        this.held.shift();
        this.heldBytes -= first.data.length;
      } else {
        first.data = first.data.subarray(over);
        this.heldBytes -= over;
      }
    }
  }

  private pauseOutput(): void {
    this.handle.stdout.pause();
    this.handle.stderr.pause();
  }

  /** Lets output flow again (a sink calls this when it has drained). */
  drained(): void {
    this.handle.stdout.resume();
    this.handle.stderr.resume();
  }

  /** Attaches a client: held output goes to it first. Only one client at a time. */
  attach(sink: OutputSink): void {
    if (this.sink) throw new HutchError('ESTATE', `process ${this.pid} of sandbox ${this.sandboxId} already has a client attached`, { id: this.sandboxId });
    this.sink = sink;
    const held = this.held;
    this.held = [];
    this.heldBytes = 0;
    let flowing = true;
    for (const h of held) flowing = sink.write(h.fd, h.data) && flowing;
    if (this.status) sink.exit(this.status);
    else if (flowing) this.drained();
    else this.pauseOutput();
  }

  /** The client went away: the process is killed (`kill`) or keeps running with output held. */
  detach(sink: OutputSink): void {
    if (this.sink !== sink) return;
    this.sink = null;
    if (this.unattended === 'kill' && !this.status) {
      this.handle.kill('SIGKILL').catch(() => undefined); // it may have exited meanwhile
      this.discarding = true; // its remaining output is read and dropped, so that the end arrives
      this.held = [];
      this.drained();
    } else if (this.unattended === 'keep-tail') {
      this.drained(); // a slow client may have paused it: it runs on unread
    }
  }
}

/**
 * A command that could not start because it does not exist (ENOEXEC): it reads as a process that
 * wrote the error to stderr and exited 127, as a shell's would, so that `["nosuch"]` and `"nosuch"`
 * give the same result. Its pid is 0; it is never recorded in the table.
 */
export function unstartedProcess(error: HutchError, tty: boolean): ProcessHandle & { readonly error: HutchError } {
  const message = Buffer.from(`hutch: ${error.message}\n`);
  const stdout = tty ? new PassThrough() : Readable.from([]);
  const stderr = tty ? Readable.from([]) : new PassThrough();
  (tty ? stdout as PassThrough : stderr as PassThrough).end(message); // a terminal has one stream
  return {
    pid: 0, tty, stdout, stderr, error,
    stdin: new Writable({ write: (_c, _e, done) => done() }),
    wait: () => Promise.resolve({ exitCode: 127, signal: null }),
    resize: () => Promise.resolve(),
    kill: () => Promise.resolve(),
  };
}

/** Every process hutchd started, by sandbox and pid. */
export class ProcessTable {
  private readonly entries = new Map<string, ProcessEntry>();

  private key(sandboxId: string, pid: number): string {
    return `${sandboxId}/${pid}`;
  }

  /** Records a started process; its entry is dropped a while after it exits. */
  add(entry: ProcessEntry): ProcessEntry {
    if (entry.pid === 0) return entry; // never started (unstartedProcess)
    const k = this.key(entry.sandboxId, entry.pid);
    const exited = this.of(entry.sandboxId).filter((e) => e.exitStatus !== undefined);
    for (const old of exited.slice(0, Math.max(0, exited.length - EXITED_KEEP_PER_SANDBOX + 1))) this.entries.delete(this.key(old.sandboxId, old.pid));
    this.entries.set(k, entry);
    const drop = () => setTimeout(() => { if (this.entries.get(k) === entry) this.entries.delete(k); }, EXITED_KEEP_MS).unref();
    entry.done.then(drop, drop);
    return entry;
  }

  /** The entry of a process, or undefined if hutchd did not start it (or forgot it). */
  get(sandboxId: string, pid: number): ProcessEntry | undefined {
    return this.entries.get(this.key(sandboxId, pid));
  }

  /** The entry of a process, or ENOTFOUND. */
  must(sandboxId: string, pid: number): ProcessEntry {
    const e = this.get(sandboxId, pid);
    if (!e) throw new HutchError('ENOTFOUND', `process ${pid} of sandbox ${sandboxId} was not started through this hutchd (or exited long ago)`, { id: sandboxId });
    return e;
  }

  /** Forgets the processes of a removed sandbox. */
  dropSandbox(sandboxId: string): void {
    for (const [k, e] of this.entries) if (e.sandboxId === sandboxId) this.entries.delete(k);
  }

  /** Processes of a sandbox that hutchd knows. */
  of(sandboxId: string): ProcessEntry[] {
    return [...this.entries.values()].filter((e) => e.sandboxId === sandboxId);
  }
}
