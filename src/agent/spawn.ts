// Starting a process for `exec`: checks the cwd and resolves the command first, so a missing command
// is reported as ENOEXEC naming it (spawn's own ENOENT could also mean a bad cwd), then spawns it with
// pipes (child_process) or on a pseudo-terminal (node-pty, loaded only when a tty is asked for).
import type { ChildProcess } from 'node:child_process';
import * as fsp from 'node:fs/promises';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import type { IPty } from 'node-pty';
import { errnoCode, HutchError, type ErrorCode } from '../errors.js';
import type { ExecParams, TtySize } from './protocol.js';

/** PATH used when the exec'd environment has none (the usual one of container runtimes). */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * Fails with EINVAL (EPERM when denied) unless `cwd` is an existing directory. Not ENOTFOUND: the API
 * answers that with 404, which reads as "no such sandbox".
 */
export async function checkCwd(cwd: string): Promise<void> {
  let st;
  try {
    st = await fsp.stat(cwd);
  } catch (e) {
    const c = errnoCode(e);
    if (c === 'ENOENT' || c === 'ENOTDIR') throw new HutchError('EINVAL', `working directory ${cwd} does not exist in the sandbox`, { path: cwd });
    throw new HutchError(c === 'EACCES' ? 'EPERM' : 'EINVAL', `working directory ${cwd}: ${c}`, { path: cwd, cause: e });
  }
  if (!st.isDirectory()) throw new HutchError('EINVAL', `working directory ${cwd} is not a directory`, { path: cwd });
}

type Candidate = 'ok' | 'missing' | 'directory' | 'not executable';

async function probe(file: string): Promise<Candidate> {
  try {
    const st = await fsp.stat(file);
    if (st.isDirectory()) return 'directory';
    return st.isFile() && (st.mode & 0o111) !== 0 ? 'ok' : 'not executable';
  } catch (e) {
    const c = errnoCode(e);
    if (c === 'ENOENT' || c === 'ENOTDIR') return 'missing';
    if (c === 'EACCES') return 'not executable';
    throw e;
  }
}

/** The absolute path of `command` (searched in the exec'd env's PATH unless it contains '/'). */
export async function resolveCommand(command: string, env: Record<string, string>, cwd: string): Promise<string> {
  if (command.includes('/')) {
    const file = path.posix.resolve(cwd, command);
    const what = await probe(file);
    if (what === 'ok') return file;
    if (what === 'missing') throw new HutchError('ENOEXEC', `command not found: ${command}`, { path: command });
    throw new HutchError(what === 'directory' ? 'ENOEXEC' : 'EPERM', `cannot execute ${command}: ${what}`, { path: command });
  }
  let denied: string | undefined;
  for (const dir of (env.PATH ?? DEFAULT_PATH).split(':')) {
    if (!dir.startsWith('/')) continue; // relative PATH entries would depend on the agent's own cwd
    const file = path.posix.join(dir, command);
    const what = await probe(file);
    if (what === 'ok') return file;
    if (what === 'not executable') denied ??= file;
  }
  if (denied) throw new HutchError('EPERM', `cannot execute ${command}: ${denied} is not executable`, { path: command });
  throw new HutchError('ENOEXEC', `command not found: ${command}`, { path: command });
}

const SPAWN_CODES: Record<string, ErrorCode> = {
  ENOENT: 'ENOEXEC', ENOEXEC: 'ENOEXEC', EACCES: 'EPERM', EPERM: 'EPERM', E2BIG: 'EINVAL', EINVAL: 'EINVAL',
};

function spawnError(command: string, e: unknown): HutchError {
  const c = errnoCode(e) ?? 'unknown error';
  return new HutchError(SPAWN_CODES[c] ?? 'EINTERNAL', `cannot execute ${command}: ${c}`, { path: command, cause: e });
}

/** Spawns `file` with pipes, in a new session (so its process group can be signalled as a whole). */
export async function spawnPipes(file: string, p: ExecParams): Promise<ChildProcess & { pid: number }> {
  // Loaded on first use: it is a few ms of the agent's start-up, which every sandbox pays.
  const { spawn } = await import('node:child_process');
  const child = spawn(file, p.argv.slice(1), {
    argv0: p.argv[0], cwd: p.cwd, env: p.env, uid: p.uid, gid: p.gid, detached: true,
    stdio: [p.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) {
    // spawn reports failure through an 'error' event on the next tick.
    const err = await new Promise<unknown>((resolve) => child.once('error', resolve));
    throw spawnError(p.argv[0]!, err);
  }
  return child as ChildProcess & { pid: number };
}

type PtyModule = typeof import('node-pty');
let ptyModule: PtyModule | undefined;

/** Spawns `file` on a new pseudo-terminal of the given size; output arrives as Buffers. */
export function spawnPty(file: string, p: ExecParams, size: TtySize): IPty {
  ptyModule ??= createRequire(import.meta.url)('node-pty') as PtyModule;
  try {
    return ptyModule.spawn(file, p.argv.slice(1), {
      name: p.env.TERM ?? 'xterm', cols: size.cols, rows: size.rows, cwd: p.cwd, env: p.env,
      uid: p.uid, gid: p.gid, encoding: null,
    });
  } catch (e) {
    throw spawnError(p.argv[0]!, e);
  }
}
