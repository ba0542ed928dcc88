// The agent's lifecycle: shutdown, main-process exit and its exit record, SIGTERM from outside,
// and the --stdio transport.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isHutchError } from '../src/errors.js';
import { processStartTime } from '../src/linux/index.js';
import { AgentClient, EXIT_FILE_NAME, MAX_EXIT_FILE_BYTES, readExitFile } from '../src/agent/index.js';
import { AGENT_MAIN, AGENT_NODE_FLAGS, collect, execParams, startAgent, tempDir, until } from './agent-harness.test.js';

/** True while `pid` runs (not gone, not a zombie); it may exit while being read. */
const alive = (pid: number) => processStartTime(pid) !== null;

test('shutdown: SIGTERM, then SIGKILL after the grace period; reply, then exit', { timeout: 60_000 }, async () => {
  const agent = await startAgent();
  try {
    const c = await agent.connect();
    const polite = await c.exec(execParams(['sleep', '30']));
    const stubborn = await c.exec(execParams(['sh', '-c', 'trap "" TERM; echo ready; while :; do sleep 0.05; done']));
    let out = '';
    stubborn.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    await until(() => out.includes('ready'), 5000, 'trap installed');
    const t0 = performance.now();
    const { killed } = await c.shutdown({ graceMs: 400 });
    assert.ok(performance.now() - t0 >= 350, 'waited for the grace period');
    assert.ok(killed >= 1, `killed ${killed}`);
    assert.equal(await agent.exited, 0);
    assert.ok(!alive(polite.pid) && !alive(stubborn.pid));
    assert.equal(fs.existsSync(agent.sock), false);
    assert.equal(fs.existsSync(path.join(agent.dir, EXIT_FILE_NAME)), false, 'no main process: no exit record');
  } finally {
    await agent.stop();
  }
});

test('main process exit: exit record, everything else killed, agent exits with its code', { timeout: 60_000 }, async () => {
  const agent = await startAgent();
  try {
    const c = await agent.connect();
    const bystander = await c.exec(execParams(['sleep', '30']));
    const main = await c.exec(execParams(['sh', '-c', 'echo bye; exit 7'], { main: true }));
    assert.deepEqual(await collect(main), { stdout: 'bye\n', stderr: '', exitCode: 7, signal: null });
    assert.equal(await agent.exited, 7);
    assert.deepEqual(readExitFile(path.join(agent.dir, EXIT_FILE_NAME)), { exitCode: 7, signal: null });
    assert.ok(!alive(bystander.pid), 'the other process was killed');
    await assert.rejects(bystander.wait(), (e) => isHutchError(e, 'EPROTO'));
  } finally {
    await agent.stop();
  }
});

test('main process killed by a signal: 128+n, signal in the record; only one main', { timeout: 60_000 }, async () => {
  const agent = await startAgent();
  try {
    const c = await agent.connect();
    const main = await c.exec(execParams(['sleep', '30'], { main: true }));
    await assert.rejects(c.exec(execParams(['true'], { main: true })), (e) => isHutchError(e, 'ESTATE'));
    c.close(); // main keeps running without its connection
    const k = await agent.connect();
    await k.signal('SIGKILL', { pid: main.pid });
    assert.equal(await agent.exited, 137);
    assert.deepEqual(readExitFile(path.join(agent.dir, EXIT_FILE_NAME)), { exitCode: null, signal: 'SIGKILL' });
  } finally {
    await agent.stop();
  }
});

test('SIGTERM to the agent runs the shutdown path', { timeout: 60_000 }, async () => {
  const agent = await startAgent();
  try {
    const c = await agent.connect();
    const p = await c.exec(execParams(['sleep', '30']));
    const status = p.wait();
    agent.child.kill('SIGTERM');
    assert.deepEqual(await status, { exitCode: null, signal: 'SIGTERM' });
    assert.equal(await agent.exited, 0);
    assert.ok(!alive(p.pid));
  } finally {
    await agent.stop();
  }
});

test('--stdio: one session over stdin/stdout; the agent exits when it closes', { timeout: 60_000 }, async () => {
  const child = spawn(process.execPath, [...AGENT_NODE_FLAGS, AGENT_MAIN, '--stdio'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  try {
    const c = AgentClient.fromStreams(child.stdout!, child.stdin!);
    assert.equal((await c.ping()).pid, child.pid);
    const p = await c.exec(execParams(['sh', '-c', 'cat; echo done'], { stdin: true }));
    p.stdin.end('piped\n');
    assert.deepEqual(await collect(p), { stdout: 'piped\ndone\n', stderr: '', exitCode: 0, signal: null });
    await assert.rejects(c.exec(execParams(['true'], { main: true })), (e) => isHutchError(e, 'EINVAL') && /--listen/.test(e.message));
    c.close();
    assert.equal(await exited, 0);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});

test('--stdio refuses a terminal or file as its transport', { timeout: 60_000 }, async () => {
  const dir = tempDir();
  try {
    const f = fs.openSync(path.join(dir, 'in'), 'w+');
    const child = spawn(process.execPath, [...AGENT_NODE_FLAGS, AGENT_MAIN, '--stdio'], { stdio: [f, f, 'pipe'] });
    let err = '';
    child.stderr!.on('data', (d) => { err += d; });
    assert.equal(await new Promise((r) => child.once('exit', r)), 2);
    assert.match(err, /pipe or socket/);
    fs.closeSync(f);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('readExitFile treats the record as untrusted', { timeout: 60_000 }, () => {
  const dir = tempDir();
  try {
    const file = path.join(dir, EXIT_FILE_NAME);
    const bad = (content: string | null, re: RegExp, code = 'EPROTO') => {
      fs.rmSync(file, { force: true });
      if (content !== null) fs.writeFileSync(file, content);
      assert.throws(() => readExitFile(file), (e) => isHutchError(e) && e.code === code && re.test(e.message) && e.path === file);
    };
    bad(null, /no exit record/, 'ENOTFOUND');
    bad('{"exitCode": 1', /malformed/);
    bad('{"exitCode": 300, "signal": null}', /malformed.*exitCode/);
    bad('{"exitCode": 1, "signal": null, "x": 1}', /unknown field/);
    bad('{"exitCode": null, "signal": null}', /exactly one/);
    bad(' '.repeat(MAX_EXIT_FILE_BYTES + 1), /larger than/);
    fs.rmSync(file);
    fs.writeFileSync(path.join(dir, 'secret'), '{"exitCode": 0, "signal": null}');
    fs.symlinkSync(path.join(dir, 'secret'), file);
    assert.throws(() => readExitFile(file), (e) => isHutchError(e, 'EPROTO') && /symlink/.test(e.message));
    fs.rmSync(file);
    fs.mkdirSync(file);
    assert.throws(() => readExitFile(file), (e) => isHutchError(e, 'EPROTO') && /not a regular file/.test(e.message));
    fs.rmdirSync(file);
    fs.writeFileSync(file, '{"exitCode": null, "signal": "SIGKILL"}\n');
    assert.deepEqual(readExitFile(file), { exitCode: null, signal: 'SIGKILL' });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
