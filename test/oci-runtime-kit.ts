// Helpers for the OCI runtime tests: busybox bundles owned like a caller's (podman's), and the
// real CLI in OCI mode (`hutch --root R VERB ...`) with output captured.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { HUTCH } from './helpers.js';
import { specTemplate, type Spec } from '../src/oci/index.js';

/** What a finished call gave. */
export interface OciResult { code: number | null; stdout: string; stderr: string }

/** node's environment for the CLI: without NODE_EXTRA_CA_CERTS, as the hutch launcher runs it. */
function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  delete env.NODE_EXTRA_CA_CERTS;
  return env;
}

/**
 * Runs `hutch [globals] args` in OCI mode. With `files`, the container's stdio (which create and
 * run hand on to it) goes to files rather than pipes that would stay open while it lives.
 */
export function oci(root: string, args: string[], opts: { globals?: string[]; input?: string; files?: boolean; cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<OciResult> {
  const tmp = opts.files ? fs.mkdtempSync(path.join(os.tmpdir(), 'oci-io-')) : '';
  const outFd = opts.files ? fs.openSync(path.join(tmp, 'out'), 'w+') : -1;
  const errFd = opts.files ? fs.openSync(path.join(tmp, 'err'), 'w+') : -1;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [HUTCH, '--root', root, ...(opts.globals ?? []), ...args], {
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', opts.files ? outFd : 'pipe', opts.files ? errFd : 'pipe'],
      env: childEnv(opts.env), ...(opts.cwd ? { cwd: opts.cwd } : {}),
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`hutch ${args.join(' ')} timed out; stderr: ${stderr}`)); }, opts.timeoutMs ?? 30_000);
    child.on('error', reject);
    child.on('exit', (code) => {
      if (!opts.files) return;
      clearTimeout(timer);
      stdout = fs.readFileSync(path.join(tmp, 'out'), 'utf8');
      stderr = fs.readFileSync(path.join(tmp, 'err'), 'utf8');
      fs.closeSync(outFd);
      fs.closeSync(errFd);
      fs.rmSync(tmp, { recursive: true, force: true });
      resolve({ code, stdout, stderr });
    });
    child.on('close', (code) => { if (opts.files) return; clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

/** Runs an OCI call and insists on exit code 0; returns stdout. */
export async function ociOk(root: string, args: string[], opts: Parameters<typeof oci>[2] = {}): Promise<string> {
  const r = await oci(root, args, opts);
  if (r.code !== 0) throw new Error(`hutch ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

const APPLETS = ['sh', 'sleep', 'echo', 'cat', 'readlink', 'ls', 'hostname', 'true', 'false', 'id', 'pwd', 'env', 'ps', 'kill'];

/** A temp dir for a test file's bundles (removed by removeScratch). */
export function makeScratch(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'oci-runtime-'));
}

/** Removes a scratch dir. */
export function removeScratch(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

/**
 * A bundle `<scratch>/<name>` with a busybox rootfs (owned by root, as a caller's) and a
 * `runc spec`-like config.json without a user namespace, changed by `edit`.
 */
export function makeBundle(scratch: string, name: string, args: string[], edit: (spec: Spec) => void = () => {}): string {
  const bundle = path.join(scratch, name);
  const bin = path.join(bundle, 'rootfs', 'bin');
  fs.mkdirSync(bin, { recursive: true });
  for (const d of ['proc', 'sys', 'dev', 'tmp', 'etc']) fs.mkdirSync(path.join(bundle, 'rootfs', d), { recursive: true });
  fs.copyFileSync('/bin/busybox', path.join(bin, 'busybox'));
  fs.chmodSync(path.join(bin, 'busybox'), 0o755);
  for (const a of APPLETS) fs.symlinkSync('busybox', path.join(bin, a));
  const spec = specTemplate();
  spec.process!.terminal = false;
  spec.process!.args = args;
  spec.root!.readonly = false;
  edit(spec);
  fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(spec, null, 2));
  return bundle;
}

/** Deletes (forcefully) every container under `root`, then the root; returns what was still there. */
export async function cleanOciRoot(root: string): Promise<string[]> {
  const ids = fs.existsSync(root) ? fs.readdirSync(root).filter((n) => !n.startsWith('.')) : [];
  for (const id of ids) await oci(root, ['delete', '--force', id]);
  const left = fs.existsSync(root) ? fs.readdirSync(root).filter((n) => !n.startsWith('.')) : [];
  const executorLeft = spawnSync('runc', ['--root', path.join(root, '.executor', 'runc'), 'list', '-q'], { encoding: 'utf8' }).stdout.trim();
  fs.rmSync(root, { recursive: true, force: true });
  return [...left, ...(executorLeft ? [`executor: ${executorLeft}`] : [])];
}

/** A container id for this test run (the `hutch` prefix makes a leaked cgroup show in zz-leaks). */
export function containerId(tag: string): string {
  return `hutch-t-${tag}-${randomBytes(3).toString('hex')}`;
}

/** True when the root holds nothing of `id`: no dir, and the executor does not know it. */
export function noTrace(root: string, id: string): boolean {
  if (fs.existsSync(path.join(root, id))) return false;
  const r = spawnSync('runc', ['--root', path.join(root, '.executor', 'runc'), 'state', id], { encoding: 'utf8' });
  return r.status !== 0;
}
