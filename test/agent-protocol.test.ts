// The wire protocol: framing and schema checks in isolation, then bad input both ways: a host
// sending garbage to the real agent, and a fake agent sending garbage to the client.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { isHutchError } from '../src/errors.js';
import { AgentClient, MAX_FRAME_BYTES } from '../src/agent/index.js';
import {
  checkResponse, encodeDataFrame, encodeFrame, encodeJsonFrame, FrameDecoder, FrameType, paramChecks, parseJsonPayload,
  SchemaError, type Frame,
} from '../src/agent/protocol.js';
import { execParams, startAgent, tempDir, type TestAgent } from './agent-harness.test.js';

test('FrameDecoder: frames split across chunks and many in one chunk', { timeout: 60_000 }, () => {
  const d = new FrameDecoder([FrameType.REQUEST, FrameType.DATA]);
  const a = encodeJsonFrame(FrameType.REQUEST, { id: 1, method: 'ping', params: {} });
  const b = encodeDataFrame(7, 0, Buffer.from('xyz'));
  const all = Buffer.concat([a, b, a]);
  const got: Frame[] = [];
  for (let i = 0; i < all.length; i += 3) got.push(...d.push(all.subarray(i, i + 3)));
  assert.deepEqual(got.map((f) => f.type), [FrameType.REQUEST, FrameType.DATA, FrameType.REQUEST]);
  assert.deepEqual(parseJsonPayload(got[0]!.payload), { id: 1, method: 'ping', params: {} });
  assert.equal(got[1]!.payload.subarray(5).toString(), 'xyz');
  assert.equal(new FrameDecoder([FrameType.REQUEST]).push(Buffer.concat([a, a, a])).length, 3);
});

test('FrameDecoder: oversize, empty and unknown-type frames fail with EPROTO, for good', { timeout: 60_000 }, () => {
  const header = (len: number, type: number) => Buffer.from([len >>> 24, (len >> 16) & 255, (len >> 8) & 255, len & 255, type]);
  const oversize = new FrameDecoder([FrameType.REQUEST]);
  assert.throws(() => oversize.push(header(MAX_FRAME_BYTES + 1, 1).subarray(0, 4)), (e) => isHutchError(e, 'EPROTO'));
  assert.throws(() => oversize.push(encodeJsonFrame(FrameType.REQUEST, {})), (e) => isHutchError(e, 'EPROTO'), 'stays failed');
  assert.throws(() => new FrameDecoder([FrameType.REQUEST]).push(header(0, 1)), (e) => isHutchError(e, 'EPROTO'));
  assert.throws(() => new FrameDecoder([FrameType.REQUEST]).push(header(5, 9)), /unexpected frame type 9/);
  assert.throws(() => new FrameDecoder([FrameType.REQUEST]).push(header(5, FrameType.RESPONSE)), /unexpected frame type 2/);
  assert.throws(() => encodeFrame(FrameType.DATA, Buffer.alloc(MAX_FRAME_BYTES)), (e) => isHutchError(e, 'EINVAL'));
});

test('schema checks: types, ranges, unknown fields, absolute paths', { timeout: 60_000 }, () => {
  const ok = paramChecks.exec({ argv: ['ls'], env: { A: 'b' }, cwd: '/', uid: 0, gid: 0, stdin: false }, 'exec');
  assert.deepEqual(ok.argv, ['ls']);
  const bad = (v: unknown, re: RegExp) => assert.throws(() => paramChecks.exec(v, 'exec'), (e) => e instanceof SchemaError && re.test(e.message));
  const base = { argv: ['ls'], env: {}, cwd: '/', uid: 0, gid: 0, stdin: false };
  bad({ ...base, argv: 'ls' }, /exec.argv: expected an array/);
  bad({ ...base, argv: [] }, /must not be empty/);
  bad({ ...base, uid: -1 }, /exec.uid: must be between/);
  bad({ ...base, uid: 1.5 }, /expected an integer/);
  bad({ ...base, env: { A: 1 } }, /exec.env.A: expected a string/);
  bad({ ...base, cwd: 'tmp' }, /path must be absolute/);
  bad({ ...base, extra: 1 }, /unknown field "extra"/);
  bad({ ...base, argv: ['a\0b'] }, /NUL/);
  bad([], /expected an object/);
  assert.throws(() => paramChecks.signal({ signal: 'TERM', target: { pid: 1, all: true } }, 's'), /unknown field "all"/);
  assert.throws(() => paramChecks.signal({ signal: 'TERM', target: { all: false } }, 's'), /expected true/);
  assert.throws(() => paramChecks.writeFile({ path: '/x', data: 'not base64!' }, 'w'), /base64/);
  assert.throws(() => checkResponse({ id: 1, error: { code: 'EWHATEVER', message: '' } }, 'r'), /expected one of/);
  const env = paramChecks.exec({ ...base, env: JSON.parse('{"__proto__": "x"}') }, 'exec').env;
  assert.equal(Object.getPrototypeOf(env), null);
  assert.equal(env['__proto__'], 'x');
});

