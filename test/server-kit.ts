// A real hutchd for the server and SDK tests: `hutch serve` from the built CLI on a socket under a
// private state root; stopped (or killed) and swept by the test.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import test from 'node:test';
import { cleanRoot, HUTCH, makeRoot, rootEnv } from './helpers.js';
import { Transport } from '../src/sdk/index.js';

/** A running hutchd. */
export interface Daemon { child: ChildProcess; socketPath: string; url?: string; stderr: () => string; stop: (signal?: NodeJS.Signals) => Promise<void> }

/** Starts `hutch serve` against `root`; resolves once it serves. Extra flags go after `serve`. */
export async function startDaemon(root: string, flags: string[] = [], socketPath = path.join(root, 'hutchd.sock'), env: NodeJS.ProcessEnv = {}): Promise<Daemon> {
  const child = spawn(process.execPath, [HUTCH, '--root', root, 'serve', '--socket', socketPath, ...flags], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...rootEnv(root), ...env } });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const ready = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`hutchd did not start: ${stderr}`)), 20_000);
    const check = () => {
      const m = /serving on (.*)\n/.exec(stderr);
      if (m) { clearTimeout(timer); resolve(m[1]!); }
    };
    child.stderr!.on('data', check);
    void exited.then((code) => { clearTimeout(timer); reject(new Error(`hutchd exited ${code}: ${stderr}`)); });
  });
  /** Sends `signal`, and SIGKILL if it has not exited within `graceMs`; resolves once it has. */
  const stop = async (signal: NodeJS.Signals = 'SIGTERM', graceMs = 15_000): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  };
  let where: string;
  try {
    where = await ready;
  } catch (e) {
    await stop('SIGKILL'); // one that never served is stopped too: no test holds it to stop it
    throw e;
  }
  const url = /(http:\/\/\S+)/.exec(where)?.[1];
  return { child, socketPath, ...(url ? { url } : {}), stderr: () => stderr, stop };
}

/** Runs `hutch serve` expecting it to refuse to start; resolves to its exit code and stderr. */
export function serveFails(root: string, flags: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [HUTCH, '--root', root, 'serve', ...flags], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.once('exit', (code) => { clearTimeout(timer); resolve({ code, stderr }); });
  });
}

/** A token file with one fresh token, inside `root` (swept with it). */
export function tokenFile(root: string): { file: string; token: string } {
  const token = randomBytes(24).toString('hex');
  const file = path.join(root, 'tokens');
  fs.writeFileSync(file, `# hutchd tokens\n${token}\n`, { mode: 0o600 });
  return { file, token };
}

/** A raw HTTP exchange over the unix socket (for malformed requests the SDK would never send). */
export function rawRequest(socketPath: string, text: string | Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.connect(socketPath);
    let out = '';
    c.on('data', (d) => { out += d.toString(); });
    c.on('end', () => resolve(out));
    c.on('error', reject);
    c.end(text);
  });
}

/** A test file's hutchd: its state root, the daemon and an SDK transport to it (set once `before` ran). */
export interface DaemonFixture { root: string; daemon: Daemon; t: Transport }

/**
 * Registers the file's hooks (call at module level): `hutch serve FLAGS` on a fresh root before the
 * tests, with a transport over its socket; transport closed, daemon stopped and root swept after.
 * Read `daemon` and `t` inside tests: node 20 does not await one top-level `before` hook before the
 * next, so another hook cannot copy them.
 */
export function daemonFixture(tag: string, flags: string[] = [], env: NodeJS.ProcessEnv = {}): DaemonFixture {
  const fx = { root: makeRoot(tag) } as DaemonFixture;
  test.before(async () => {
    fx.daemon = await startDaemon(fx.root, flags, undefined, env);
    fx.t = new Transport({ socketPath: fx.daemon.socketPath });
  });
  test.after(async () => {
    fx.t?.close();
    await fx.daemon?.stop();
    await cleanRoot(fx.root);
  });
  return fx;
}
