// The agent's core: dispatches calls from every connection, and owns the lifecycle of the sandbox's
// processes (main-process exit, shutdown, reaping). main.ts only sets up the transport around it.
import type { Readable, Writable } from 'node:stream';
import { HutchError } from '../errors.js';
import { mallocTrim } from '../linux/ffi.js';
import { writeExitFile } from './exit-file.js';
import { MainLog } from './main-log.js';
import * as files from './files.js';
import { ProcessTable } from './processes.js';
import { deliverSignal, listProcesses, sandboxProcesses, sandboxStats, signalAll, signalNumber } from './procfs.js';
import { PROTOCOL_VERSION, type ExitStatus, type MethodName, type Params } from './protocol.js';
import { Reaper } from './reaper.js';
import { Session, type Dispatcher } from './session.js';
import { Watches } from './watch.js';

/** How the agent was started. */
export interface AgentOptions {
  /** Where the main process's exit record goes; null when there is none (--stdio): main exec is refused. */
  exitFile: string | null;
  /** Where the main process's output is logged (main.log beside the exit record); none with --stdio. */
  mainLogFile?: string | null;
  log: (msg: string) => void;
  /** Runs when a connection closes (the --stdio agent exits then). */
  onSessionClosed?: (s: Session) => void;
}

const SIGTERM = 15, SIGKILL = 9;
/** After SIGKILL, how long shutdown waits for the processes to be gone before it replies anyway. */
const KILL_SETTLE_MS = 1000;
/** Quiet time after activity before the agent gives its garbage back to the kernel. */
const COMPACT_AFTER_IDLE_MS = 2000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The in-sandbox agent. */
export class Agent implements Dispatcher {
  readonly table: ProcessTable;
  /** The file watches of every connection. */
  readonly watches = new Watches();
  private readonly reaper: Reaper;
  private readonly sessions = new Set<Session>();
  private readonly startMs = performance.now();
  private shutdownRun: Promise<{ killed: number }> | undefined;
  private exiting = false;
  private exitCode = 0;
  private connections = 0;
  private compactTimer: NodeJS.Timeout | undefined;
  /** Runs just before the agent exits (main.ts closes the listener and removes the socket). */
  onBeforeExit: (() => void) | undefined;
  /** Closes the listener and removes its socket (main.ts), for quiesce. */
  onQuiesce: (() => void) | undefined;

  constructor(private readonly opts: AgentOptions) {
    this.table = new ProcessTable(opts.log, (s) => this.mainExited(s), () => this.noteActivity());
    if (opts.mainLogFile) this.table.mainLog = new MainLog(opts.mainLogFile, opts.log);
    this.reaper = new Reaper(this.table.spawnedPids, opts.log);
  }

  /** Starts reaping orphans. */
  start(): void {
    this.reaper.start();
  }

  /** Logs one line to the agent's stderr. */
  log(msg: string): void {
    this.opts.log(msg);
  }

  /** Serves a new connection over `input`/`output` (the same socket, or stdin/stdout). */
  addSession(input: Readable, output: Writable): Session {
    const s = new Session(input, output, this, `connection ${++this.connections}`);
    this.sessions.add(s);
    return s;
  }

  /** A session ended. */
  closed(session: Session): void {
    this.sessions.delete(session);
    this.watches.closeSink(session);
    this.noteActivity();
    this.opts.onSessionClosed?.(session);
  }

  /**
   * Schedules a compaction once the agent has been quiet for a while. A burst of output or file
   * transfers leaves garbage buffers that an idle V8 never collects and freed heap that glibc keeps;
   * in a sandbox that then sits idle that would be tens of MB held for nothing.
   */
  noteActivity(): void {
    if (this.compactTimer) this.compactTimer.refresh();
    else {
      this.compactTimer = setTimeout(() => this.compact(), COMPACT_AFTER_IDLE_MS);
      this.compactTimer.unref();
    }
  }

  private compact(): void {
    // gc exists when node runs with --expose-gc (recommended for the agent); malloc_trim needs glibc.
    (globalThis as { gc?: () => void }).gc?.();
    mallocTrim();
  }

