// Shared helpers for the agent tests: start the real agent (dist/src/agent/main.js) as a child of the
// test, connect to it, and clean up every process and temp dir. Also checks start-up itself.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { finished } from 'node:stream/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { AgentClient, AGENT_SOCKET_NAME, type ExecParams, type ProcessHandle } from '../src/agent/index.js';
import './suite-run.js'; // marks the processes this file starts as this run's (test/suite-run.ts)

/** The compiled agent program. */
export const AGENT_MAIN = fileURLToPath(new URL('../src/agent/main.js', import.meta.url));

/** A running agent started by a test. */
export interface TestAgent {
  dir: string;
  sock: string;
  child: ChildProcess;
  /** Everything the agent wrote to stderr. */
  stderr(): string;
  /** Resolves with the agent's exit code (or 128+signal). */
  exited: Promise<number>;
  connect(): Promise<AgentClient>;
  /** Stops the agent (SIGTERM, then SIGKILL) and removes its dir. */
  stop(): Promise<void>;
}

/** A temp dir removed by `cleanup`. */
export function tempDir(prefix = 'hutch-agent-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

function exitCodeOf(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve(child.exitCode);
    child.once('exit', (code, sig) => resolve(code ?? 128 + (os.constants.signals as Record<string, number>)[sig ?? 'SIGKILL']!));
  });
}

/** Node flags for the agents the tests start: HUTCH_AGENT_NODE_FLAGS (space-separated), e.g. the platform's. */
export const AGENT_NODE_FLAGS = (process.env.HUTCH_AGENT_NODE_FLAGS ?? '').split(' ').filter(Boolean);

/** Starts `node main.js --listen <dir>/agent.sock` and waits until it accepts connections. */
export async function startAgent(nodeFlags: string[] = AGENT_NODE_FLAGS): Promise<TestAgent & { startMs: number }> {
  const dir = tempDir();
  const sock = path.join(dir, AGENT_SOCKET_NAME);
  const t0 = performance.now();
  const child = spawn(process.execPath, [...nodeFlags, AGENT_MAIN, '--listen', sock], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d) => { err += d; });
  const exited = exitCodeOf(child);
  let startMs = 0;
  for (let i = 0; ; i++) {
    try {
      const c = await AgentClient.connectSocket(sock, { timeoutMs: 1000 });
      startMs = performance.now() - t0;
      c.close();
      break;
    } catch (e) {
      if (i > 2000 || child.exitCode !== null) throw new Error(`agent did not start: ${(e as Error).message}\n${err}`);
      await new Promise((r) => setTimeout(r, 1));
    }
  }
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  return { dir, sock, child, stderr: () => err, exited, connect: () => AgentClient.connectSocket(sock), stop, startMs };
}

/** Exec params with the test's own uid/gid and a PATH, plus `over`. */
export function execParams(argv: string[], over: Partial<ExecParams> = {}): ExecParams {
  return {
    argv, env: { PATH: '/usr/local/bin:/usr/bin:/bin' }, cwd: '/', uid: process.getuid!(), gid: process.getgid!(),
    stdin: false, ...over,
  };
}

/** Collects a process's output and exit status. */
export async function collect(p: ProcessHandle): Promise<{ stdout: string; stderr: string; exitCode: number | null; signal: string | null }> {
  let stdout = '', stderr = '';
  p.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
  p.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  // wait() can settle before 'data' handlers have run on output still buffered in the streams.
  const [status] = await Promise.all([p.wait(), finished(p.stdout), finished(p.stderr)]);
  return { stdout, stderr, ...status };
}

/** Polls `fn` until it returns true or `ms` pass. */
export async function until(fn: () => boolean | Promise<boolean>, ms = 5000, what = 'condition'): Promise<void> {
  const deadline = performance.now() + ms;
  while (!(await fn())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Reads a field (kB) of /proc/PID/status or smaps_rollup. */
export function procKb(pid: number, file: 'status' | 'smaps_rollup', field: string): number {
  const text = fs.readFileSync(`/proc/${pid}/${file}`, 'utf8');
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

// Other agent tests import the helpers above; the tests below run only when this file is the entry.
const isEntry = process.argv[1] !== undefined && pathToFileURL(process.argv[1]).href === import.meta.url;

if (isEntry) test('the agent starts, answers ping, and stops cleanly on SIGTERM', { timeout: 60_000 }, async (t) => {
  const agent = await startAgent();
  try {
    t.diagnostic(`spawn → listening: ${agent.startMs.toFixed(1)} ms`);
    const c = await agent.connect();
    const pong = await c.ping();
    assert.equal(pong.version, 1);
    assert.equal(pong.pid, agent.child.pid);
    assert.equal(fs.statSync(agent.sock).mode & 0o777, 0o600);
    await new Promise((r) => setTimeout(r, 300));
    t.diagnostic(`idle RSS ${procKb(agent.child.pid!, 'status', 'VmRSS')} kB, Private_Dirty ${procKb(agent.child.pid!, 'smaps_rollup', 'Private_Dirty')} kB`);
    c.close();
    agent.child.kill('SIGTERM');
    assert.equal(await agent.exited, 0);
    assert.equal(fs.existsSync(agent.sock), false, 'the agent removes its socket when it exits');
  } finally {
    await agent.stop();
  }
});

if (isEntry) test('a stale socket file is replaced; anything else at the path is refused', { timeout: 60_000 }, async () => {
  const dir = tempDir();
  try {
    const sock = path.join(dir, AGENT_SOCKET_NAME);
    fs.writeFileSync(sock, 'not a socket');
    const child = spawn(process.execPath, [...AGENT_NODE_FLAGS, AGENT_MAIN, '--listen', sock], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (d) => { err += d; });
    assert.equal(await exitCodeOf(child), 1);
    assert.match(err, /exists and is not a socket/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const agent = await startAgent();
  try {
    agent.child.kill('SIGKILL'); // leaves its socket behind
    await agent.exited;
    assert.ok(fs.lstatSync(agent.sock).isSocket());
    const again = spawn(process.execPath, [...AGENT_NODE_FLAGS, AGENT_MAIN, '--listen', agent.sock], { stdio: 'ignore' });
    try {
      await until(async () => {
        try {
          const c = await AgentClient.connectSocket(agent.sock);
          await c.ping();
          c.close();
          return true;
        } catch {
          return false;
        }
      }, 5000, 'a new agent on the stale socket');
    } finally {
      again.kill('SIGKILL');
      await exitCodeOf(again);
    }
  } finally {
    await agent.stop();
  }
});

if (isEntry) test('bad command lines are refused with a usage line', { timeout: 60_000 }, async () => {
  const child = spawn(process.execPath, [...AGENT_NODE_FLAGS, AGENT_MAIN, '--bogus'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d) => { err += d; });
  assert.equal(await exitCodeOf(child), 2);
  assert.match(err, /usage: main.js --listen/);
});