/** A raw connection to the agent that speaks frames directly. */
async function rawConnect(sock: string): Promise<{ s: net.Socket; next(): Promise<Frame>; closed: Promise<void> }> {
  const s = net.connect(sock);
  await new Promise((r) => s.once('connect', r));
  const d = new FrameDecoder([FrameType.RESPONSE, FrameType.EVENT, FrameType.DATA, FrameType.CREDIT]);
  const queue: Frame[] = [];
  let wake: (() => void) | undefined;
  s.on('data', (chunk: Buffer) => { queue.push(...d.push(chunk)); wake?.(); });
  const closed = new Promise<void>((r) => s.once('close', () => r()));
  return {
    s, closed,
    async next() {
      while (queue.length === 0) await Promise.race([new Promise<void>((r) => { wake = r; }), closed.then(() => { throw new Error('closed'); })]);
      return queue.shift()!;
    },
  };
}

const request = (id: number, method: string, params: unknown) => encodeJsonFrame(FrameType.REQUEST, { id, method, params });

let agent: TestAgent;
before(async () => { agent = await startAgent(); });
after(async () => { await agent.stop(); });

test('agent: unknown method and wrong-typed params get EINVAL; the connection stays usable', { timeout: 60_000 }, async () => {
  const r = await rawConnect(agent.sock);
  r.s.write(request(1, 'frobnicate', {}));
  assert.deepEqual(parseJsonPayload((await r.next()).payload), { id: 1, error: { code: 'EINVAL', message: 'unknown method frobnicate' } });
  r.s.write(request(2, 'exec', { argv: 'ls', env: {}, cwd: '/', uid: 0, gid: 0, stdin: false }));
  const e2 = parseJsonPayload((await r.next()).payload) as { error: { code: string; message: string } };
  assert.equal(e2.error.code, 'EINVAL');
  assert.match(e2.error.message, /exec params.argv: expected an array/);
  r.s.write(request(3, 'ping', { extra: true }));
  assert.match((parseJsonPayload((await r.next()).payload) as { error: { message: string } }).error.message, /unknown field/);
  r.s.write(request(4, 'ping', {}));
  const pong = parseJsonPayload((await r.next()).payload) as { id: number; result: { pid: number } };
  assert.equal(pong.id, 4);
  assert.equal(pong.result.pid, agent.child.pid);
  r.s.destroy();
});

async function expectDropped(bytes: Buffer, why: RegExp): Promise<void> {
  const r = await rawConnect(agent.sock);
  r.s.write(bytes);
  const ev = parseJsonPayload((await r.next()).payload) as { event: string; code: string; message: string };
  assert.equal(ev.event, 'error');
  assert.equal(ev.code, 'EPROTO');
  assert.match(ev.message, why);
  await r.closed;
  const c = await agent.connect(); // the agent itself carries on
  await c.ping();
  c.close();
}

test('agent: an oversized frame drops the connection, not the agent', { timeout: 60_000 }, async () => {
  const header = Buffer.alloc(5);
  header.writeUInt32BE(0x7fffffff, 0);
  header.writeUInt8(FrameType.REQUEST, 4);
  await expectDropped(header, /frame length/);
});