  /** Runs one checked call. */
  async call(session: Session, method: MethodName, params: unknown): Promise<unknown> {
    this.noteActivity();
    switch (method) {
      case 'ping': return { version: PROTOCOL_VERSION, pid: process.pid, uptimeMs: this.uptimeMs() };
      case 'exec': {
        const p = params as Params<'exec'>;
        if (this.shutdownRun || this.exiting) throw new HutchError('ESTATE', 'the agent is shutting down');
        if (p.main && !this.opts.exitFile) throw new HutchError('EINVAL', 'a main process needs an agent started with --listen');
        return this.table.exec(session, p);
      }
      case 'wait': return this.table.wait(session, (params as Params<'wait'>).pid);
      case 'resize': {
        const p = params as Params<'resize'>;
        this.table.get(p.pid).resize(p.cols, p.rows);
        return {};
      }
      case 'signal': {
        const p = params as Params<'signal'>;
        return { delivered: deliverSignal(signalNumber(p.signal), p.target) };
      }
      case 'ps': return listProcesses();
      case 'stats': return sandboxStats(this.startMs);
      case 'readFile': return files.readFile(params as Params<'readFile'>);
      case 'writeFile': return files.writeFile(params as Params<'writeFile'>);
      case 'list': return files.list(params as Params<'list'>);
      case 'stat': return files.stat(params as Params<'stat'>);
      case 'mkdir': return files.mkdir(params as Params<'mkdir'>);
      case 'remove': return files.remove(params as Params<'remove'>);
      case 'symlink': return files.symlink(params as Params<'symlink'>);
      case 'replaceFile': return files.replaceFile(params as Params<'replaceFile'>);
      case 'link': return files.link(params as Params<'link'>);
      case 'rename': return files.rename(params as Params<'rename'>);
      case 'watch': return this.watches.start(session, params as Params<'watch'>);
      case 'unwatch': {
        this.watches.stop(session, (params as Params<'unwatch'>).watchId);
        return {};
      }
      case 'connect': throw new HutchError('EPROTO', 'connect is answered by its connection, never dispatched');
      case 'quiesce':
        // After the reply is written: a checkpoint cannot save a socket bound on the host (gVisor's).
        setImmediate(() => void this.quiesce());
        return {};
      case 'shutdown': {
        const result = await this.shutdown((params as Params<'shutdown'>).graceMs);
        // The response is written before this runs, and exit() flushes it.
        setImmediate(() => void this.exit(this.exitCode));
        return result;
      }
    }
  }

  private uptimeMs(): number {
    return Math.round(performance.now() - this.startMs);
  }

  /** SIGTERM to every process, up to `graceMs` for them to go, then SIGKILL to the rest. */
  shutdown(graceMs: number): Promise<{ killed: number }> {
    this.shutdownRun ??= (async () => {
      const othersAlive = (): boolean => sandboxProcesses().size > 1;
      signalAll(SIGTERM);
      const deadline = performance.now() + graceMs;
      while (othersAlive() && performance.now() < deadline) await sleep(20);
      const killed = othersAlive() ? signalAll(SIGKILL) : 0;
      const settle = performance.now() + KILL_SETTLE_MS;
      while (othersAlive() && performance.now() < settle) {
        this.reaper.reap();
        await sleep(10);
      }
      return { killed };
    })();
    return this.shutdownRun;
  }

  /** The main process finished: record its status, end every other process, and exit with its code. */
  private mainExited(status: ExitStatus): void {
    this.exitCode = status.signal !== null ? 128 + signalNumber(status.signal) : status.exitCode ?? 0;
    try {
      if (this.opts.exitFile) writeExitFile(this.opts.exitFile, status);
    } catch (e) {
      // The exit is still carried out: the host also sees the agent's own exit code.
      this.log(`cannot write exit record ${this.opts.exitFile}: ${(e as Error).message}`);
    }
    if (this.shutdownRun) return; // shutdown replies first and exits with this code
    signalAll(SIGKILL);
    void this.exit(this.exitCode);
  }

  /** Flushes every connection and exits the agent with `code`. */
  async exit(code: number): Promise<void> {
    if (this.exiting) return;
    this.exiting = true;
    this.reaper.stop();
    this.onBeforeExit?.();
    await Promise.all([...this.sessions].map((s) => s.flushAndClose(1000)));
    process.exit(code);
  }

  /** Stops listening and ends every connection; processes keep running unowned, as when their client goes. */
  async quiesce(): Promise<void> {
    this.onQuiesce?.();
    await Promise.all([...this.sessions].map((s) => s.flushAndClose(1000)));
  }

  /** Runs the shutdown path for a SIGTERM/SIGINT from outside, then exits. */
  async terminate(graceMs: number): Promise<void> {
    await this.shutdown(graceMs);
    await this.exit(this.exitCode);
  }
}
