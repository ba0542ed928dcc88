// Docker credential helpers: `docker-credential-<name> get` is run with the registry's server URL on
// stdin and answers `{"ServerURL","Username","Secret"}` on stdout (the protocol docker, podman and
// skopeo share). The helper is bounded: a time limit (its whole process group is killed after it),
// an output limit, stdin closed once the URL is written. Nothing a helper prints goes into an error
// unless the helper failed (then its first line, which is its error message).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { HutchError, errnoCode } from '../../errors.js';

/** What a helper answered: a user and secret, or (user `<token>`) an identity token. */
export interface HelperAnswer { username: string; secret: string }

/** Where a helper was named, for messages: `credHelpers` or `credsStore` of an auth file. */
export interface HelperOrigin { via: 'credHelpers' | 'credsStore'; file: string }

/** The user name by which a helper says its secret is an identity token. */
export const IDENTITY_TOKEN_USER = '<token>';

/** How long a helper's output may stay open after it exited (a daemon it started may hold the pipe). */
const AFTER_EXIT_MS = 1000;
/** Default limit for one helper run; $HUTCH_CREDENTIAL_HELPER_TIMEOUT_MS overrides it. */
const DEFAULT_TIMEOUT_MS = 30_000;
/** Most a helper may print on stdout (credentials are a few KiB at most, tokens included). */
const MAX_OUTPUT_BYTES = 1024 * 1024;
/** What docker-credential-helpers print when they hold nothing for the URL. */
const NOT_FOUND = /credentials not found/i;

/**
 * Checks a helper name from an auth file: it becomes part of a program name looked up on PATH, so
 * a name with `/`, `..` or control characters (which would run some other path) is EINVAL.
 */
export function checkHelperName(name: unknown, origin: HelperOrigin): string {
  if (typeof name !== 'string' || name === '' || name.includes('/') || name.includes('\\') || name.includes('..') || /[\s\x00-\x1f\x7f]/.test(name)) {
    const shown = typeof name === 'string' ? JSON.stringify(name.slice(0, 80)) : typeof name;
    throw new HutchError('EINVAL', `auth file ${origin.file}: ${origin.via} names the credential helper ${shown}, which is not a plain name (no '/', '..' or spaces)`, { path: origin.file });
  }
  return name;
}

/** The server URL a helper is asked about: docker's for Docker Hub, the registry's host[:port] otherwise. */
export function helperServerURL(registry: string): string {
  return registry === 'docker.io' ? 'https://index.docker.io/v1/' : registry;
}

/** Longest time limit node's timers take (beyond it they fire after 1 ms). */
const MAX_TIMEOUT_MS = 0x7fffffff;

/** The helper's time limit: $HUTCH_CREDENTIAL_HELPER_TIMEOUT_MS when it is a positive number (at most ~24.8 days), else 30 s. */
function helperTimeoutMs(): number {
  const asked = Number(process.env.HUTCH_CREDENTIAL_HELPER_TIMEOUT_MS);
  return Number.isFinite(asked) && asked > 0 ? Math.min(asked, MAX_TIMEOUT_MS) : DEFAULT_TIMEOUT_MS;
}

/** The first line a failed helper printed (its error message), bounded and without control characters. */
function firstLine(text: string): string {
  const line = text.split('\n').map((l) => l.trim()).find(Boolean) ?? '';
  const clean = line.replace(/[\x00-\x1f\x7f]/g, ' ');
  return clean.length > 200 ? `${clean.slice(0, 200)}…` : clean;
}

/**
 * Where `program` is on PATH, looking in absolute directories only: an empty or relative entry (`.`)
 * would run whatever file of that name the current directory holds (Go's LookPath refuses it too).
 * Throws ENOENT when it is in none, EACCES when only a file that cannot be run has the name.
 */
function onPath(program: string): string {
  let refused = false;
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (!path.isAbsolute(dir)) continue;
    const candidate = path.join(dir, program);
    try {
      if (!fs.statSync(candidate).isFile()) continue;
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch (e) {
      if (errnoCode(e) === 'EACCES') refused = true;
    }
  }
  throw Object.assign(new Error(`${program}: ${refused ? 'permission denied' : 'not found on PATH'}`), { code: refused ? 'EACCES' : 'ENOENT' });
}

interface HelperRun { code: number | null; signal: NodeJS.Signals | null; stdout: Buffer; stderr: string; timedOut: boolean; overflow: boolean }

