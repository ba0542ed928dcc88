// One client cannot stall hutchd: requests without a valid token are answered and closed unread,
// a body that stops arriving is cut off, and connections are bounded per TCP client and in total.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { cleanRoot, makeRoot } from './helpers.js';
import { rawRequest, startDaemon, tokenFile, type Daemon } from './server-kit.js';

let root: string;
let daemon: Daemon;
let token: string;
let port: number;
before(async () => {
  root = makeRoot('guard');
  const t = tokenFile(root);
  token = t.token;
  daemon = await startDaemon(root, ['--listen', '127.0.0.1:0', '--token-file', t.file, '--max-client-connections', '8', '--body-timeout', '500ms']);
  port = Number(new URL(daemon.url!).port);
});
after(async () => {
  await daemon?.stop();
  await cleanRoot(root);
});

/** Opens a TCP connection, sends `head`, and resolves with what came back once the server closed it (or after `ms`). */
function exchange(head: string, ms = 5000): Promise<{ text: string; closed: boolean; elapsed: number }> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const c = net.connect(port, '127.0.0.1');
    let text = '';
    const timer = setTimeout(() => { c.destroy(); resolve({ text, closed: false, elapsed: Date.now() - t0 }); }, ms);
    c.on('data', (d) => { text += d.toString(); });
    c.on('error', (e) => { if ((e as NodeJS.ErrnoException).code !== 'ECONNRESET') reject(e); });
    c.on('close', () => { clearTimeout(timer); resolve({ text, closed: true, elapsed: Date.now() - t0 }); });
    c.write(head);
  });
}

const healthz = async () => (await fetch(`${daemon.url}/healthz`)).status;

test('a request without a valid token gets 401 and is closed without its body being read', async () => {
  const big = `PUT /v1/sandboxes/x/files?path=/tmp/f HTTP/1.1\r\nhost: x\r\ncontent-length: ${2 ** 30}\r\n\r\n`;
  // 32 of them, in rounds that stay under the per-client limit (8): none is held open by hutchd.
  const many = [];
  for (let round = 0; round < 4; round++) {
    many.push(...await Promise.all(Array.from({ length: 8 }, (_, i) =>
      exchange(i % 2 ? big : big.replace('\r\n\r\n', '\r\nauthorization: Bearer not-the-token-at-all\r\n\r\n')))));
  }
  for (const r of many) {
    assert.match(r.text, /^HTTP\/1\.1 401 /);
    assert.ok(r.closed, 'the server closed the connection');
    assert.ok(r.elapsed < 4000, `closed after ${r.elapsed} ms`);
  }
  assert.equal(await healthz(), 200);
});

test('a body that stops arriving is cut off', async () => {
  const r = await exchange(`POST /v1/sandboxes HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${token}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{"image":`);
  assert.ok(r.closed, 'the stalled request was cut off');
  assert.ok(r.elapsed < 3000, `cut after ${r.elapsed} ms`);
  assert.equal(await healthz(), 200);
});

test('connections are bounded per client: the one over the limit gets 503, the unix socket still answers', async () => {
  const held: net.Socket[] = [];
  try {
    for (let i = 0; i < 8; i++) {
      const s = net.connect(port, '127.0.0.1');
      await new Promise((resolve) => s.once('connect', resolve));
      held.push(s);
    }
    await new Promise((r) => setTimeout(r, 100));
    const over = await exchange(`GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n`);
    assert.match(over.text, /^HTTP\/1\.1 503 [\s\S]*too many connections from 127\.0\.0\.1/);
    const raw = await rawRequest(daemon.socketPath, 'GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
    assert.match(raw, /^HTTP\/1\.1 200 /);
  } finally {
    for (const s of held) s.destroy();
  }
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(await healthz(), 200, 'a connection is accepted again once the held ones close');
});
