// The OCI executor: one interface over runc-compatible binaries (runc, crun; runsc and
// kata-runtime later), driven through their command line.
import { spawn, type ChildProcess, type SpawnOptions, type StdioOptions } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import tty from 'node:tty';
import { HutchError, isHutchError } from '../../errors.js';

/** What `<executor> state ID` reports. */
export interface ExecutorState { id: string; pid: number; status: 'created' | 'running' | 'paused' | 'stopped' | 'creating'; bundle: string }

/** The caller's stdio for a foreground run: inherit or ignore each of stdin, stdout, stderr. */
export type ForegroundStdio = ('inherit' | 'ignore')[];

/** A verb run in the foreground, attached to hutch's stdio. */
export interface AttachedOptions { stdio: ForegroundStdio; terminal: boolean; logFile: string }

/** Options for starting a container process. */
export interface ExecutorSpawnOptions { stdio: StdioOptions; pidFile?: string; detach?: boolean; preserveFds?: number }

/** How an executor binary is run. */
export interface ExecutorConfig {
  name: 'runc' | 'crun' | 'runsc' | 'kata-runtime';
  /** The executor's binary. */
  binary: string;
  /** What runs it: [binary] itself, or a launcher whose last words exec the binary with the rest. */
  command: string[];
  stateDir: string;
  globalArgs: string[];
  /** Global flags that depend on the bundle, for the verbs that make a container (create, run, restore); they follow globalArgs. */
  bundleArgs?: (bundle: string) => string[];
}

/** A runc-compatible OCI executor. */
export class OciExecutor {
  constructor(readonly config: ExecutorConfig) {}

  get name(): string { return this.config.name; }

  /** `create --bundle B ID`: the init process is made but waits for `start`. */
  async create(id: string, bundle: string, opts: ExecutorSpawnOptions): Promise<void> {
    const args = ['create', '--bundle', bundle];
    if (opts.pidFile) args.push('--pid-file', opts.pidFile);
    // The fds after stdio (3 on) go on to the init.
    if (opts.preserveFds) args.push('--preserve-fds', String(opts.preserveFds));
    await this.call([...this.bundleArgs(bundle), ...args, id], { id, stdio: opts.stdio });
  }

  /** `run -d --bundle B ID`: create and start in one call, detached. */
  async runDetached(id: string, bundle: string, opts: ExecutorSpawnOptions): Promise<void> {
    const args = ['run', '--detach', '--bundle', bundle];
    if (opts.pidFile) args.push('--pid-file', opts.pidFile);
    await this.call([...this.bundleArgs(bundle), ...args, id], { id, stdio: opts.stdio });
  }

  /** `run --bundle B ID` in the foreground with the caller's stdio; resolves to the exit status. */
  runForeground(id: string, bundle: string, opts: AttachedOptions & { pidFile: string }): { done: Promise<number> } {
    return this.attached(id, [...this.bundleArgs(bundle), 'run', '--bundle', bundle, '--pid-file', opts.pidFile, id], opts);
  }

  /** `exec [FLAGS] ID -- ARGS` in the foreground with the caller's stdio; resolves to the exit status. */
  exec(id: string, flags: string[], argv: string[], opts: AttachedOptions): { done: Promise<number> } {
    // No `--`: runc takes every word after the id as the command.
    return this.attached(id, ['exec', ...flags, id, ...argv], opts);
  }

