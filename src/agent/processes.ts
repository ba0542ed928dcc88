// The agent's table of exec'd processes: spawning, stdin/stdout/stderr plumbing, exit statuses and
// waiters. A process belongs to the connection that exec'd it (its owner); if that connection goes
// away the process keeps running, its output is discarded and its stdin is closed.
import type { ChildProcess } from 'node:child_process';
import type { IPty } from 'node-pty';
import type { MainLog } from './main-log.js';
import { HutchError } from '../errors.js';
import { OutputPump, type ProcessOwner, type PumpHost } from './output.js';
import { signalName } from './procfs.js';
import { STDIN_WINDOW, type ExecParams, type ExitStatus } from './protocol.js';
import { checkCwd, resolveCommand, spawnPipes, spawnPty } from './spawn.js';

/** How many exit statuses of finished processes `wait` can still answer for. */
export const EXIT_TABLE_SIZE = 1024;

/** Where stdin bytes from the host go; `done` runs once the bytes left the agent. */
interface StdinSink { write(bytes: Buffer, done: () => void): void; end(): void }

function pipeStdin(child: ChildProcess, log: (m: string) => void): StdinSink | null {
  const stdin = child.stdin;
  if (!stdin) return null;
  let broken = false;
  // EPIPE here means the process closed its stdin or exited: later input has nowhere to go.
  stdin.on('error', (e) => {
    broken = true;
    if ((e as NodeJS.ErrnoException).code !== 'EPIPE') log(`stdin of ${child.pid}: ${e.message}`);
  });
  return {
    write: (bytes, done) => (broken || stdin.destroyed ? done() : void stdin.write(bytes, () => done())),
    end: () => void (broken || stdin.destroyed ? undefined : stdin.end()),
  };
}

function ptyStdin(pty: IPty): StdinSink {
  return {
    // node-pty queues writes without telling when they are flushed, so credit is given at once.
    write: (bytes, done) => { pty.write(bytes); done(); },
    // A terminal has no end-of-input of its own (^D is the program's business), so closing is a no-op.
    end: () => undefined,
  };
}

/** One exec'd process and its streams. */
export class ManagedProcess implements PumpHost {
  owner: ProcessOwner | null;
  status: ExitStatus | null = null;
  finished = false;
  readonly pumps: OutputPump[] = [];
  stdin: StdinSink | null = null;
  private stdinOpen: boolean;
  private stdinUnacked = 0;
  private ptyHandle: IPty | undefined;

  constructor(readonly pid: number, readonly tty: boolean, readonly main: boolean, owner: ProcessOwner,
    private readonly table: ProcessTable, wantsStdin: boolean) {
    this.owner = owner;
    this.stdinOpen = wantsStdin;
  }

  get exited(): boolean {
    return this.status !== null;
  }

  /** Wires a child spawned with pipes. */
  attachPipes(child: ChildProcess): void {
    this.stdin = pipeStdin(child, this.table.log);
    for (const [fd, stream] of [[1, child.stdout], [2, child.stderr]] as const) {
      if (!stream) throw new HutchError('EINTERNAL', `child ${this.pid} has no fd ${fd} pipe`);
      const pump = new OutputPump(this, fd, stream);
      const mainLog = this.main ? this.table.mainLog : null;
      stream.on('data', (chunk: Buffer) => { mainLog?.write(chunk); pump.data(chunk); });
      stream.on('end', () => pump.end());
      stream.on('close', () => pump.end());
      stream.on('error', (e) => { this.table.log(`fd ${fd} of ${this.pid}: ${e.message}`); pump.end(); });
      this.pumps.push(pump);
    }
    child.on('error', (e) => this.table.log(`process ${this.pid}: ${e.message}`));
    child.on('exit', (code, signal) => this.exitedWith({ exitCode: code, signal }));
  }