test('agent: garbage bytes, bad JSON, bad envelopes and wrong-way frames drop the connection', { timeout: 60_000 }, async () => {
  await expectDropped(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), /frame length|frame type/);
  await expectDropped(encodeFrame(FrameType.REQUEST, Buffer.from('{not json')), /not valid JSON/);
  await expectDropped(encodeFrame(FrameType.REQUEST, Buffer.from([0xff, 0xfe])), /not valid JSON/);
  await expectDropped(encodeJsonFrame(FrameType.REQUEST, { id: 'x', method: 'ping' }), /request.id/);
  await expectDropped(encodeJsonFrame(FrameType.RESPONSE, { id: 1, result: {} }), /frame type 2/);
  await expectDropped(encodeDataFrame(1, 1, Buffer.from('x')), /only stdin/);
  await expectDropped(encodeFrame(FrameType.DATA, Buffer.from([0, 0, 0, 1, 7])), /fd 7/);
});

test('agent: stdin beyond the window or to a process without stdin is a protocol error', { timeout: 60_000 }, async () => {
  const c = await agent.connect();
  const p = await c.exec(execParams(['sleep', '5']));
  c.close();
  const r = await rawConnect(agent.sock);
  r.s.write(request(1, 'exec', execParams(['sleep', '5'])));
  const { result } = parseJsonPayload((await r.next()).payload) as { result: { pid: number } };
  r.s.write(encodeDataFrame(result.pid, 0, Buffer.from('x')));
  const ev = parseJsonPayload((await r.next()).payload) as { event: string; message: string };
  assert.equal(ev.event, 'error');
  assert.match(ev.message, /stdin of \d+ is not open/);
  await r.closed;
  const k = await agent.connect();
  await k.signal('KILL', { pid: p.pid });
  await k.signal('KILL', { pid: result.pid });
  k.close();
});

test('client: refuses a symlink, a regular file or nothing in place of the socket', { timeout: 60_000 }, async () => {
  const dir = tempDir();
  try {
    const link = path.join(dir, 'agent.sock');
    fs.symlinkSync(agent.sock, link);
    await assert.rejects(AgentClient.connectSocket(link), (e) => isHutchError(e, 'EPERM') && /not a socket/.test(e.message) && e.path === link);
    const file = path.join(dir, 'file.sock');
    fs.writeFileSync(file, '');
    await assert.rejects(AgentClient.connectSocket(file), (e) => isHutchError(e, 'EPERM'));
    await assert.rejects(AgentClient.connectSocket(path.join(dir, 'none.sock')), (e) => isHutchError(e, 'ENOTFOUND'));
    // A symlink in a parent directory is the host's own layout and is followed; only the last component is checked.
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('socket paths longer than sun_path work for both agent and client', { timeout: 60_000 }, async () => {
  const dir = tempDir();
  const deep = path.join(dir, 'd'.repeat(100), 'e'.repeat(60));
  fs.mkdirSync(deep, { recursive: true });
  const sock = path.join(deep, 'agent.sock');
  assert.ok(Buffer.byteLength(sock) > 108);
  const { spawn } = await import('node:child_process');
  const { AGENT_MAIN, AGENT_NODE_FLAGS } = await import('./agent-harness.test.js');
  const child = spawn(process.execPath, [...AGENT_NODE_FLAGS, AGENT_MAIN, '--listen', sock], { stdio: 'ignore' });
  try {
    for (let i = 0; !fs.existsSync(sock); i++) {
      assert.ok(i < 500, 'agent socket appears');
      await new Promise((r) => setTimeout(r, 10));
    }
    // The file appears at bind(), a moment before listen(): a refused connect is tried again.
    let c: AgentClient | undefined;
    for (let i = 0; !c; i++) {
      try {
        c = await AgentClient.connectSocket(sock);
      } catch (e) {
        if (i >= 100 || !/ECONNREFUSED/.test(String(e))) throw e;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    assert.equal((await c.ping()).pid, child.pid);
    c.close();
  } finally {
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