  /**
   * Runs a foreground verb with the caller's stdio. The executor's own messages go to `logFile`
   * (JSON), so that stderr carries only the container's output and a failure to start becomes one
   * clear HutchError. Signals sent to hutch go on to the container.
   */
  private attached(id: string, verbArgs: string[], opts: AttachedOptions): { done: Promise<number> } {
    const verb = verbArgs[0]!;
    const args = ['--log', opts.logFile, '--log-format', 'json', ...this.config.globalArgs, ...verbArgs];
    // With a terminal, the executor reads the host's tty itself and must stay in its foreground
    // group (it gets ^C/^\ from the tty); otherwise it gets its own group and hutch forwards signals.
    const onTerminal = opts.terminal && opts.stdio[0] === 'inherit' && tty.isatty(0);
    // A host terminal is never handed to the sandbox (TIOCSTI could type into the host's shell):
    // without -t, a tty fd becomes a pipe that hutch relays. stderr always goes through hutch so
    // that the executor's own copy of a start failure is dropped: hutch reports it as one line.
    const relayIn = opts.stdio[0] === 'inherit' && !opts.terminal && tty.isatty(0);
    const relayOut = opts.stdio[1] === 'inherit' && !opts.terminal && tty.isatty(1);
    const stdio: StdioOptions = [relayIn ? 'pipe' : opts.stdio[0], relayOut ? 'pipe' : opts.stdio[1], opts.stdio[2] === 'inherit' ? 'pipe' : opts.stdio[2]];
    const child = this.spawn(args, { stdio, detached: !onTerminal });
    if (relayIn) process.stdin.pipe(child.stdin!);
    if (relayOut) child.stdout!.pipe(process.stdout, { end: false });
    const failureLine = new RegExp(`^(${this.name} )?${verb} failed: `);
    child.stderr?.on('data', (chunk: Buffer) => {
      const text = chunk.toString('latin1');
      if (!text.includes(`${verb} failed: `)) return void process.stderr.write(chunk);
      process.stderr.write(Buffer.from(text.split('\n').filter((l) => !failureLine.test(l)).join('\n'), 'latin1'));
    });
    const forwarded: NodeJS.Signals[] = onTerminal ? ['SIGTERM', 'SIGHUP', 'SIGUSR1', 'SIGUSR2'] : ['SIGINT', 'SIGQUIT', 'SIGTERM', 'SIGHUP', 'SIGUSR1', 'SIGUSR2'];
    const forward = (sig: NodeJS.Signals) => { child.kill(sig); };
    for (const sig of forwarded) process.on(sig, forward);
    const done = new Promise<number>((resolve, reject) => {
      child.on('error', (e) => reject(new HutchError('EEXEC', `${this.name} ${verb} ${id}: ${e.message}`, { id, cause: e })));
      child.on('close', (code, signal) => {
        for (const sig of forwarded) process.off(sig, forward);
        if (relayIn) { process.stdin.unpipe(child.stdin!); process.stdin.pause(); }
        const status = code ?? 128 + signalNumber(signal);
        const failure = status === 0 ? null : executorFailure(opts.logFile);
        if (failure === null) return resolve(status);
        reject(new HutchError(/executable file not found|no such file or directory/.test(failure) && /exec/.test(failure) ? 'ENOEXEC' : 'EEXEC', failure, { id }));
      });
    });
    return { done };
  }

  /** `checkpoint --image-path DIR ID`: the container's state saved to DIR; it stops (runsc, runc with CRIU). */
  async checkpoint(id: string, imageDir: string): Promise<void> {
    await this.call(['checkpoint', '--image-path', imageDir, id], { id });
  }

  /** `restore --detach --image-path DIR --bundle B ID`: a new container from a checkpoint, running. */
  async restore(id: string, bundle: string, imageDir: string, opts: ExecutorSpawnOptions): Promise<void> {
    const args = ['restore', '--detach', '--image-path', imageDir, '--bundle', bundle];
    if (opts.pidFile) args.push('--pid-file', opts.pidFile);
    await this.call([...this.bundleArgs(bundle), ...args, id], { id, stdio: opts.stdio });
  }

  private bundleArgs(bundle: string): string[] {
    return this.config.bundleArgs?.(bundle) ?? [];
  }

  /** `start ID` (runsc sets the sandbox's network up at start: it gets the bundle's flags too). */
  async start(id: string, bundle?: string): Promise<void> { await this.call([...(bundle ? this.bundleArgs(bundle) : []), 'start', id], { id }); }

  /** `kill [--all] ID SIGNAL`. */
  async kill(id: string, signal: string, all = false): Promise<void> {
    await this.call(all ? ['kill', '--all', id, signal] : ['kill', id, signal], { id });
  }

  /** `delete [--force] ID`; a container the executor does not know is not an error. */
  async delete(id: string, force = false): Promise<void> {
    try {
      await this.call(force ? ['delete', '--force', id] : ['delete', id], { id });
    } catch (e) {
      if (isHutchError(e) && /does not exist|not found|no such/i.test(e.message)) return;
      throw e;
    }
  }

  /** `pause ID` (cgroup freezer). */
  async pause(id: string): Promise<void> { await this.call(['pause', id], { id }); }

  /** `resume ID`. */
  async resume(id: string): Promise<void> { await this.call(['resume', id], { id }); }

