// The agent runtime: the host's node binary and the libraries it links, laid out once per
// node version so that it can be bind-mounted read-only into any rootfs (busybox, musl, glibc).
import { installDir } from '../../install-dir.js';
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { HutchError, errnoCode } from '../../errors.js';
import { processAlive } from '../../linux/procs.js';

/** Fixed paths inside every sandbox. */
export const SANDBOX_HUTCH_DIR = '/.hutch';
export const SANDBOX_RUN_DIR = '/.hutch/run';
export const SANDBOX_LOADER = '/.hutch/lib/ld-linux-x86-64.so.2';
export const SANDBOX_NODE = '/.hutch/node';
export const SANDBOX_AGENT_MAIN = '/.hutch/app/bundle/agent.cjs';
/** run --init: where the init binary is mounted (on the sandbox's own /dev tmpfs: no rootfs needs a mount point). */
export const SANDBOX_INIT = '/dev/init';

/** Static inits a foreground run can use (catatonit: Debian's, as podman installs it). */
const INIT_BINARIES = ['/usr/bin/catatonit', '/usr/libexec/podman/catatonit'];

/** The host's catatonit, for run --init; a clear error when there is none. */
export function findInitBinary(): string {
  const found = INIT_BINARIES.find((p) => fs.existsSync(p));
  if (!found) throw new HutchError('EUNSUPPORTED', `run --init needs catatonit (looked for ${INIT_BINARIES.join(', ')}): apt-get install catatonit, or run scripts/setup.sh`);
  return found;
}

/** The npm packages the agent loads at run time (native addons), mounted under /.hutch/app/node_modules. */
export const AGENT_PACKAGES = ['koffi', `@koromix/koffi-${process.platform}-${process.arch}`, 'node-pty'];

/** Bumped whenever the runtime dir's layout changes, so that an old one is not reused. */
const RUNTIME_LAYOUT = 3;

/** The host-side layout of a prepared runtime. */
export { installDir };

export interface AgentRuntime { dir: string; installDir: string }

/** Returns the runtime for the running node binary under `dataRoot`, building it the first time. */
export function ensureAgentRuntime(dataRoot: string): AgentRuntime {
  const node = fs.realpathSync(process.execPath);
  const st = fs.statSync(node);
  const key = createHash('sha256').update(`${RUNTIME_LAYOUT}:${node}:${st.size}:${st.mtimeMs}:${st.ino}`).digest('hex').slice(0, 16);
  const dir = path.join(dataRoot, 'runtime', key);
  const runtime = { dir, installDir: installDir() };
  if (fs.existsSync(path.join(dir, '.complete'))) return runtime;
  const tmp = `${dir}.tmp-${process.pid}`;
  removeAbandonedBuilds(path.dirname(dir));
  // Empty dirs are the mount points of the read-only binds (the runtime itself is mounted read-only).
  for (const d of ['lib', 'app/bundle', 'run', ...AGENT_PACKAGES.map((p) => `app/node_modules/${p}`)]) fs.mkdirSync(path.join(tmp, d), { recursive: true, mode: 0o755 });
  linkOrCopy(node, path.join(tmp, 'node'));
  for (const lib of sharedLibraries(node)) linkOrCopy(lib.file, path.join(tmp, 'lib', lib.name));
  fs.writeFileSync(path.join(tmp, '.complete'), '');
  try {
    fs.renameSync(tmp, dir);
  } catch (e) {
    // A concurrent hutch built the same runtime first: theirs is as good as ours.
    fs.rmSync(tmp, { recursive: true, force: true });
    if (!fs.existsSync(path.join(dir, '.complete'))) throw e;
  }
  return runtime;
}

/**
 * Removes the temp dirs of runtime builds whose process is gone (killed, or out of disk before its
 * rename): `<key>.tmp-<pid>`. A live builder's dir is left to it.
 */
function removeAbandonedBuilds(parent: string): void {
  let names: string[];
  try {
    names = fs.readdirSync(parent);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return;
    throw e;
  }
  for (const name of names) {
    const pid = Number(/\.tmp-(\d+)$/.exec(name)?.[1]);
    if (!Number.isInteger(pid) || (pid !== process.pid && processAlive(pid))) continue;
    fs.rmSync(path.join(parent, name), { recursive: true, force: true });
  }
}

/** The libraries `binary` needs, with the dynamic loader named ld-linux-x86-64.so.2. */
function sharedLibraries(binary: string): { name: string; file: string }[] {
  let out: string;
  try {
    out = execFileSync('ldd', [binary], { encoding: 'utf8' });
  } catch (e) {
    throw new HutchError('EEXEC', `ldd ${binary} failed: cannot find node's libraries`, { path: binary, cause: e });
  }
  const libs: { name: string; file: string }[] = [];
  for (const line of out.split('\n')) {
    const m = /^\s*(\S+)\s+=>\s+(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (!m) continue;
    const file = m[2] ?? m[1]!;
    const name = m[2] ? m[1]! : path.basename(file);
    libs.push({ name: path.basename(name), file: fs.realpathSync(file) });
  }
  if (!libs.some((l) => l.name === 'ld-linux-x86-64.so.2')) {
    throw new HutchError('EUNSUPPORTED', `node at ${binary} has no ld-linux-x86-64.so.2 loader (only x86_64 glibc hosts are supported)`, { path: binary });
  }
  return libs;
}

/** Hard-links (sharing page cache with the host's node) or, across filesystems, copies. */
function linkOrCopy(src: string, dst: string): void {
  try {
    fs.linkSync(src, dst);
  } catch (e) {
    const code = errnoCode(e);
    if (code !== 'EXDEV' && code !== 'EPERM') throw e;
    fs.copyFileSync(src, dst); // copyFile keeps the mode bits
  }
}
