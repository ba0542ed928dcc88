// The client against a fake, misbehaving agent: everything unexpected is EPROTO and drops the
// connection; calls time out; late answers to timed-out calls are tolerated.
import test from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { isHutchError } from '../src/errors.js';
import { AgentClient } from '../src/agent/index.js';
import {
  encodeDataFrame, encodeFrame, encodeJsonFrame, FrameDecoder, FrameType, parseJsonPayload,
} from '../src/agent/protocol.js';
import { tempDir } from './agent-harness.test.js';

interface Req { id: number; method: string; params: unknown }

/** A fake agent: `reply` decides what bytes answer each request. */
async function fakeAgent(reply: (req: Req, sock: net.Socket) => void): Promise<{ client: AgentClient; done(): Promise<void> }> {
  const dir = tempDir();
  const sockPath = path.join(dir, 'agent.sock');
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    const d = new FrameDecoder([FrameType.REQUEST, FrameType.DATA, FrameType.CREDIT]);
    s.on('data', (chunk: Buffer) => {
      for (const f of d.push(chunk)) if (f.type === FrameType.REQUEST) reply(parseJsonPayload(f.payload) as Req, s);
    });
    s.on('error', () => undefined); // the client may drop the connection mid-write: expected here
  });
  await new Promise<void>((r) => server.listen(sockPath, r));
  const client = await AgentClient.connectSocket(sockPath);
  return {
    client,
    async done() {
      client.close();
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

const respond = (s: net.Socket, msg: unknown) => s.write(encodeJsonFrame(FrameType.RESPONSE, msg));

async function expectBroken(reply: (req: Req, s: net.Socket) => void, why: RegExp, call: (c: AgentClient) => Promise<unknown> = (c) => c.ping()): Promise<void> {
  const f = await fakeAgent(reply);
  try {
    const closed = new Promise<unknown>((r) => f.client.onClose(r));
    await assert.rejects(call(f.client), (e) => isHutchError(e, 'EPROTO') && why.test(e.message));
    const reason = await closed;
    assert.ok(isHutchError(reason, 'EPROTO'));
    assert.equal(f.client.closed, true);
    await assert.rejects(f.client.ping(), (e) => isHutchError(e, 'ESTATE'));
  } finally {
    await f.done();
  }
}

test('a malformed result is EPROTO and closes the connection', { timeout: 60_000 }, async () => {
  await expectBroken((r, s) => respond(s, { id: r.id, result: { version: '1', pid: 1, uptimeMs: 0 } }), /malformed ping result.*version/);
  await expectBroken((r, s) => respond(s, { id: r.id, result: { version: 1, pid: 1, uptimeMs: 0, extra: 'x' } }), /unknown field/);
  await expectBroken((r, s) => respond(s, { id: r.id }), /expected \{id, result\} \| \{id, error\}/);
  await expectBroken((r, s) => respond(s, { id: r.id, error: { code: 'ENOPE', message: 'x' } }), /expected one of/);
});

test('an answer to a call never made, an oversized frame, or garbage is EPROTO', { timeout: 60_000 }, async () => {
  await expectBroken((r, s) => respond(s, { id: r.id + 1000, result: {} }), /unknown call id/);
  await expectBroken((_r, s) => { const h = Buffer.alloc(5); h.writeUInt32BE(0x7fffffff); s.write(h); }, /frame length/);
  await expectBroken((_r, s) => s.write('garbage garbage garbage'), /frame length|frame type/);
  await expectBroken((_r, s) => s.write(encodeFrame(FrameType.REQUEST, Buffer.from('{}'))), /frame type 1/);
  await expectBroken((_r, s) => s.write(encodeDataFrame(42, 1, Buffer.from('x'))), /unknown process 42/);
});

test('an error event from the agent closes the connection with its code', { timeout: 60_000 }, async () => {
  const f = await fakeAgent((_r, s) => s.write(encodeJsonFrame(FrameType.EVENT, { event: 'error', code: 'EPROTO', message: 'you sent junk' })));
  try {
    await assert.rejects(f.client.ping(), (e) => isHutchError(e, 'EPROTO') && /you sent junk/.test(e.message));
  } finally {
    await f.done();
  }
});

test('process streams: exit before end of output, data after end, or an unsolicited credit are EPROTO', { timeout: 60_000 }, async () => {
  const exec = (c: AgentClient) => c.exec({ argv: ['x'], env: {}, cwd: '/', uid: 0, gid: 0, stdin: false }).then((p) => p.wait());
  const started = (r: Req, s: net.Socket) => respond(s, { id: r.id, result: { pid: 77 } });
  await expectBroken((r, s) => {
    started(r, s);
    s.write(encodeJsonFrame(FrameType.EVENT, { event: 'exit', pid: 77, exitCode: 0, signal: null }));
  }, /before the end of its output/, exec);
  await expectBroken((r, s) => {
    started(r, s);
    s.write(encodeDataFrame(77, 1, Buffer.alloc(0)));
    s.write(encodeDataFrame(77, 1, Buffer.from('late')));
  }, /after its end/, exec);
  await expectBroken((r, s) => {
    started(r, s);
    const credit = Buffer.alloc(9);
    credit.writeUInt32BE(77, 0);
    credit.writeUInt8(0, 4);
    credit.writeUInt32BE(10, 5);
    s.write(encodeFrame(FrameType.CREDIT, credit));
  }, /more than were sent/, exec);
});

test('calls time out; a late answer is tolerated; a late exec is killed', { timeout: 60_000 }, async () => {
  let held: { r: Req; s: net.Socket }[] = [];
  const killed: unknown[] = [];
  const f = await fakeAgent((r, s) => {
    if (r.method === 'signal') {
      killed.push(r.params);
      return respond(s, { id: r.id, result: { delivered: 1 } });
    }
    held.push({ r, s });
  });
  try {
    await assert.rejects(f.client.ping({ timeoutMs: 50 }), (e) => isHutchError(e, 'ETIMEDOUT') && /ping timed out after 50 ms/.test(e.message));
    await assert.rejects(f.client.exec({ argv: ['x'], env: {}, cwd: '/', uid: 0, gid: 0, stdin: false }, { timeoutMs: 50 }), (e) => isHutchError(e, 'ETIMEDOUT'));
    for (const { r, s } of held) respond(s, { id: r.id, result: r.method === 'exec' ? { pid: 5 } : { version: 1, pid: 1, uptimeMs: 1 } });
    held = [];
    for (let i = 0; i < 100 && killed.length === 0; i++) await new Promise((res) => setTimeout(res, 10));
    assert.deepEqual(killed, [{ signal: 'SIGKILL', target: { pid: 5 } }]);
    assert.equal(f.client.closed, false);
  } finally {
    await f.done();
  }
});

test('a directory listing with an entry that is not one name (/, . or .., empty, NUL) is EPROTO', { timeout: 60_000 }, async () => {
  const entry = (name: string) => ({ name, type: 'file', size: 0, mode: 0o644, mtimeMs: 0 });
  for (const bad of ['../etc', 'a/b', '..', '.', '', 'x\0y']) {
    await expectBroken((r, s) => respond(s, { id: r.id, result: { entries: [entry('ok'), entry(bad)], total: 2 } }), /malformed list result.*name/, (c) => c.list('/tmp'));
  }
  // Names with odd but legal characters pass.
  const f = await fakeAgent((r, s) => respond(s, { id: r.id, result: { entries: [entry('...'), entry('a b'), entry('\n')], total: 3 } }));
  try {
    assert.deepEqual((await f.client.list('/tmp')).map((e) => e.name), ['...', 'a b', '\n']);
  } finally {
    await f.done();
  }
});

test('an agent\'s error message reaches the user as one line without control characters', { timeout: 60_000 }, async () => {
  const f = await fakeAgent((r, s) => respond(s, { id: r.id, error: { code: 'ENOTFOUND', message: 'no \x1b[31mfile\x1b[0m\nfake: second line\r\x07', path: '/x' } }));
  try {
    await assert.rejects(f.client.stat('/x'), (e) => isHutchError(e, 'ENOTFOUND') && e.message === 'no  [31mfile [0m fake: second line ' && !/[\x00-\x1f]/.test(e.message));
    assert.equal(f.client.closed, false, 'an error answer is not a protocol error');
  } finally {
    await f.done();
  }
});

test('a late exec answer naming a process already running is EPROTO: the running one is not taken over', { timeout: 60_000 }, async () => {
  let late: { r: Req; s: net.Socket } | undefined;
  let execs = 0;
  const f = await fakeAgent((r, s) => {
    if (r.method !== 'exec') return;
    if (++execs === 1) return respond(s, { id: r.id, result: { pid: 9 } });
    late = { r, s };
  });
  try {
    const live = await f.client.exec({ argv: ['x'], env: {}, cwd: '/', uid: 0, gid: 0, stdin: false });
    assert.equal(live.pid, 9);
    const closed = new Promise<unknown>((r) => f.client.onClose(r));
    await assert.rejects(f.client.exec({ argv: ['y'], env: {}, cwd: '/', uid: 0, gid: 0, stdin: false }, { timeoutMs: 50 }), (e) => isHutchError(e, 'ETIMEDOUT'));
    respond(late!.s, { id: late!.r.id, result: { pid: 9 } });
    const reason = await closed;
    assert.ok(isHutchError(reason, 'EPROTO') && /pid 9, a process already running/.test(reason.message), String(reason));
    await assert.rejects(live.wait(), (e) => isHutchError(e, 'EPROTO'), 'the running process hears that the connection broke');
  } finally {
    await f.done();
  }
});

test('close() fails calls in flight with ESTATE and notifies onClose with null', { timeout: 60_000 }, async () => {
  const f = await fakeAgent(() => undefined);
  try {
    const pending = f.client.ping();
    const reason = new Promise((r) => f.client.onClose(r));
    f.client.close();
    await assert.rejects(pending, (e) => isHutchError(e, 'ESTATE'));
    assert.equal(await reason, null);
  } finally {
    await f.done();
  }
});