  /** `state ID`, or null when the executor does not know the container. */
  async state(id: string): Promise<ExecutorState | null> {
    let out: string;
    try {
      out = await this.call(['state', id], { id });
    } catch (e) {
      if (isHutchError(e) && /does not exist|not found|no such/i.test(e.message)) return null;
      throw e;
    }
    const s = JSON.parse(out) as ExecutorState;
    return s;
  }

  /**
   * Whether the executor keeps state of container `id`: runc and crun a dir `<state>/<id>`,
   * runsc a file `<state>/<id>_sandbox:<id>.state` (a root container is its own sandbox).
   */
  knows(id: string): boolean {
    return fs.existsSync(this.statePath(id));
  }

  private statePath(id: string): string {
    return this.config.name === 'runsc' ? `${this.config.stateDir}/${id}_sandbox:${id}.state` : `${this.config.stateDir}/${id}`;
  }

  /**
   * Whether the init of a created container was started, from the executor's files (no process
   * started: ls asks for every sandbox); null when the executor does not know it.
   */
  initStarted(id: string): boolean | null {
    if (this.config.name !== 'runsc') {
      // runc and crun keep an exec fifo in their state dir from create until start opens it.
      if (!this.knows(id)) return null;
      return !fs.existsSync(`${this.statePath(id)}/exec.fifo`);
    }
    const status = this.recordedStatus(id);
    return status === null ? null : status !== 'created';
  }

  /** The status runsc wrote in its state file (runsc only; runc's is derived from the process, not stored); null when unknown. */
  recordedStatus(id: string): string | null {
    if (this.config.name !== 'runsc') return null;
    try {
      const status = (JSON.parse(fs.readFileSync(this.statePath(id), 'utf8')) as { status?: unknown }).status;
      return typeof status === 'string' ? status : null;
    } catch {
      return null; // none, or being rewritten: unknown
    }
  }

  /** The executor's version line. */
  async version(): Promise<string> {
    const out = await this.call(['--version'], {});
    return out.split('\n')[0] ?? '';
  }

  /** The program and arguments that run `verbArgs` with `extraGlobals` (e.g. --log) before the executor's own global flags. */
  argv(verbArgs: string[], extraGlobals: string[] = []): { file: string; args: string[] } {
    const [file, ...pre] = this.config.command;
    return { file: file!, args: [...pre, ...extraGlobals, ...this.config.globalArgs, ...verbArgs] };
  }

  /** The words that run the executor, and its own global flags (the caller's go between the two). */
  commandParts(): { command: string[]; globals: string[] } {
    return { command: [...this.config.command], globals: [...this.config.globalArgs] };
  }

  /** Starts the executor (through its launcher, if any) with `args`. */
  private spawn(args: string[], opts: SpawnOptions): ChildProcess {
    const [file, ...pre] = this.config.command;
    return spawn(file!, [...pre, ...args], opts);
  }

  /** Runs the executor to completion; its stderr becomes a one-line HutchError on failure. */
  private call(args: string[], opts: { id?: string; stdio?: StdioOptions }): Promise<string> {
    const full = args[0] === '--version' ? args : [...this.config.globalArgs, ...args];
    return new Promise((resolve, reject) => {
      const stdio: StdioOptions = opts.stdio ?? ['ignore', 'pipe', 'pipe'];
      const child = this.spawn(full, { stdio });
      let out = '';
      let err = '';
      child.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
      child.stderr?.on('data', (d: Buffer) => { if (err.length < 65536) err += d.toString(); });
      child.on('error', (e) => reject(new HutchError('EEXEC', `cannot run ${this.config.binary}: ${e.message}`, { path: this.config.binary, cause: e })));
      child.on('close', (code, signal) => {
        if (code === 0) return resolve(out);
        // Killed by a signal: say so first (its stderr, if any, was cut short by it).
        const why = signal ? `killed by ${signal}` : lastErrorLine(err) || `exit code ${code}`;
        reject(new HutchError('EEXEC', `${this.name} ${args[0]} failed: ${why}`, opts.id === undefined ? {} : { id: opts.id }));
      });
    });
  }
}

