// The agent as pid 1 of its own pid namespace (unshare -fp --mount-proc), as it runs in a sandbox:
// kill(-1) for "all", reaping as init, SIGTERM from outside, exit code of the main process.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AgentClient, AGENT_SOCKET_NAME, EXIT_FILE_NAME, readExitFile } from '../src/agent/index.js';
import { AGENT_MAIN, AGENT_NODE_FLAGS, collect, execParams, tempDir, until } from './agent-harness.test.js';

// Root can make a pid namespace directly; others need a user namespace as well.
// --kill-child: if unshare dies (or the test kills it), the agent inside goes with it.
const unshareArgs = [process.getuid!() === 0 ? '-fp' : '-Urfp', '--mount-proc', '--kill-child'];
const canUnshare = spawnSync('unshare', [...unshareArgs, 'true']).status === 0;
const skip = canUnshare ? false : 'unshare of a pid namespace is not available here';

interface InitAgent { dir: string; sock: string; unshare: ChildProcess; exited: Promise<number | null>; connect(): Promise<AgentClient>; hostPid(): number }

async function startInit(): Promise<InitAgent> {
  const dir = tempDir();
  const sock = path.join(dir, AGENT_SOCKET_NAME);
  const unshare = spawn('unshare', [...unshareArgs, process.execPath, ...AGENT_NODE_FLAGS, AGENT_MAIN, '--listen', sock], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  unshare.stderr!.on('data', (d) => { err += d; });
  const exited = new Promise<number | null>((r) => unshare.once('exit', (code) => r(code)));
  // A timeout is reported below, with the agent's stderr, after cleaning up.
  await until(() => fs.existsSync(sock) || unshare.exitCode !== null, 10_000, 'agent socket').catch(() => undefined);
  if (!fs.existsSync(sock)) {
    unshare.kill('SIGKILL');
    await exited;
    fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(`agent did not start (unshare exit ${unshare.exitCode}): ${err}`);
  }
  return {
    dir, sock, unshare, exited,
    connect: () => AgentClient.connectSocket(sock),
    // unshare -f forks the agent: it is unshare's only child.
    hostPid: () => Number(fs.readFileSync(`/proc/${unshare.pid}/task/${unshare.pid}/children`, 'utf8').trim().split(' ')[0]),
  };
}

async function stopInit(a: InitAgent): Promise<void> {
  if (a.unshare.exitCode === null) {
    a.unshare.kill('SIGKILL'); // --kill-child takes the agent, and with it everything in the namespace
    await a.exited;
  }
  fs.rmSync(a.dir, { recursive: true, force: true });
}

test('as pid 1: ps, signal to all (kill -1), and no zombies left by orphans', { skip, timeout: 30_000 }, async () => {
  const a = await startInit();
  try {
    const c = await a.connect();
    assert.equal((await c.ping()).pid, 1);
    const sh = await c.exec(execParams(['sh', '-c', 'for i in 1 2 3 4 5 6; do sleep 0.2 & done; echo spawned']));
    assert.equal((await collect(sh)).stdout, 'spawned\n');
    await until(async () => (await c.ps()).length === 1, 5000, 'only the agent left (orphans reaped)');
    assert.deepEqual((await c.ps()).map((p) => [p.pid, p.ppid]), [[1, 0]]);
    const sleepers = await Promise.all([1, 2, 3].map(() => c.exec(execParams(['sleep', '30']))));
    assert.equal(await c.signal('SIGKILL', { all: true }), 3);
    for (const p of sleepers) assert.deepEqual(await p.wait(), { exitCode: null, signal: 'SIGKILL' });
    assert.equal((await c.stats()).processes, 1);
    c.close();
  } finally {
    await stopInit(a);
  }
});

test('as pid 1: SIGTERM from outside shuts the sandbox down', { skip, timeout: 30_000 }, async () => {
  const a = await startInit();
  try {
    const c = await a.connect();
    const p = await c.exec(execParams(['sleep', '30']));
    process.kill(a.hostPid(), 'SIGTERM');
    assert.deepEqual(await p.wait(), { exitCode: null, signal: 'SIGTERM' });
    assert.equal(await a.exited, 0);
  } finally {
    await stopInit(a);
  }
});

test('as pid 1: the main process exit code becomes the sandbox exit code', { skip, timeout: 30_000 }, async () => {
  const a = await startInit();
  try {
    const c = await a.connect();
    await c.exec(execParams(['sleep', '30']));
    const main = await c.exec(execParams(['sh', '-c', 'sleep 0.1; exit 9'], { main: true }));
    assert.equal((await main.wait()).exitCode, 9);
    assert.equal(await a.exited, 9);
    assert.deepEqual(readExitFile(path.join(a.dir, EXIT_FILE_NAME)), { exitCode: 9, signal: null });
  } finally {
    await stopInit(a);
  }
});
