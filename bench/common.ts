// Shared pieces of the benchmarks: statistics, timed child processes, tables, a private state root
// that is swept clean at the end (also after an error or Ctrl-C), and a leak check.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { AgentClient } from '../src/agent/index.js';
import { Engine } from '../src/engine/index.js';
import { listCgroupChildren, removeCgroup, removeTreeSafely } from '../src/linux/index.js';

/** hutch's install dir: bench code runs from dist/bench/. */
export const INSTALL_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** The bundled CLI that `hutch` on the PATH runs: package.json's bin, so a change of bundle name follows. */
export const HUTCH_CLI = cliPath();

function cliPath(): string {
  const pkg = JSON.parse(fs.readFileSync(path.join(INSTALL_DIR, 'package.json'), 'utf8')) as { bin?: string | Record<string, string> };
  const bin = typeof pkg.bin === 'string' ? pkg.bin : pkg.bin?.['hutch'];
  return path.join(INSTALL_DIR, bin ?? 'dist/bundle/hutch.cjs');
}
/** The embedded busybox rootfs that `busybox` names. */
export const BUSYBOX_ROOTFS = path.join(process.env.HUTCH_DATA_ROOT ?? '/var/lib/hutch', 'rootfs/busybox');

/** Percentiles and mean of a sample, in the sample's unit. */
export interface Summary { n: number; p50: number; p90: number; p99: number; mean: number; min: number; max: number }

/** Nearest-rank percentiles (no interpolation: every figure is a measured value). */
export function summarize(samples: number[]): Summary {
  if (samples.length === 0) throw new Error('summarize: no samples');
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
  return { n: s.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), mean: s.reduce((a, b) => a + b, 0) / s.length, min: s[0]!, max: s[s.length - 1]! };
}

/** Milliseconds with one decimal. */
export function ms(v: number): string {
  return v.toFixed(1);
}