/** The useful part of runc/crun's stderr: the last non-empty line, without logrus decoration. */
export function lastErrorLine(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter(Boolean);
  const last = lines[lines.length - 1] ?? '';
  const m = /msg="((?:[^"\\]|\\.)*)"/.exec(last);
  return (m ? m[1]!.replace(/\\"/g, '"') : last).replace(/^(time=\S+ level=\S+ )/, '');
}

/** The error runc logged (JSON log lines) when it failed to run a container, made readable; null if none. */
export function executorFailure(logFile: string): string | null {
  let text: string;
  try {
    text = fs.readFileSync(logFile, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  let msg: string | null = null;
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const entry = JSON.parse(line) as { level?: string; msg?: string };
      if ((entry.level === 'error' || entry.level === 'fatal') && typeof entry.msg === 'string') msg = entry.msg;
    } catch {
      continue; // a torn line: runc was killed while writing it
    }
  }
  if (msg === null) return null;
  return msg.replace(/^((runc|crun) )?(run|create|exec) failed: /, '').replace(/^unable to start container process: /, '').replace(/^exec: /, '').slice(0, 500);
}

/** Reads a pid file that an executor wrote; null if it is missing. */
export function readPidFile(file: string): number | null {
  try {
    const n = Number.parseInt(fs.readFileSync(file, 'utf8').trim(), 10);
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

function signalNumber(signal: NodeJS.Signals | null): number {
  return signal ? (os.constants.signals[signal] ?? 0) : 0;
}

/** True when the bundle's spec joins a network namespace by path. */
export function joinsNetns(bundle: string): boolean {
  try {
    const spec = JSON.parse(fs.readFileSync(`${bundle}/config.json`, 'utf8')) as { linux?: { namespaces?: { type: string; path?: string }[] } };
    return spec.linux?.namespaces?.some((n) => n.type === 'network' && typeof n.path === 'string' && n.path !== '') === true;
  } catch {
    return false; // no readable spec: the executor's own error says so
  }
}

/** Chooses the executor: runc by default, crun when asked (it needs cgroups off on hybrid hosts). */
export function makeExecutor(name: string, stateRoot: string, cgroupMode: 'v1' | 'v2' | 'hybrid'): OciExecutor {
  if (name === 'runc') return new OciExecutor({ name: 'runc', binary: 'runc', command: ['runc'], stateDir: `${stateRoot}/runc`, globalArgs: ['--root', `${stateRoot}/runc`] });
  if (name === 'crun') {
    // crun 1.8 refuses a hybrid host whose cgroup2 hierarchy holds any controller (here: hugetlb),
    // whatever its cgroup manager. Seen from a private mount namespace without that hierarchy the
    // host is plain v1, which crun drives fine, limits included.
    const command = cgroupMode === 'hybrid'
      ? ['unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', 'umount -l /sys/fs/cgroup/unified 2>/dev/null; exec crun "$@"', 'crun']
      : ['crun'];
    return new OciExecutor({ name: 'crun', binary: 'crun', command, stateDir: `${stateRoot}/crun`, globalArgs: ['--root', `${stateRoot}/crun`] });
  }
  if (name === 'runsc') {
    // gVisor (docs/gvisor.md): the ptrace platform is the one that works on this kind of host
    // ($HUTCH_GVISOR_PLATFORM overrides); sockets the sandbox binds in its run dir must reach the
    // host (the agent's); its network is the sandbox's own netns with loopback only.
    const platform = process.env.HUTCH_GVISOR_PLATFORM ?? 'ptrace';
    const globalArgs = ['--root', `${stateRoot}/runsc`, `--platform=${platform}`, '--network=none', '--host-uds=all'];
    // A sandbox on a network of src/net joins the netns made for it. runsc's own netstack
    // (--network=sandbox) cannot take it over here: this release's root-netns check fails on every
    // netns of a recent kernel. So the sentry's sockets are the host kernel's, in that netns, where
    // hutch's nftables rules hold (docs/gvisor.md); $HUTCH_GVISOR_NETWORK=sandbox picks the netstack.
    const netMode = process.env.HUTCH_GVISOR_NETWORK ?? 'host';
    const bundleArgs = (bundle: string) => (joinsNetns(bundle) ? [`--network=${netMode}`] : []);
    return new OciExecutor({ name: 'runsc', binary: 'runsc', command: ['runsc'], stateDir: `${stateRoot}/runsc`, globalArgs, bundleArgs });
  }
  throw new HutchError('EINVAL', `unknown executor "${name}" (want runc, crun or runsc)`);
}
