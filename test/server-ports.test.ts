// The port forward through hutchd (/v1/sandboxes/{id}/ports/{port}/…) against a real hutchd on TCP
// with a token: a busybox httpd and a WebSocket echo server listen on the loopback of a sandbox of
// the default network mode (none: loopback only), and are reached through the agent.
import test, { describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import WebSocket from 'ws';
import { cleanRoot, cleanUpAll, makeRoot, testPlatforms } from './helpers.js';
import { startDaemon, tokenFile, type Daemon } from './server-kit.js';
import { Sandbox, HutchApiError, NotFoundError, Transport } from '../src/sdk/index.js';

interface Answer { status: number; headers: http.IncomingHttpHeaders; body: Buffer }

/** One request to hutchd's TCP address; `token` null sends none. */
function call(base: string, method: string, path: string, token: string | null, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = token === null ? {} : { authorization: `Bearer ${token}` };
    if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
    const req = http.request(`${base}${path}`, { method, headers, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A WebSocket echo server for the sandbox's node (no npm module there: the handshake and frames by hand). */
const WS_ECHO = `
const http = require('http'), crypto = require('crypto');
const server = http.createServer((q, s) => { s.writeHead(426); s.end('upgrade required'); });
server.on('upgrade', (req, sock) => {
  const accept = crypto.createHash('sha1').update(req.headers['sec-websocket-key'] + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
  sock.write('HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\nSec-WebSocket-Accept: ' + accept + '\\r\\nX-Path: ' + req.url + '\\r\\n\\r\\n');
  let buf = Buffer.alloc(0);
  sock.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 6) {
      const op = buf[0] & 15; let len = buf[1] & 127, at = 2;
      if (len === 126) { len = buf.readUInt16BE(2); at = 4; }
      if (buf.length < at + 4 + len) return;
      const mask = buf.subarray(at, at + 4), data = Buffer.from(buf.subarray(at + 4, at + 4 + len));
      for (let i = 0; i < data.length; i++) data[i] ^= mask[i % 4];
      buf = buf.subarray(at + 4 + len);
      if (op === 8) { sock.end(Buffer.from([0x88, 0])); return; }
      const head = data.length < 126 ? Buffer.from([0x80 | op, data.length]) : Buffer.from([0x80 | op, 126, data.length >> 8, data.length & 255]);
      sock.write(Buffer.concat([head, data]));
    }
  });
});
server.listen(8081, '127.0.0.1');
`;

/** The CGI of busybox httpd that answers with what it was sent. */
const ECHO_CGI = '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n"\necho "$REQUEST_METHOD $QUERY_STRING"\ncat\n';

for (const { name: platform, skip } of testPlatforms()) describe(`on ${platform}`, { ...(skip ? { skip } : {}) }, () => {
  const root = makeRoot(`ports-${platform}`);
  const { file, token } = tokenFile(root);
  let daemon: Daemon | undefined;
  let t: Transport | undefined;
  let sb: Sandbox | undefined;
  let base = '';
  const big = randomBytes(3 * 1024 * 1024 + 17);

  test.before(async () => {
    daemon = await startDaemon(root, ['--platform', platform, '--listen', '127.0.0.1:0', '--token-file', file]);
    base = daemon.url!;
    t = new Transport({ baseUrl: base, token });
    sb = await Sandbox.create({ transport: t });
    await sb.files.write('/www/index.html', '<h1>hello from the sandbox</h1>\n', { parents: true });
    await sb.files.write('/www/data.json', '{"answer":42}');
    await sb.files.write('/www/big.bin', big);
    await sb.files.write('/www/cgi-bin/echo', ECHO_CGI, { parents: true, mode: 0o755 });
    await sb.files.write('/tmp/ws-echo.js', WS_ECHO);
    // Both servers go to the background with their output in files: exec returns at once.
    await sb.exec('busybox httpd -p 127.0.0.1:8080 -h /www');
    const r = await sb.exec('/.hutch/lib/ld-linux-x86-64.so.2 --library-path /.hutch/lib /.hutch/node /tmp/ws-echo.js >/tmp/ws.log 2>&1 &');
    assert.equal(r.exitCode, 0);
    for (let i = 0; ; i++) {
      const a = await call(base, 'GET', `/v1/sandboxes/${sb.id}/ports/8081/`, token);
      if (a.status === 426) break;
      if (i > 100) throw new Error(`the servers did not start: ${a.status} ${a.body.toString()} ${(await sb.exec('cat /tmp/ws.log')).stdout}`);
      await new Promise((res) => setTimeout(res, 100));
    }
  });

  test.after(async () => {
    await cleanUpAll(() => sb?.kill(), () => t?.close(), () => daemon?.stop(), () => cleanRoot(root));
  });

  test('GET, POST with a body and query, status and headers of the server in the sandbox', async () => {
    const route = `/v1/sandboxes/${sb!.id}/ports/8080`;
    const page = await call(base, 'GET', `${route}/index.html`, token);
    assert.equal(page.status, 200);
    assert.equal(page.body.toString(), '<h1>hello from the sandbox</h1>\n');
    assert.match(String(page.headers['via']), /hutchd/);
    // By name too, and the sandbox's server never sees hutchd's token.
    const byName = await call(base, 'GET', `/v1/sandboxes/${sb!.info.name}/ports/8080/index.html`, token);
    assert.equal(byName.status, 200);
    const posted = await call(base, 'POST', `${route}/cgi-bin/echo?x=1&y=two`, token, 'a body\nof two lines');
    assert.equal(posted.status, 200);
    assert.equal(posted.body.toString(), 'POST x=1&y=two\na body\nof two lines');
    const env = await call(base, 'GET', `${route}/cgi-bin/echo?q`, token);
    assert.equal(env.body.toString(), 'GET q\n');
    const missing = await call(base, 'GET', `${route}/no-such-file`, token);
    assert.equal(missing.status, 404);
    assert.match(String(missing.headers['via']), /hutchd/);
    const bare = await call(base, 'GET', `${route}?a=b`, token);
    assert.equal(bare.status, 308);
    assert.equal(bare.headers['location'], `${route}/?a=b`);
    const bigOne = await call(base, 'GET', `${route}/big.bin`, token);
    assert.equal(bigOne.status, 200);
    assert.equal(createHash('sha256').update(bigOne.body).digest('hex'), createHash('sha256').update(big).digest('hex'));
  });

  test('the SDK: getHost and fetch', async () => {
    assert.equal(sb!.getHost(8080), `${base}/v1/sandboxes/${sb!.id}/ports/8080`);
    const viaFetch = await fetch(`${sb!.getHost(8080)}/index.html`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(viaFetch.status, 200);
    assert.equal(await viaFetch.text(), '<h1>hello from the sandbox</h1>\n');
    const page = await sb!.fetch(8080, '/index.html');
    assert.equal(page.ok, true);
    assert.equal(page.headers.get('content-type'), 'text/html');
    assert.equal(await page.text(), '<h1>hello from the sandbox</h1>\n');
    assert.deepEqual(await (await sb!.fetch(8080, 'data.json')).json(), { answer: 42 });
    const posted = await sb!.fetch(8080, '/cgi-bin/echo?k=v', { method: 'POST', body: Buffer.from('bytes') });
    assert.equal(Buffer.from(await posted.arrayBuffer()).toString(), 'POST k=v\nbytes');
    const missing = await sb!.fetch(8080, '/nope');
    assert.equal(missing.status, 404);
    assert.equal(missing.ok, false);
    await assert.rejects(sb!.fetch(9, '/'), (e: unknown) => e instanceof HutchApiError && e.code === 'ENETWORK' && e.status === 502);
    const unix = new Transport({ socketPath: daemon!.socketPath, token });
    try {
      const onSocket = await Sandbox.connect(sb!.id, { transport: unix });
      assert.equal(onSocket.getHost(8080), `http+unix://${daemon!.socketPath}:/v1/sandboxes/${sb!.id}/ports/8080`);
      assert.equal(await (await onSocket.fetch(8080, '/index.html')).text(), '<h1>hello from the sandbox</h1>\n');
    } finally {
      unix.close();
    }
  });

  test('refusals: no token 401, unknown sandbox 404, nothing listening 502 in one line, bad ports 400', async () => {
    const route = `/v1/sandboxes/${sb!.id}/ports`;
    const noToken = await call(base, 'GET', `${route}/8080/index.html`, null);
    assert.equal(noToken.status, 401);
    assert.equal((JSON.parse(noToken.body.toString()) as { error: { code: string } }).error.code, 'EAUTH');
    assert.equal((await call(base, 'GET', `${route}/8080/index.html`, 'x'.repeat(32))).status, 401);
    const unknown = await call(base, 'GET', '/v1/sandboxes/no-such-sandbox/ports/8080/', token);
    assert.equal(unknown.status, 404);
    assert.equal((JSON.parse(unknown.body.toString()) as { error: { code: string } }).error.code, 'ENOTFOUND');
    const nobody = await call(base, 'GET', `${route}/8099/x`, token);
    assert.equal(nobody.status, 502);
    const text = nobody.body.toString();
    assert.ok(!text.includes('\n'), text);
    const err = (JSON.parse(text) as { error: { code: string; message: string } }).error;
    assert.equal(err.code, 'ENETWORK');
    assert.match(err.message, new RegExp(`^sandbox ${sb!.id}: nothing listens on port 8099`));
    for (const bad of ['0', '70000', 'abc', '080', '-1']) {
      const a = await call(base, 'GET', `${route}/${bad}/`, token);
      assert.equal(a.status, 400, `port ${bad}`);
      assert.equal((JSON.parse(a.body.toString()) as { error: { code: string } }).error.code, 'EINVAL');
    }
  });

  test('a WebSocket through the forward, and many requests at once', async () => {
    const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/v1/sandboxes/${sb!.id}/ports/8081/chat?room=1`, { headers: { authorization: `Bearer ${token}` } });
    let path = '';
    ws.once('upgrade', (res) => { path = String(res.headers['x-path']); });
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    assert.equal(path, '/chat?room=1');
    const got: string[] = [];
    const all = new Promise<void>((resolve) => ws.on('message', (m) => { got.push(String(m)); if (got.length === 3) resolve(); }));
    for (const m of ['one', 'two', 'x'.repeat(5000)]) ws.send(m);
    await all;
    assert.deepEqual(got, ['one', 'two', 'x'.repeat(5000)]);
    ws.close();
    await new Promise((r) => ws.once('close', r));
    // A refused upgrade: no token.
    const refused = new WebSocket(`${base.replace(/^http/, 'ws')}/v1/sandboxes/${sb!.id}/ports/8081/`);
    refused.on('error', () => undefined); // the abort below: expected
    const status = await new Promise<number>((resolve) => refused.once('unexpected-response', (q, res) => { resolve(res.statusCode ?? 0); res.resume(); q.destroy(); }));
    assert.equal(status, 401);
    const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => sb!.fetch(8080, i % 2 ? '/index.html' : '/data.json').then((r) => r.text())));
    answers.forEach((a, i) => assert.equal(a, i % 2 ? '<h1>hello from the sandbox</h1>\n' : '{"answer":42}'));
  });

  test('a server that closes without answering is 502; a stopped sandbox is 409', async () => {
    // nc takes one connection and closes it at once (its program, true, exits).
    await sb!.exec('busybox nc -l -p 8082 -e true </dev/null >/dev/null 2>&1 &');
    let a: Answer | undefined;
    for (let i = 0; i < 50; i++) {
      a = await call(base, 'GET', `/v1/sandboxes/${sb!.id}/ports/8082/`, token);
      if (!/nothing listens/.test(a.body.toString())) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(a!.status, 502);
    assert.equal((JSON.parse(a!.body.toString()) as { error: { code: string } }).error.code, 'ENETWORK');
    assert.match(a!.body.toString(), /port 8082 of sandbox .* did not answer/);
    // One that answers garbage instead of HTTP.
    await sb!.files.write('/tmp/garbage.sh', '#!/bin/sh\nprintf "NOT HTTP\\r\\n\\r\\n"\nsleep 1\n', { mode: 0o755 });
    await sb!.exec('busybox nc -l -p 8083 -e /tmp/garbage.sh </dev/null >/dev/null 2>&1 &');
    for (let i = 0; i < 50; i++) {
      a = await call(base, 'GET', `/v1/sandboxes/${sb!.id}/ports/8083/`, token);
      if (!/nothing listens/.test(a.body.toString())) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(a!.status, 502, a!.body.toString());
    assert.match(a!.body.toString(), /"code":"ENETWORK".*port 8083 of sandbox .* did not answer/);
    const done = await Sandbox.create({ transport: t!, cmd: 'true' });
    try {
      for (let i = 0; i < 100 && (await done.refresh()).status !== 'stopped'; i++) await new Promise((res) => setTimeout(res, 100));
      const stopped = await call(base, 'GET', `/v1/sandboxes/${done.id}/ports/8080/`, token);
      assert.equal(stopped.status, 409);
      assert.equal((JSON.parse(stopped.body.toString()) as { error: { code: string } }).error.code, 'ESTATE');
      await assert.rejects(done.fetch(8080, '/'), (e: unknown) => e instanceof HutchApiError && e.code === 'ESTATE' && e.status === 409);
    } finally {
      await done.kill();
    }
    await assert.rejects(done.fetch(8080, '/'), NotFoundError);
  });

  test('a paused sandbox is refused (409), and works again once resumed', async () => {
    await sb!.pause();
    try {
      const a = await call(base, 'GET', `/v1/sandboxes/${sb!.id}/ports/8080/index.html`, token);
      assert.equal(a.status, 409);
      assert.equal((JSON.parse(a.body.toString()) as { error: { code: string } }).error.code, 'ESTATE');
    } finally {
      await sb!.resume();
    }
    assert.equal((await sb!.fetch(8080, '/index.html')).status, 200);
  });
});