  /** Wires a process on a pty: one output stream (fd 1); node-pty reports exit after all output. */
  attachPty(pty: IPty): void {
    this.ptyHandle = pty;
    this.stdin = ptyStdin(pty);
    const pump = new OutputPump(this, 1, { pause: () => pty.pause(), resume: () => pty.resume(), destroy: () => pty.kill('SIGHUP') });
    this.pumps.push(pump);
    const mainLog = this.main ? this.table.mainLog : null;
    pty.onData((d) => { mainLog?.write(d as unknown as Buffer); pump.data(d as unknown as Buffer); });
    pty.onExit(({ exitCode, signal }) => {
      pump.end();
      this.exitedWith(signal ? { exitCode: null, signal: signalName(signal) } : { exitCode, signal: null });
    });
  }

  /** Resizes the pty; EINVAL for a process without one. */
  resize(cols: number, rows: number): void {
    if (!this.ptyHandle) throw new HutchError('EINVAL', `process ${this.pid} has no terminal`, { id: String(this.pid) });
    if (!this.finished) this.ptyHandle.resize(cols, rows);
  }

  /** Stdin bytes from `from`; an empty chunk closes stdin. EPROTO if the host breaks the protocol. */
  stdinData(from: ProcessOwner, bytes: Buffer): void {
    if (from !== this.owner) return; // a stale frame for a process this connection no longer owns
    const id = String(this.pid);
    if (!this.stdinOpen || !this.stdin) throw new HutchError('EPROTO', `stdin of ${this.pid} is not open`, { id });
    if (bytes.length === 0) {
      this.stdinOpen = false;
      this.stdin.end();
      return;
    }
    this.stdinUnacked += bytes.length;
    if (this.stdinUnacked > STDIN_WINDOW) throw new HutchError('EPROTO', `stdin of ${this.pid} overran its ${STDIN_WINDOW}-byte window`, { id });
    this.stdin.write(bytes, () => {
      this.stdinUnacked -= bytes.length;
      if (this.owner === from) from.sendCredit(this.pid, 0, bytes.length);
    });
  }

  /** The host consumed `bytes` of output stream `fd`. */
  credit(from: ProcessOwner, fd: number, bytes: number): void {
    if (from !== this.owner) return;
    const pump = this.pumps.find((p) => p.fd === fd);
    if (!pump) throw new HutchError('EPROTO', `credit for fd ${fd} of ${this.pid}, which has no such stream`, { id: String(this.pid) });
    pump.credit(bytes);
  }

  /** The owning connection closed: keep running, discard output, close stdin. */
  detach(): void {
    this.owner = null;
    if (this.stdinOpen && this.stdin) this.stdin.end();
    this.stdinOpen = false;
    for (const p of this.pumps) p.update();
  }

  private exitedWith(status: ExitStatus): void {
    this.table.spawnedPids.delete(this.pid);
    this.status = status;
    for (const p of this.pumps) p.update();
    this.pumpEnded();
  }

  /** Called when a pump ends; the process is finished once it exited and all output went out. */
  pumpEnded(): void {
    if (this.finished || !this.status || this.pumps.some((p) => !p.ended)) return;
    this.finished = true;
    this.owner?.sendExit({ event: 'exit', pid: this.pid, ...this.status });
    this.table.finished(this);
  }
}

/** All exec'd processes of the agent, running and recently finished. */
export class ProcessTable {
  /** Pids that libuv or node-pty spawned and will reap; the Reaper must leave them alone. */
  readonly spawnedPids = new Set<number>();
  private readonly running = new Map<number, ManagedProcess>();
  private readonly exitStatuses = new Map<number, ExitStatus>();
  private readonly waiters = new Map<number, { owner: ProcessOwner; resolve: (s: ExitStatus) => void }[]>();
  private mainStarted = false;
  /** Where the main process's output is kept (agents started with --listen). */
  mainLog: MainLog | null = null;

  /** `onMainExit` runs when the process exec'd with main: true has finished; `onFinished` for every process. */
  constructor(readonly log: (m: string) => void, private readonly onMainExit: (s: ExitStatus) => void,
    private readonly onFinished: () => void = () => undefined) {}

