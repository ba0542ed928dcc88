// The agent's `connect` (a forward): a real agent on the host turns a connection into a byte pipe to
// a TCP port on the loopback; half-closes, large transfers, refusals and typed errors.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { isHutchError } from '../src/errors.js';
import { AgentClient, type LoopbackHost } from '../src/agent/index.js';
import { encodeFrame, encodeJsonFrame, FrameType } from '../src/agent/protocol.js';
import { startAgent, tempDir, type TestAgent } from './agent-harness.test.js';
import { cleanUpAll } from './helpers.js';

let agent: TestAgent;
let echo: net.Server;
let echoPort = 0;
const serverSockets = new Set<net.Socket>();

test.before(async () => {
  agent = await startAgent();
  // Echoes what it gets and ends its side once the client ended its own (a half-close both ways).
  echo = net.createServer({ allowHalfOpen: true }, (s) => {
    serverSockets.add(s);
    s.on('close', () => serverSockets.delete(s));
    s.pipe(s);
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  echoPort = (echo.address() as net.AddressInfo).port;
});

test.after(async () => {
  await cleanUpAll(
    () => { for (const s of serverSockets) s.destroy(); },
    () => new Promise((r) => echo.close(r)),
    () => agent.stop(),
  );
});

/** Everything `sock` sends until its end. */
function readToEnd(sock: net.Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    sock.on('data', (c: Buffer) => parts.push(c));
    sock.on('end', () => resolve(Buffer.concat(parts)));
    sock.on('error', reject);
  });
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

test('a forward carries bytes both ways, with half-closes, and the agent serves on', async () => {
  const pipe = await (await agent.connect()).forwardPort({ host: '127.0.0.1', port: echoPort });
  const back = readToEnd(pipe);
  pipe.end('hello through the agent');
  assert.equal((await back).toString(), 'hello through the agent');
  await new Promise((r) => pipe.once('close', r));
  // localhost is 127.0.0.1 (never looked up); 4 MiB each way, with backpressure.
  const big = randomBytes(4 * 1024 * 1024 + 3);
  const pipe2 = await (await agent.connect()).forwardPort({ host: 'localhost', port: echoPort });
  const back2 = readToEnd(pipe2);
  pipe2.end(big);
  assert.equal(sha(await back2), sha(big));
  const c = await agent.connect();
  assert.equal((await c.ping()).version, 1);
  c.close();
});

test('refusals: nothing listening (ENETWORK), a host off the loopback or a bad port (EINVAL), a used connection (ESTATE)', async () => {
  const closed = net.createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const freePort = (closed.address() as net.AddressInfo).port;
  await new Promise((r) => closed.close(r));
  await assert.rejects((await agent.connect()).forwardPort({ host: '127.0.0.1', port: freePort }),
    (e: unknown) => isHutchError(e) && e.code === 'ENETWORK' && new RegExp(`^nothing listens on port ${freePort}`).test(e.message));
  await assert.rejects((await agent.connect()).forwardPort({ host: '10.0.0.1' as LoopbackHost, port: echoPort }),
    (e: unknown) => isHutchError(e) && e.code === 'EINVAL' && /host/.test(e.message));
  for (const port of [0, 65536, 1.5]) {
    await assert.rejects((await agent.connect()).forwardPort({ host: '127.0.0.1', port }), (e: unknown) => isHutchError(e) && e.code === 'EINVAL', `port ${port}`);
  }
  const used = await agent.connect();
  await used.ping();
  await assert.rejects(used.forwardPort({ host: '127.0.0.1', port: echoPort }), (e: unknown) => isHutchError(e) && e.code === 'ESTATE');
  used.close();
});

test('the agent drops a connect that is not the first call, and bytes sent before its answer', async () => {
  const raw = (frames: Buffer[]): Promise<Buffer> => new Promise((resolve, reject) => {
    const s = net.connect(agent.sock);
    const parts: Buffer[] = [];
    s.on('data', (c: Buffer) => parts.push(c));
    s.on('close', () => resolve(Buffer.concat(parts)));
    s.on('error', reject);
    s.end(Buffer.concat(frames));
  });
  const second = await raw([
    encodeJsonFrame(FrameType.REQUEST, { id: 1, method: 'ping', params: {} }),
    encodeJsonFrame(FrameType.REQUEST, { id: 2, method: 'connect', params: { host: '127.0.0.1', port: echoPort } }),
  ]);
  assert.match(second.toString(), /connect must be the first call/);
  const early = await raw([
    encodeJsonFrame(FrameType.REQUEST, { id: 1, method: 'connect', params: { host: '127.0.0.1', port: echoPort } }),
    encodeJsonFrame(FrameType.REQUEST, { id: 2, method: 'ping', params: {} }),
  ]);
  assert.match(early.toString(), /after connect, before its answer/);
  const c = await agent.connect();
  assert.equal((await c.ping()).version, 1);
  c.close();
});

test('an agent from before forwards: EUNSUPPORTED; a garbled answer: EPROTO', async () => {
  const dir = tempDir();
  const answers = [
    encodeJsonFrame(FrameType.RESPONSE, { id: 1, error: { code: 'EINVAL', message: 'unknown method connect' } }),
    encodeFrame(FrameType.EVENT, Buffer.from('{}')),
  ];
  const fake = net.createServer((s) => {
    s.on('error', () => undefined); // dropped by the client: expected
    s.once('data', () => s.write(answers.shift()!));
  });
  await new Promise<void>((r) => fake.listen(`${dir}/agent.sock`, r));
  try {
    await assert.rejects((await AgentClient.connectSocket(`${dir}/agent.sock`)).forwardPort({ host: '127.0.0.1', port: 80 }),
      (e: unknown) => isHutchError(e) && e.code === 'EUNSUPPORTED' && /predates port forwards/.test(e.message));
    await assert.rejects((await AgentClient.connectSocket(`${dir}/agent.sock`)).forwardPort({ host: '127.0.0.1', port: 80 }),
      (e: unknown) => isHutchError(e) && e.code === 'EPROTO');
  } finally {
    await new Promise((r) => fake.close(r));
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
