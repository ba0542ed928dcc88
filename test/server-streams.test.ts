// Many clients at once, and clients that go away mid-stream: an exec stream's process is killed,
// an attached process keeps running and can be attached again; the server keeps serving.
import test from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { daemonFixture } from './server-kit.js';
import { Sandbox } from '../src/sdk/index.js';

const fx = daemonFixture('streams');

/** Polls until `check` holds (or fails after `ms`). */
async function eventually(what: string, check: () => Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`${what} did not happen within ${ms} ms`);
}

/** Opens a raw WebSocket to hutchd; `onMessage` is registered before it opens (nothing is missed). */
function socket(p: string, onMessage?: (d: Buffer, binary: boolean) => void): Promise<WebSocket> {
  const ws = new WebSocket(`ws+unix://${fx.daemon.socketPath}:${p}`);
  if (onMessage) ws.on('message', onMessage);
  return new Promise((resolve, reject) => { ws.once('open', () => resolve(ws)); ws.once('error', reject); });
}

test('20 concurrent execs across 5 sandboxes, one request and streamed', async () => {
  const boxes = await Promise.all(Array.from({ length: 5 }, () => Sandbox.create({ transport: fx.t })));
  try {
    const runs = boxes.flatMap((sb, i) => Array.from({ length: 4 }, (_, j) => {
      const word = `box${i}-run${j}`;
      const cmd = `for k in 1 2 3; do echo ${word}-$k; done; echo ${word} >&2`;
      const streamed = j % 2 === 1;
      return (streamed ? sb.exec(cmd, { onStdout: () => undefined }) : sb.exec(cmd)).then((r) => ({ r, word }));
    }));
    const results = await Promise.all(runs);
    assert.equal(results.length, 20);
    for (const { r, word } of results) {
      assert.equal(r.exitCode, 0);
      assert.equal(r.stdout, `${word}-1\n${word}-2\n${word}-3\n`);
      assert.equal(r.stderr, `${word}\n`);
    }
  } finally {
    await Promise.all(boxes.map((b) => b.kill()));
  }
});

test('a client that disconnects mid-stream: its exec is killed, hutchd keeps serving', async () => {
  const sb = await Sandbox.create({ transport: fx.t });
  try {
    const ws = await socket(`/v1/sandboxes/${sb.id}/exec`);
    let received = 0;
    const gotOutput = new Promise<void>((resolve) => ws.on('message', (d: Buffer, binary: boolean) => {
      if (binary) received += d.length - 1;
      if (received > 100_000) resolve();
    }));
    ws.send(JSON.stringify({ type: 'start', cmd: ['sh', '-c', 'exec yes streaming-forever'] }));
    await gotOutput;
    ws.terminate(); // no close handshake: as if the client died
    await eventually('the stream\'s process being killed', async () => !(await sb.processes.ps()).some((p) => p.comm === 'yes'));
    assert.equal((await sb.exec('echo still here')).stdout, 'still here\n');

    // The same through the SDK, with the loss on the client side noticed as an error of wait().
    const p = await sb.spawn('yes');
    const it = p[Symbol.asyncIterator]();
    await it.next();
    const failed = p.wait().then(() => 'exited', (e: Error) => e.name);
    (p as unknown as { ws: WebSocket }).ws.terminate();
    assert.equal(await failed, 'HutchApiError');
    await eventually('the SDK stream\'s process being killed', async () => !(await sb.processes.ps()).some((x) => x.comm === 'yes'));
  } finally {
    await sb.kill();
  }
});

test('attach: held output first, detach leaves it running, attach again, wait', async () => {
  const sb = await Sandbox.create({ transport: fx.t });
  try {
    const { pid } = await fx.t.json<{ pid: number }>({ method: 'POST', path: `/v1/sandboxes/${sb.id}/processes`, json: { cmd: 'echo early; read line; echo got $line; exit 4', stdin: true } });
    await new Promise((r) => setTimeout(r, 300));
    let out = '';
    let sawEarly!: (s: string) => void;
    const firstText = new Promise<string>((resolve) => { sawEarly = resolve; });
    const first = await socket(`/v1/sandboxes/${sb.id}/processes/${pid}/attach`, (d, binary) => {
      if (binary) out += d.subarray(1).toString();
      if (out.includes('early')) sawEarly(out);
    });
    assert.equal(await firstText, 'early\n');
    // A second client at the same time is refused.
    await assert.rejects(socket(`/v1/sandboxes/${sb.id}/processes/${pid}/attach`), /409/);
    first.terminate();
    await new Promise((r) => setTimeout(r, 300));
    assert.ok((await sb.processes.ps()).some((p) => p.pid === pid), 'still running after its client left');
    const messages: string[] = [];
    const second = await socket(`/v1/sandboxes/${sb.id}/processes/${pid}/attach`, (d, binary) => messages.push(binary ? `${d[0]}:${d.subarray(1).toString()}` : d.toString()));
    const closed = new Promise<void>((resolve) => second.on('close', () => resolve()));
    second.send(Buffer.from('hello\n'));
    const waited = fx.t.json<{ exitCode: number }>({ method: 'GET', path: `/v1/sandboxes/${sb.id}/processes/${pid}/wait` });
    await closed;
    assert.deepEqual(messages, [JSON.stringify({ type: 'started', pid, tty: false }), '1:got hello\n', JSON.stringify({ type: 'exit', exitCode: 4, signal: null })]);
    assert.equal((await waited).exitCode, 4);
    // Messages that are not the protocol close the stream with an error.
    const bad = await socket(`/v1/sandboxes/${sb.id}/exec`);
    const reply = new Promise<string>((resolve) => bad.once('message', (d: Buffer) => resolve(d.toString())));
    bad.send('not json');
    assert.match(await reply, /"code":"EINVAL"/);
    bad.terminate();
  } finally {
    await sb.kill();
  }
});
