// Test helpers: run the real `hutch` CLI against a private state root, and check for leftovers.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { suiteRun } from './suite-run.js';

export { hutchCgroups } from './host-scan.js';

/** The built CLI. */
export const HUTCH = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../bundle/hutch.cjs');

/** A fresh state root for one test file (under /run, like the default). */
export function makeRoot(tag: string): string {
  const root = `/run/hutch-test-${tag}-${randomBytes(3).toString('hex')}`;
  fs.mkdirSync(root, { recursive: true });
  suiteRun().recordRoot(root);
  return root;
}

/** The platforms the platform-independent suites run on; one that cannot run here says why (and is skipped). */
export function testPlatforms(): { name: string; skip?: string }[] {
  const wanted = (process.env.HUTCH_TEST_PLATFORMS ?? 'container,gvisor').split(',').filter(Boolean);
  const runsc = spawnSync('runsc', ['--version'], { stdio: 'ignore' }).status === 0;
  return wanted.map((name) => (name === 'gvisor' && !runsc ? { name, skip: 'runsc is not installed (scripts/setup.sh installs Debian\'s runsc)' } : { name }));
}

const rootEnvs = new Map<string, NodeJS.ProcessEnv>();

/** A fresh state root whose hutch calls make sandboxes on `platform` ($HUTCH_PLATFORM). */
export function platformRoot(tag: string, platform: string): string {
  const root = makeRoot(`${tag}-${platform}`);
  rootEnvs.set(root, { HUTCH_PLATFORM: platform });
  return root;
}

/** The environment a hutch call against `root` gets (its platform's). */
export function rootEnv(root: string): NodeJS.ProcessEnv {
  return { ...process.env, ...(rootEnvs.get(root) ?? {}) };
}

/** What a finished command gave. */
export interface Result { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

/** Runs hutch with `args` against `root`, to completion. */
export function hutch(root: string, args: string[], opts: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [HUTCH, '--root', root, ...args], {
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      env: { ...rootEnv(root), ...(opts.env ?? {}) },
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`hutch ${args.join(' ')} timed out; stderr: ${stderr}`)); }, opts.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, stdout, stderr }); });
  });
}

/** Runs hutch and insists on exit code 0; returns stdout. */
export async function hutchOk(root: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  const r = await hutch(root, args, opts);
  if (r.code !== 0) throw new Error(`hutch ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** Removes every sandbox under `root` (rm -f) and then the root itself; fails if anything stays. */
export async function cleanRoot(root: string): Promise<void> {
  const ids = (await hutch(root, ['ls', '-q'])).stdout.split('\n').filter(Boolean);
  if (ids.length) await hutchOk(root, ['rm', '-f', ...ids]);
  const left = fs.existsSync(path.join(root, 'sandboxes')) ? fs.readdirSync(path.join(root, 'sandboxes')) : [];
  if (left.length) throw new Error(`sandbox dirs left in ${root}: ${left.join(' ')}`);
  fs.rmSync(root, { recursive: true, force: true });
}

/** Things of hutch's still on the machine: mounts, cgroups, processes of a state root. */
export function leftovers(root: string): string[] {
  const out: string[] = [];
  const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(root));
  if (mounts.length) out.push(`mounts: ${mounts.length}`);
  const ps = spawnSync('pgrep', ['-f', root], { encoding: 'utf8' }).stdout.trim();
  if (ps) out.push(`processes: ${ps.replace(/\n/g, ' ')}`);
  return out;
}

/**
 * Runs every clean-up step in order, each even when an earlier one failed, then throws the first
 * failure. For after hooks: a failed check or a root that would not clean must not leave the
 * registry or daemon of a later step running.
 */
export async function cleanUpAll(...steps: (() => unknown)[]): Promise<void> {
  const failures: unknown[] = [];
  for (const step of steps) {
    try {
      await step();
    } catch (e) {
      failures.push(e);
    }
  }
  if (failures.length === 1) throw failures[0];
  if (failures.length > 1) throw new AggregateError(failures, `${failures.length} clean-up steps failed: ${failures.map((e) => (e as Error).message).join('; ')}`);
}