/** Runs `program get` with `input` on stdin, within the limits; kills its process group when they are passed. */
function runGet(program: string, input: string, timeoutMs: number): Promise<HelperRun> {
  return new Promise((resolve, reject) => {
    // Its own process group: a helper that is a script leaves no child behind when it is killed.
    const child = spawn(onPath(program), ['get'], { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    const out: Buffer[] = [];
    let outBytes = 0;
    let stderr = '';
    let timedOut = false;
    let overflow = false;
    // A process that left the group (setsid) may keep the pipes open: 'close' must not wait for it.
    const closePipes = (): void => {
      child.stdout!.destroy();
      child.stderr!.destroy();
    };
    const killGroup = (): void => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch (e) {
        // The group is gone already (ESRCH): nothing is left to kill.
        if (errnoCode(e) !== 'ESRCH') child.kill('SIGKILL');
      }
      closePipes();
    };
    const timer = setTimeout(() => { timedOut = true; killGroup(); }, timeoutMs);
    child.stdout!.on('data', (d: Buffer) => {
      outBytes += d.length;
      if (outBytes > MAX_OUTPUT_BYTES) {
        if (!overflow) { overflow = true; killGroup(); }
        return;
      }
      out.push(d);
    });
    child.stderr!.on('data', (d: Buffer) => { if (stderr.length < 4096) stderr += d.toString('utf8'); });
    // A helper that exits without reading its stdin makes the write fail with EPIPE: its answer still counts.
    child.stdin!.on('error', () => undefined);
    let drain: NodeJS.Timeout | undefined;
    child.once('exit', () => { drain = setTimeout(closePipes, AFTER_EXIT_MS); });
    child.once('error', (e) => { clearTimeout(timer); reject(e); });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      clearTimeout(drain);
      resolve({ code, signal, stdout: Buffer.concat(out), stderr, timedOut, overflow });
    });
    child.stdin!.end(input);
  });
}

/**
 * Asks `docker-credential-<name>` for the credentials of `registry`. Undefined when the helper holds
 * none ("credentials not found", or an empty answer). A helper not on PATH is ENOTFOUND; any other
 * failure (exit status, time limit, too much output, an answer that is not credentials) is EAUTH.
 */
export async function runCredentialHelper(name: string, registry: string, origin: HelperOrigin): Promise<HelperAnswer | undefined> {
  const program = `docker-credential-${name}`;
  const what = `credential helper ${program} (${origin.via} in ${origin.file}) for registry ${registry}`;
  const timeoutMs = helperTimeoutMs();
  let run: HelperRun;
  try {
    run = await runGet(program, helperServerURL(registry), timeoutMs);
  } catch (e) {
    const code = errnoCode(e);
    if (code === 'ENOENT') throw new HutchError('ENOTFOUND', `${what}: ${program} is not on PATH`, { id: program, cause: e });
    if (code === 'EACCES') throw new HutchError('EAUTH', `${what}: ${program} is not executable`, { id: program, cause: e });
    throw new HutchError('EAUTH', `${what} could not be started: ${(e as Error).message}`, { id: program, cause: e });
  }
  if (run.timedOut) throw new HutchError('EAUTH', `${what} did not answer within ${timeoutMs} ms and was killed`, { id: program });
  if (run.overflow) throw new HutchError('EAUTH', `${what} printed more than ${MAX_OUTPUT_BYTES} bytes and was killed`, { id: program });
  const stdout = run.stdout.toString('utf8');
  if (run.code !== 0) {
    // Helpers print their errors on stdout (the protocol's way), some on stderr.
    if (NOT_FOUND.test(stdout) || NOT_FOUND.test(run.stderr)) return undefined;
    const status = run.signal ? `killed by ${run.signal}` : `exit status ${run.code}`;
    const said = firstLine(stdout) || firstLine(run.stderr);
    throw new HutchError('EAUTH', `${what} failed (${status})${said ? `: ${said}` : ''}`, { id: program });
  }
  let doc: unknown;
  try {
    doc = JSON.parse(stdout);
  } catch {
    // The output is not quoted: it may hold a secret in some other shape.
    throw new HutchError('EAUTH', `${what} answered with something that is not JSON (${run.stdout.length} bytes)`, { id: program });
  }
  const { Username: username, Secret: secret } = (doc && typeof doc === 'object' ? doc : {}) as { Username?: unknown; Secret?: unknown };
  if ((username !== undefined && typeof username !== 'string') || (secret !== undefined && typeof secret !== 'string')) {
    throw new HutchError('EAUTH', `${what} answered JSON without a string Username and Secret`, { id: program });
  }
  if (!username && !secret) return undefined;
  if (!secret) throw new HutchError('EAUTH', `${what} answered a user without a secret`, { id: program });
  return { username: username ?? '', secret };
}
