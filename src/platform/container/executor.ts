// The OCI executor: one interface over runc-compatible binaries (runc, crun; runsc and
// kata-runtime later), driven through their command line.
import { spawn, type StdioOptions } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { HutchError } from '../../errors.js';

/** What `<executor> state ID` reports. */
export interface ExecutorState { id: string; pid: number; status: 'created' | 'running' | 'paused' | 'stopped' | 'creating'; bundle: string }

/** Options for starting a container process. */
export interface ExecutorSpawnOptions { stdio: StdioOptions; pidFile?: string; detach?: boolean }

/** How an executor binary is run. */
export interface ExecutorConfig { name: 'runc' | 'crun' | 'runsc' | 'kata-runtime'; binary: string; stateDir: string; globalArgs: string[] }

/** A runc-compatible OCI executor. */
export class OciExecutor {
  constructor(readonly config: ExecutorConfig) {}

  get name(): string { return this.config.name; }

  /** `create --bundle B ID`: the init process is made but waits for `start`. */
  async create(id: string, bundle: string, opts: ExecutorSpawnOptions): Promise<void> {
    const args = ['create', '--bundle', bundle];
    if (opts.pidFile) args.push('--pid-file', opts.pidFile);
    await this.call([...args, id], { id, stdio: opts.stdio });
  }

  /** `run -d --bundle B ID`: create and start in one call, detached. */
  async runDetached(id: string, bundle: string, opts: ExecutorSpawnOptions): Promise<void> {
    const args = ['run', '--detach', '--bundle', bundle];
    if (opts.pidFile) args.push('--pid-file', opts.pidFile);
    await this.call([...args, id], { id, stdio: opts.stdio });
  }

  /** `run --bundle B ID` in the foreground with the caller's stdio; resolves to the exit status. */
  runForeground(id: string, bundle: string, stdio: StdioOptions, pidFile?: string): { pid: number | undefined; done: Promise<number> } {
    const args = [...this.config.globalArgs, 'run', '--bundle', bundle];
    if (pidFile) args.push('--pid-file', pidFile);
    const child = spawn(this.config.binary, [...args, id], { stdio });
    const done = new Promise<number>((resolve, reject) => {
      child.on('error', (e) => reject(new HutchError('EEXEC', `${this.name} run ${id}: ${e.message}`, { id, cause: e })));
      child.on('exit', (code, signal) => resolve(code ?? 128 + signalNumber(signal)));
    });
    return { pid: child.pid, done };
  }

  /** `start ID`. */
  async start(id: string): Promise<void> { await this.call(['start', id], { id }); }

  /** `kill [--all] ID SIGNAL`. */
  async kill(id: string, signal: string, all = false): Promise<void> {
    await this.call(all ? ['kill', '--all', id, signal] : ['kill', id, signal], { id });
  }

  /** `delete [--force] ID`; a container the executor does not know is not an error. */
  async delete(id: string, force = false): Promise<void> {
    try {
      await this.call(force ? ['delete', '--force', id] : ['delete', id], { id });
    } catch (e) {
      if (e instanceof HutchError && /does not exist|not found|no such/i.test(e.message)) return;
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
      if (e instanceof HutchError && /does not exist|not found|no such/i.test(e.message)) return null;
      throw e;
    }
    const s = JSON.parse(out) as ExecutorState;
    return s;
  }

  /** `exec --process FILE ID` with the given stdio; resolves to the exit status. */
  exec(id: string, processFile: string, stdio: StdioOptions, extra: string[] = []): { pid: number | undefined; done: Promise<number> } {
    const child = spawn(this.config.binary, [...this.config.globalArgs, 'exec', '--process', processFile, ...extra, id], { stdio });
    const done = new Promise<number>((resolve, reject) => {
      child.on('error', (e) => reject(new HutchError('EEXEC', `${this.name} exec ${id}: ${e.message}`, { id, cause: e })));
      child.on('exit', (code, signal) => resolve(code ?? 128 + signalNumber(signal)));
    });
    return { pid: child.pid, done };
  }

  /** The executor's version line. */
  async version(): Promise<string> {
    const out = await this.call(['--version'], {});
    return out.split('\n')[0] ?? '';
  }

  /** Runs the executor to completion; its stderr becomes a one-line HutchError on failure. */
  private call(args: string[], opts: { id?: string; stdio?: StdioOptions }): Promise<string> {
    const full = args[0] === '--version' ? args : [...this.config.globalArgs, ...args];
    return new Promise((resolve, reject) => {
      const stdio: StdioOptions = opts.stdio ?? ['ignore', 'pipe', 'pipe'];
      const child = spawn(this.config.binary, full, { stdio });
      let out = '';
      let err = '';
      child.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
      child.stderr?.on('data', (d: Buffer) => { if (err.length < 65536) err += d.toString(); });
      child.on('error', (e) => reject(new HutchError('EEXEC', `cannot run ${this.config.binary}: ${e.message}`, { path: this.config.binary, cause: e })));
      child.on('close', (code) => {
        if (code === 0) return resolve(out);
        reject(new HutchError('EEXEC', `${this.name} ${args[0]} failed: ${lastErrorLine(err) || `exit code ${code}`}`, opts.id === undefined ? {} : { id: opts.id }));
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

/** Chooses the executor: runc by default, crun when asked (it needs cgroups off on hybrid hosts). */
export function makeExecutor(name: string, stateRoot: string, cgroupMode: 'v1' | 'v2' | 'hybrid'): OciExecutor {
  if (name === 'runc') return new OciExecutor({ name: 'runc', binary: 'runc', stateDir: `${stateRoot}/runc`, globalArgs: ['--root', `${stateRoot}/runc`] });
  if (name === 'crun') {
    const globalArgs = ['--root', `${stateRoot}/crun`];
    if (cgroupMode === 'hybrid') globalArgs.push('--cgroup-manager=disabled');
    return new OciExecutor({ name: 'crun', binary: 'crun', stateDir: `${stateRoot}/crun`, globalArgs });
  }
  throw new HutchError('EINVAL', `unknown executor "${name}" (want runc or crun)`);
}
