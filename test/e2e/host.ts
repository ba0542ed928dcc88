// Host-side helpers for the client e2e tests: run a program, start and stop a daemon, and find or
// remove what a client left on the machine (mounts, processes, cgroup trees, paths it made).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { endWithThisProcess, suiteRun } from '../suite-run.js'; // also marks what this file starts as this run's

/** What a finished command gave. */
export interface Outcome { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; ms: number }

/**
 * Runs `file args` to completion (stdin closed unless `input`), killing it after `timeoutMs`.
 * `untilExit` resolves when the program exits rather than when its pipes close: `runc create`
 * leaves the container's init holding the stdio it was given.
 */
export function runProgram(file: string, args: string[], opts: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv; untilExit?: boolean; cwd?: string } = {}): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(file, args, { stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], env: opts.env ?? process.env, ...(opts.cwd ? { cwd: opts.cwd } : {}) });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${path.basename(file)} ${args.join(' ')} timed out after ${opts.timeoutMs ?? 60_000} ms; stderr: ${stderr.trim()}`));
    }, opts.timeoutMs ?? 60_000);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on(opts.untilExit ? 'exit' : 'close', (code, signal) => {
      clearTimeout(timer);
      const ms = performance.now() - started;
      // After 'exit', give the pipes one turn to deliver what the program wrote before it exited.
      const finish = () => {
        if (opts.untilExit) { child.stdout!.destroy(); child.stderr!.destroy(); }
        resolve({ code, signal, stdout, stderr, ms });
      };
      if (opts.untilExit) setTimeout(finish, 20); else finish();
    });
  });
}

/** Throws with the command line and its stderr unless `o` exited 0; returns stdout. */
export function expectSuccess(what: string, o: Outcome): string {
  if (o.code !== 0) throw new Error(`${what} exited ${o.code ?? o.signal}: ${o.stderr.trim() || o.stdout.trim()}`);
  return o.stdout;
}

/** A fresh dir /tmp/hutch-e2e-TAG-XXXXXX (the suite's last test checks that none is left). */
export function makeTempDir(tag: string): string {
  const dir = `/tmp/hutch-e2e-${tag}-${randomBytes(3).toString('hex')}`;
  fs.mkdirSync(dir, { recursive: true, mode: 0o711 });
  suiteRun().recordTemp(dir);
  return dir;
}

/** Mount points at or under `dir`. */
export function mountsUnder(dir: string): string[] {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')
    .map((l) => l.split(' ')[4] ?? '').filter((m) => m === dir || m.startsWith(`${dir}/`));
}

/** Unmounts everything at or under `dir`, deepest first (lazily, so a busy mount cannot stop cleanup). */
export function unmountUnder(dir: string): void {
  for (const m of mountsUnder(dir).sort((a, b) => b.length - a.length)) spawnSync('umount', ['-l', m]);
}

/** Kills (SIGKILL) the processes whose command line mentions `needle`; returns what they were. */
export function killProcessesMentioning(needle: string): string[] {
  const found = processesMentioning(needle);
  for (const l of found) { try { process.kill(Number(l.split(' ')[0]), 'SIGKILL'); } catch { /* gone already */ } }
  return found;
}

/**
 * Removes `dir` only when nothing is mounted under it any more: a recursive delete through a
 * live overlay or bind mount would delete what lies beneath. Returns the mounts that stopped it.
 */
export function removeDirSafely(dir: string): string[] {
  unmountUnder(dir);
  const left = mountsUnder(dir);
  if (left.length === 0) fs.rmSync(dir, { recursive: true, force: true });
  return left;
}

/** Processes whose command line mentions `needle` (pid and command), the caller's own excluded. */
export function processesMentioning(needle: string): string[] {
  const out = spawnSync('pgrep', ['-af', needle], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
  return out.filter((l) => !l.startsWith(`${process.pid} `) && !/^\d+ pgrep /.test(l));
}

/** Cgroup dirs named `name` at the top of any hierarchy (v1 controllers, the named systemd one, v2). */
export function cgroupTrees(name: string): string[] {
  const found: string[] = [];
  const base = '/sys/fs/cgroup';
  if (fs.existsSync(path.join(base, name))) found.push(path.join(base, name));
  for (const top of fs.readdirSync(base)) {
    const p = path.join(base, top, name);
    if (fs.existsSync(p)) found.push(p);
  }
  return found;
}

/** Kills (SIGKILL) every process in the cgroup trees named `name`; returns their pids. */
export function killCgroupTrees(name: string): number[] {
  const killed: number[] = [];
  const visit = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) visit(path.join(dir, e.name));
    let procs = '';
    try { procs = fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8'); } catch { return; }
    for (const pid of procs.split('\n').filter(Boolean).map(Number)) {
      try { process.kill(pid, 'SIGKILL'); killed.push(pid); } catch { /* gone already */ }
    }
  };
  for (const t of cgroupTrees(name)) visit(t);
  return killed;
}

/** Removes the cgroup trees named `name` (children first); returns those that would not go. */
export function removeCgroupTrees(name: string): string[] {
  const stuck: string[] = [];
  const removeTree = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeTree(path.join(dir, e.name));
    try { fs.rmdirSync(dir); } catch { stuck.push(dir); }
  };
  for (const t of cgroupTrees(name)) removeTree(t);
  return stuck;
}

/**
 * System paths that a client makes outside the dirs it is given (podman's blob-info cache, the
 * containerd shims' socket dir): remembered before a test file starts, removed after it if they
 * were not there before, so that a run leaves the machine as it found it.
 */
export class NewPathsGuard {
  private readonly existed: Map<string, boolean>;
  constructor(private readonly paths: string[]) {
    this.existed = new Map(paths.map((p) => [p, fs.existsSync(p)]));
  }
  /** Removes the paths that appeared since construction; returns them. */
  removeNew(): string[] {
    const removed: string[] = [];
    for (const p of this.paths) {
      if (!this.existed.get(p) && fs.existsSync(p)) { fs.rmSync(p, { recursive: true, force: true }); removed.push(p); }
    }
    return removed;
  }
}

/** A long-running program started by a test, with its output in a log file. */
export class Daemon {
  readonly child: ChildProcess;
  private exited: Promise<void>;
  private log = '';
  constructor(readonly name: string, file: string, args: string[], readonly logPath: string) {
    this.child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    endWithThisProcess(this.child); // a test that fails before stopping it must not hang on it
    const logFile = fs.createWriteStream(logPath);
    for (const s of [this.child.stdout!, this.child.stderr!]) s.on('data', (d: Buffer) => { this.log += d.toString(); logFile.write(d); });
    this.exited = new Promise((res) => this.child.once('exit', () => { logFile.end(); res(); }));
  }
  /** Waits until the daemon's output matches `re`; returns the match. */
  async waitForLog(re: RegExp, timeoutMs = 15_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.log.match(re);
      if (m) return m;
      if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(`${this.name} exited before ${re}: ${this.log.slice(-600)}`);
      if (Date.now() > deadline) throw new Error(`${this.name}: timed out waiting for ${re}: ${this.log.slice(-600)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
  async stop(graceMs = 5_000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

/** Polls `check` until it returns true or `timeoutMs` passes; returns the last answer. */
export async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs = 10_000, everyMs = 50): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The common end of a client's cleanup: kill and remove its cgroup trees, then its dir; what stayed. */
export async function sweepCgroupsAndDir(cgroupParent: string, dir: string): Promise<string[]> {
  const problems: string[] = [];
  const killed = killCgroupTrees(cgroupParent);
  if (killed.length) problems.push(`processes left in ${cgroupParent}: ${killed.join(' ')}`);
  await waitUntil(() => removeCgroupTrees(cgroupParent).length === 0, 5_000);
  const stuck = removeCgroupTrees(cgroupParent);
  if (stuck.length) problems.push(`cgroups that would not go: ${stuck.join(' ')}`);
  const mounts = mountsUnder(dir);
  if (mounts.length) problems.push(`mounts left: ${mounts.join(' ')}`);
  const busy = removeDirSafely(dir);
  if (busy.length) problems.push(`not removed, still mounted: ${busy.join(' ')}`);
  return problems;
}