/** Prints a markdown table (so that figures can go straight into docs/benchmarks.md). */
export function printTable(header: string[], rows: (string | number)[][]): void {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => `| ${r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  console.log(line(header));
  console.log(`|${widths.map((w, i) => (i === 0 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`);
  for (const r of cells.slice(1)) console.log(line(r));
}

/** A row of timing figures for printTable: name, n, p50, p90, (p99,) mean. */
export function timingRow(name: string, s: Summary, withP99 = false): string[] {
  return [name, String(s.n), ms(s.p50), ms(s.p90), ...(withP99 ? [ms(s.p99)] : []), ms(s.mean)];
}

/** Prints one target check; a missed target is reported, not thrown (the script still exits 0). */
export function verdict(what: string, ok: boolean, detail: string): void {
  console.log(`${ok ? 'PASS' : 'FAIL'}  ${what}: ${detail}`);
}

/** The machine the figures come from. */
export function machineLine(): string {
  const osRelease = fs.readFileSync('/etc/os-release', 'utf8');
  const distro = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(osRelease)?.[1] ?? 'unknown distro';
  const runc = spawnSync('runc', ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0] ?? 'runc ?';
  const sha = spawnSync('git', ['-C', INSTALL_DIR, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).stdout.trim() || '?';
  const dirty = spawnSync('git', ['-C', INSTALL_DIR, 'status', '--porcelain', '--', 'src', 'scripts'], { encoding: 'utf8' }).stdout.trim() ? '+uncommitted src' : '';
  return `${new Date().toISOString()} | hutch ${sha}${dirty} | ${distro} | kernel ${os.release()} | ${os.cpus().length} cpus (${os.cpus()[0]?.model ?? '?'}) | ` +
    `${Math.round(os.totalmem() / 2 ** 30)} GiB | node ${process.version} | ${runc}`;
}

/** Integer option `--name N` from the command line, or its default. */
export function intOption(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v <= 0) throw new Error(`--${name} needs a positive integer`);
  return v;
}

/**
 * Variables that change how long node takes to start: NODE_EXTRA_CA_CERTS makes node 20 read and parse the
 * whole CA bundle before running any code (~40 ms here). The `hutch` launcher unsets it, so by default every
 * child (hutch, the node floor, runc) runs without them; `--inherit-node-env` keeps them.
 */
const NODE_START_VARS = ['NODE_EXTRA_CA_CERTS', 'NODE_OPTIONS'];
const cleanNodeEnv = !process.argv.includes('--inherit-node-env');
const childEnv: NodeJS.ProcessEnv = cleanNodeEnv
  ? Object.fromEntries(Object.entries(process.env).filter(([k]) => !NODE_START_VARS.includes(k)))
  : process.env;

/** Sets a variable in every child's environment (e.g. HUTCH_IMAGE_ROOT for a private image store). */
export function setChildEnv(name: string, value: string): void {
  childEnv[name] = value;
}

/** What the children's environment holds of the variables that slow node's start-up. */
export function nodeEnvLine(): string {
  const set = NODE_START_VARS.filter((k) => process.env[k] !== undefined);
  if (set.length === 0) return 'node start-up variables: none set';
  return `node start-up variables: ${set.map((k) => `${k}=${process.env[k]}`).join(' ')} (${cleanNodeEnv ? 'dropped from children, as the hutch launcher does; --inherit-node-env keeps them' : 'inherited by children (--inherit-node-env)'})`;
}

/**
 * A command a benchmark times as a whole process. With `logFile`, its stdout and stderr go to that file:
 * needed when it leaves a process behind that inherits them (runc create), which would hold our pipes open.
 */
export interface Cmd { file: string; args: string[]; logFile?: string }

/** `node -e 0`: the floor that every invocation of the CLI pays. */
export const NODE_FLOOR: Cmd = { file: process.execPath, args: ['-e', '0'] };

/** The hutch CLI with a state root. */
export function hutchCmd(root: string, args: string[]): Cmd {
  return { file: process.execPath, args: [HUTCH_CLI, '--root', root, ...args] };
}

/**
 * Runs a command to completion and returns its wall time in ms (spawn to exit) and its stdout; a non-zero
 * exit is an error. Children get their own session, so that Ctrl-C reaches only the benchmark, which then
 * stops after the current step and cleans up.
 */
export function timeCommand(cmd: Cmd): Promise<{ ms: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const log = cmd.logFile === undefined ? undefined : fs.openSync(cmd.logFile, 'a', 0o600);
    const t0 = performance.now();
    const child = spawn(cmd.file, cmd.args, { stdio: ['ignore', log ?? 'pipe', log ?? 'pipe'], detached: true, env: childEnv });
    if (log !== undefined) fs.closeSync(log);
    let t1 = 0;
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr?.on('data', (d: Buffer) => { if (stderr.length < 8192) stderr += d.toString(); });
    child.on('error', reject);
    child.on('exit', () => { t1 = performance.now(); });
    child.on('close', (code, signal) => {
      if (code === 0) return resolve({ ms: t1 - t0, stdout });
      if (cmd.logFile !== undefined) stderr = readTail(cmd.logFile);
      reject(new Error(`${path.basename(cmd.file)} ${cmd.args.join(' ')} exited ${code ?? signal}: ${stderr.trim().slice(0, 800)}`));
    });
  });
}

/** Runs a command to completion in its own session (so Ctrl-C cannot kill it halfway); resolves to its status. */
export function runQuiet(cmd: Cmd): Promise<{ status: number | string; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd.file, cmd.args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: childEnv });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { if (stderr.length < 8192) stderr += d.toString(); });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ status: code ?? signal ?? 'unknown', stdout, stderr }));
  });
}

function readTail(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').slice(-800);
  } catch {
    return ''; // nothing logged
  }
}

/** Runs every variant `n` times, interleaved in a rotating order so that all share the machine's noise. */
export async function interleave(n: number, variants: { name: string; once: () => Promise<number> }[]): Promise<Map<string, number[]>> {
  const out = new Map(variants.map((v) => [v.name, [] as number[]]));
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < variants.length; k++) {
      checkInterrupted();
      const v = variants[(i + k) % variants.length]!;
      out.get(v.name)!.push(await v.once());
    }
  }
  return out;
}

let interrupted: NodeJS.Signals | null = null;

/** Throws once Ctrl-C (or SIGTERM) came: the loops check between steps, so cleanup never races a step. */
export function checkInterrupted(): void {
  if (interrupted) throw new Error(`interrupted by ${interrupted}`);
}

/** A private state root with everything the benchmark makes in it; `tag` names the runc peers' cgroups. */
export interface BenchRoot { root: string; tag: string }

const cleanups: (() => Promise<void> | void)[] = [];

/** Registers a cleanup step; steps run last-registered first, at the end of the run whatever happened. */
export function onCleanup(fn: () => Promise<void> | void): void {
  cleanups.push(fn);
}

/** String option `--name VALUE` from the command line, or its default. */
export function stringOption(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = process.argv[i + 1];
  if (v === undefined || v.startsWith('--')) throw new Error(`--${name} needs a value`);
  return v;
}

/**
 * Makes `/run/hutch-bench-<rand>` and registers its sweep. `--state-parent DIR` puts it elsewhere, e.g. on
 * a tmpfs (/dev/shm) when /run is on disk, to show what the state root's filesystem costs.
 */
export function makeBenchRoot(): BenchRoot {
  const tag = `hutch-bench-${randomBytes(3).toString('hex')}`;
  const parent = stringOption('state-parent', '/run');
  if (!path.isAbsolute(parent) || !fs.statSync(parent).isDirectory()) throw new Error(`--state-parent ${parent}: not an absolute dir`);
  const root = path.join(fs.realpathSync(parent), tag);
  fs.mkdirSync(root, { mode: 0o711 });
  const br = { root, tag };
  onCleanup(() => sweepRoot(br));
  const fsType = spawnSync('stat', ['-f', '-c', '%T', root], { encoding: 'utf8' }).stdout.trim();
  console.log(`state root ${root} (${fsType || 'unknown fs'})`);
  return br;
}

/** Removes every sandbox under the root, every runc peer container and cgroup, every mount, then the dir. */
export async function sweepRoot(br: BenchRoot): Promise<void> {
  const errors: string[] = [];
  const attempt = async (what: string, fn: () => Promise<unknown> | unknown) => {
    try { await fn(); } catch (e) { errors.push(`${what}: ${e instanceof Error ? e.message : String(e)}`); }
  };
  const engine = new Engine({ root: br.root });
  await attempt('list sandboxes', async () => {
    for (const s of await engine.list()) await attempt(`remove sandbox ${s.id}`, () => engine.remove(s.id, true));
  });
  const peerRunc = path.join(br.root, 'peer', 'runc');
  if (fs.existsSync(peerRunc)) {
    const ids = (await runQuiet({ file: 'runc', args: ['--root', peerRunc, 'list', '-q'] })).stdout.split('\n').filter(Boolean);
    for (const id of ids) {
      await attempt(`runc delete ${id}`, async () => {
        const r = await runQuiet({ file: 'runc', args: ['--root', peerRunc, 'delete', '--force', id] });
        if (r.status !== 0) throw new Error(`exited ${r.status}: ${r.stderr.trim()}`);
      });
    }
  }
  for (const cg of listCgroupChildren('/').filter((n) => n.startsWith(br.tag))) await attempt(`cgroup ${cg}`, () => removeCgroup(`/${cg}`));
  await attempt(`remove ${br.root}`, () => removeTreeSafely(br.root));
  const left = leftovers(br);
  if (left.length) errors.push(`left behind: ${left.join('; ')}`);
  if (errors.length) throw new Error(`cleanup of ${br.root} failed: ${errors.join(' | ')}`);
}

/** Mounts, cgroups, processes and dirs of this run still on the machine. */
export function leftovers(br: BenchRoot): string[] {
  const out: string[] = [];
  const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(br.root));
  if (mounts.length) out.push(`${mounts.length} mounts`);
  const cgroups = listCgroupChildren('/').filter((n) => n.startsWith(br.tag));
  if (cgroups.length) out.push(`cgroups ${cgroups.join(' ')}`);
  const procs = spawnSync('pgrep', ['-f', br.root], { encoding: 'utf8' }).stdout.trim();
  if (procs) out.push(`processes ${procs.replace(/\n/g, ' ')}`);
  if (fs.existsSync(br.root)) out.push(`dir ${br.root}`);
  return out;
}

/**
 * Runs a benchmark's main: cleanups run at the end, after an error, and after Ctrl-C/SIGTERM (the first
 * signal lets the current step finish; a second one cleans up at once). Exits non-zero on any error.
 */
export function runBench(title: string, main: () => Promise<void>): void {
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) void finish(130, new Error(`second ${sig}`));
    interrupted = sig;
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let finishing = false;
  const finish = async (code: number, error?: unknown) => {
    if (finishing) return;
    finishing = true;
    if (error) console.error(`${title}: ${error instanceof Error ? error.message : String(error)}`);
    for (const fn of cleanups.reverse()) {
      try {
        await fn();
      } catch (e) {
        console.error(`${title}: ${e instanceof Error ? e.message : String(e)}`);
        code = code || 1;
      }
    }
    process.exit(interrupted && code === 0 ? 130 : code);
  };
  // Node exits (status 0) when nothing is left to wait for, even with main still pending: that is a bug
  // here (a promise that never settles), and it must not skip the cleanup or pass as success.
  process.on('beforeExit', () => { if (!finishing) void finish(1, new Error('the benchmark stopped waiting on nothing (a promise never settled)')); });
  console.log(`# ${title}\n${machineLine()}\n${nodeEnvLine()}\n`);
  main().then(() => finish(0), (e: unknown) => finish(interrupted ? 130 : 1, e));
}

/** Waits for the agent's socket and a ping, polling as hutch's platform does (1 ms, doubling to 20 ms). */
export async function waitForAgent(socket: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 1; Date.now() < deadline; delay = Math.min(delay * 2, 20)) {
    if (fs.existsSync(socket)) {
      try {
        const client = await AgentClient.connectSocket(socket, { timeoutMs: 1000 });
        await client.ping();
        client.close();
        return;
      } catch {
        // not listening yet: poll again
      }
    }
    await sleep(delay);
  }
  throw new Error(`no agent answered on ${socket} within ${timeoutMs} ms`);
}
