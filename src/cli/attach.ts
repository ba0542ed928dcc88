// Connects the terminal (or pipes) of the hutch process to a process in a sandbox.
import os from 'node:os';
import type { ProcessHandle } from '../agent/index.js';

/** The exit code a shell would report: the code, or 128 + the signal's number. */
export function shellExitCode(status: { exitCode: number | null; signal: string | null }): number {
  if (status.exitCode !== null) return status.exitCode;
  const n = status.signal ? (os.constants.signals as Record<string, number>)[status.signal] : undefined;
  return 128 + (n ?? 0);
}

/** Streams stdio between this process and `proc` until it exits; resolves to its exit code. */
export async function attach(proc: ProcessHandle, opts: { tty: boolean; interactive: boolean }): Promise<number> {
  const stdin = process.stdin;
  const rawMode = opts.tty && opts.interactive && stdin.isTTY;
  const onResize = () => {
    if (process.stdout.columns && process.stdout.rows) proc.resize(process.stdout.columns, process.stdout.rows).catch(() => undefined);
  };
  proc.stdout.pipe(process.stdout, { end: false });
  proc.stderr?.pipe(process.stderr, { end: false });
  // Our reader went away (`hutch exec ... | head -1`): do what a pipe would do to a local process,
  // SIGPIPE; its output is drained meanwhile so that it is not blocked before the signal lands.
  const onBrokenPipe = (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') return;
    proc.stdout.unpipe(process.stdout);
    proc.stderr?.unpipe(process.stderr);
    proc.stdout.resume();
    proc.stderr?.resume();
    proc.kill('SIGPIPE').catch(() => undefined); // already gone: nothing to stop
  };
  process.stdout.on('error', onBrokenPipe);
  process.stderr.on('error', onBrokenPipe);
  if (opts.interactive) {
    if (rawMode) stdin.setRawMode(true);
    stdin.pipe(proc.stdin);
  }
  // Without a tty, signals sent to hutch go on to the process in the sandbox.
  const forward = (sig: NodeJS.Signals) => { proc.kill(sig).catch(() => undefined); };
  const signals: NodeJS.Signals[] = rawMode ? ['SIGTERM', 'SIGHUP'] : ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'];
  for (const s of signals) process.on(s, forward);
  if (opts.tty) process.stdout.on('resize', onResize);
  try {
    const status = await proc.wait();
    await Promise.all([drained(proc.stdout), proc.stderr ? drained(proc.stderr) : Promise.resolve()]);
    return shellExitCode(status);
  } finally {
    process.stdout.off('error', onBrokenPipe);
    process.stderr.off('error', onBrokenPipe);
    for (const s of signals) process.off(s, forward);
    if (opts.tty) process.stdout.off('resize', onResize);
    if (opts.interactive) {
      stdin.unpipe(proc.stdin);
      if (rawMode) stdin.setRawMode(false);
      stdin.pause();
    }
  }
}

function drained(stream: NodeJS.ReadableStream): Promise<void> {
  return new Promise((resolve) => {
    const s = stream as NodeJS.ReadableStream & { readableEnded?: boolean; destroyed?: boolean };
    if (s.readableEnded || s.destroyed) return resolve();
    stream.once('end', () => resolve());
    stream.once('close', () => resolve());
  });
}

/** TERM for a command given a terminal (run -t, exec -t): the caller's own, or xterm; -e TERM=… still wins. */
export function terminalEnv(): string {
  const term = process.env.TERM;
  return `TERM=${term || 'xterm'}`;
}
