// Processes that hutchd started: their output is held (up to a cap) until a client attaches, then
// forwarded with backpressure; the exit status is kept a while after the end for `wait`.
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

  constructor(readonly sandboxId: string, readonly handle: ProcessHandle, readonly argv: string[], readonly killOnDetach: boolean) {
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

  private output(fd: 1 | 2, data: Buffer): void {
    if (this.discarding) return;
    if (this.sink) {
      if (!this.sink.write(fd, data)) this.pauseOutput();
      return;
    }
    this.held.push({ fd, data });
    this.heldBytes += data.length;
    if (this.heldBytes >= HELD_OUTPUT_BYTES) this.pauseOutput();
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

  /** The client went away: the process is killed (killOnDetach) or keeps running with output held. */
  detach(sink: OutputSink): void {
    if (this.sink !== sink) return;
    this.sink = null;
    if (this.killOnDetach && !this.status) {
      this.handle.kill('SIGKILL').catch(() => undefined); // it may have exited meanwhile
      this.discarding = true; // its remaining output is read and dropped, so that the end arrives
      this.held = [];
      this.drained();
    }
  }
}

/** Every process hutchd started, by sandbox and pid. */
export class ProcessTable {
  private readonly entries = new Map<string, ProcessEntry>();

  private key(sandboxId: string, pid: number): string {
    return `${sandboxId}/${pid}`;
  }

  /** Records a started process; its entry is dropped a while after it exits. */
  add(entry: ProcessEntry): ProcessEntry {
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
