// Running the executor for an OCI caller: with the caller's own stdio (and any extra fds it
// preserves) so that the container's stdio is the caller's, or captured for hutch to read.
import { spawn, type StdioOptions } from 'node:child_process';
import os from 'node:os';
import tty from 'node:tty';
import { HutchError } from '../../errors.js';
import type { OciExecutor } from './executor.js';
// The OCI runtime's door into this layer: it needs the executor and nothing of the sandbox
// platform (overlay, agent), so it imports this file rather than the platform's index.
export { makeExecutor, type OciExecutor } from './executor.js';

/** How an attached executor call is made. */
export interface AttachedCall {
  /** Global flags before the executor's own (the caller's --log, --log-format, --systemd-cgroup...). */
  extraGlobals?: string[];
  /** How many fds after stdio the executor inherits (fd 3 upwards), for --preserve-fds and LISTEN_FDS. */
  extraFds?: number;
  /** The working directory of the executor (runc resolves relative --pid-file and --console-socket against it). */
  cwd?: string;
  /** Variables added to hutch's environment for the executor. */
  env?: Record<string, string>;
}

/** What a captured executor call gave. */
export interface CapturedCall { code: number; stdout: string; stderr: string }

/**
 * Runs `<executor> [globals] verbArgs` with hutch's stdio and fds 3..3+extraFds-1 inherited,
 * forwarding the signals hutch gets; resolves to its exit status (128+N for a signal N).
 */
export function runAttached(executor: OciExecutor, verbArgs: string[], call: AttachedCall = {}): Promise<number> {
  const { file, args } = executor.argv(verbArgs, call.extraGlobals ?? []);
  const stdio: StdioOptions = ['inherit', 'inherit', 'inherit'];
  for (let fd = 3; fd < 3 + (call.extraFds ?? 0); fd++) stdio.push(fd);
  // On a terminal the executor stays in the foreground group and gets ^C itself; otherwise it gets
  // its own group and hutch passes on what it is sent, as the caller would expect of runc's pid.
  const onTerminal = tty.isatty(0);
  const forwarded: NodeJS.Signals[] = onTerminal ? ['SIGTERM', 'SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH']
    : ['SIGINT', 'SIGQUIT', 'SIGTERM', 'SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'];
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      stdio, detached: !onTerminal, ...(call.cwd ? { cwd: call.cwd } : {}), ...(call.env ? { env: { ...process.env, ...call.env } } : {}),
    });
    const forward = (sig: NodeJS.Signals) => { child.kill(sig); };
    for (const sig of forwarded) process.on(sig, forward);
    const stopForwarding = () => { for (const sig of forwarded) process.off(sig, forward); };
    child.on('error', (e) => {
      stopForwarding();
      reject(new HutchError('EEXEC', `cannot run ${executor.config.binary}: ${e.message}`, { path: executor.config.binary, cause: e }));
    });
    child.on('close', (code, signal) => {
      stopForwarding();
      resolve(code ?? 128 + (signal ? os.constants.signals[signal] ?? 0 : 0));
    });
  });
}

/** Runs `<executor> [globals] verbArgs` with stdin closed and stdout/stderr captured. */
export function runCaptured(executor: OciExecutor, verbArgs: string[], extraGlobals: string[] = [], input?: string): Promise<CapturedCall> {
  const { file, args } = executor.argv(verbArgs, extraGlobals);
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { if (stderr.length < 65536) stderr += d.toString(); });
    if (input !== undefined) child.stdin!.end(input);
    child.on('error', (e) => reject(new HutchError('EEXEC', `cannot run ${executor.config.binary}: ${e.message}`, { path: executor.config.binary, cause: e })));
    child.on('close', (code, signal) => resolve({ code: code ?? 128 + (signal ? os.constants.signals[signal] ?? 0 : 0), stdout, stderr }));
  });
}