  /** How many exec'd processes are still running or draining output. */
  get size(): number {
    return this.running.size;
  }

  /** Starts a process owned by `owner`. */
  async exec(owner: ProcessOwner, p: ExecParams): Promise<{ pid: number }> {
    if (p.main && this.mainStarted) throw new HutchError('ESTATE', 'the sandbox already has a main process');
    await checkCwd(p.cwd);
    const file = await resolveCommand(p.argv[0]!, p.env, p.cwd);
    if (p.main && this.mainStarted) throw new HutchError('ESTATE', 'the sandbox already has a main process');
    if (p.main) this.mainStarted = true;
    // From spawn until the result is sent nothing waits on I/O: the response precedes any output frame.
    try {
      let proc: ManagedProcess;
      if (p.tty) {
        const pty = spawnPty(file, p, p.tty);
        proc = this.add(new ManagedProcess(pty.pid, true, p.main ?? false, owner, this, p.stdin));
        proc.attachPty(pty);
      } else {
        const child = await spawnPipes(file, p);
        proc = this.add(new ManagedProcess(child.pid, false, p.main ?? false, owner, this, p.stdin));
        proc.attachPipes(child);
      }
      // The connection may have closed while the command was being resolved: nobody will read it.
      if (owner.isClosed) proc.detach();
      return { pid: proc.pid };
    } catch (e) {
      if (p.main) this.mainStarted = false;
      throw e;
    }
  }

  private add(proc: ManagedProcess): ManagedProcess {
    this.spawnedPids.add(proc.pid);
    this.running.set(proc.pid, proc);
    this.exitStatuses.delete(proc.pid); // pid reuse: the old status is no longer about this pid
    return proc;
  }

  /** A running process by pid; ENOTFOUND if there is none. */
  get(pid: number): ManagedProcess {
    const proc = this.running.get(pid);
    if (!proc) throw new HutchError('ENOTFOUND', `no running process ${pid} started by the agent`, { id: String(pid) });
    return proc;
  }

  /** A running process by pid, or undefined (for frames that may race with the process's end). */
  find(pid: number): ManagedProcess | undefined {
    return this.running.get(pid);
  }

  /** The exit status of `pid`: at once if it finished recently, else when it does. */
  wait(owner: ProcessOwner, pid: number): Promise<ExitStatus> {
    const done = this.exitStatuses.get(pid);
    if (done) return Promise.resolve(done);
    this.get(pid);
    return new Promise((resolve) => {
      const list = this.waiters.get(pid) ?? [];
      list.push({ owner, resolve });
      this.waiters.set(pid, list);
    });
  }

  /** Called by a process when it has exited and its output has been sent. */
  finished(proc: ManagedProcess): void {
    const status = proc.status!;
    this.running.delete(proc.pid);
    this.exitStatuses.set(proc.pid, status);
    if (this.exitStatuses.size > EXIT_TABLE_SIZE) this.exitStatuses.delete(this.exitStatuses.keys().next().value!);
    for (const w of this.waiters.get(proc.pid) ?? []) w.resolve(status);
    this.waiters.delete(proc.pid);
    this.onFinished();
    if (proc.main) this.onMainExit(status);
  }

  /** Re-evaluates flow control of `owner`'s processes (its write buffer drained). */
  resumeOwned(owner: ProcessOwner): void {
    for (const proc of this.running.values()) if (proc.owner === owner) for (const p of proc.pumps) p.update();
  }

  /** `owner` disconnected: its processes keep running unowned, and its waits are dropped. */
  detach(owner: ProcessOwner): void {
    for (const proc of this.running.values()) if (proc.owner === owner) proc.detach();
    for (const [pid, list] of this.waiters) {
      const rest = list.filter((w) => w.owner !== owner);
      if (rest.length > 0) this.waiters.set(pid, rest); else this.waiters.delete(pid);
    }
  }
}
