// E2B's envd services through a real `hutchd --e2b` on TCP: the sandbox is made with the control
// plane (POST /v2/sandboxes, X-API-KEY) and the envd calls are Connect-protocol requests carrying
// E2b-Sandbox-Id, E2b-Sandbox-Port and its envdAccessToken (X-Access-Token), through the dispatcher.
// Processes (streams, stdin, pty, background, Connect, signals, List), the filesystem (stat, list,
// mkdir, move, remove, watch), /files and the errors.
import test from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { gzipSync, gunzipSync } from 'node:zlib';
import { cleanRoot, makeRoot } from './helpers.js';
import { startDaemon, tokenFile, type Daemon } from './server-kit.js';
import { envelope, parseEnvelopes } from '../src/server/e2b/connect.js';

const root = makeRoot('e2benvd');
let daemon: Daemon | undefined;
let url!: URL;
let sandboxId = '';
let accessToken = '';
let apiKey = '';
test.before(async () => {
  const tf = tokenFile(root);
  apiKey = tf.token;
  daemon = await startDaemon(root, ['--listen', '127.0.0.1:0', '--token-file', tf.file, '--e2b']);
  assert.ok(daemon.url, `hutchd gave no TCP address: ${daemon.stderr()}`);
  url = new URL(daemon.url);
  const made = await fetch(`${daemon.url}/v2/sandboxes`, { method: 'POST', headers: { 'x-api-key': tf.token, 'content-type': 'application/json' }, body: JSON.stringify({ templateID: 'base', timeout: 300 }) });
  assert.equal(made.status, 201, await made.clone().text());
  const body = (await made.json()) as { sandboxID: string; envdAccessToken: string };
  sandboxId = body.sandboxID;
  accessToken = body.envdAccessToken;
  assert.ok(sandboxId && accessToken, JSON.stringify(body));
});
test.after(async () => {
  if (daemon && sandboxId) await fetch(`${daemon.url}/sandboxes/${sandboxId}`, { method: 'DELETE', headers: { 'x-api-key': apiKey } }).catch(() => undefined);
  await daemon?.stop();
  await cleanRoot(root);
});

/** What every envd call carries: which sandbox, envd's port, the sandbox's access token. */
const envdHeaders = (): Record<string, string> => ({ 'e2b-sandbox-id': sandboxId, 'e2b-sandbox-port': '49983', 'x-access-token': accessToken });
const target = () => ({ host: url.hostname, port: Number(url.port) });

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** One HTTP exchange with hutchd for the sandbox. */
function request(method: string, path: string, headers: Record<string, string>, body?: Buffer): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ ...target(), method, path, headers: { ...envdHeaders(), ...headers } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(parts) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A unary Connect call. */
async function unary(path: string, message: object): Promise<{ status: number; json: Json }> {
  const r = await request('POST', path, { 'content-type': 'application/json' }, Buffer.from(JSON.stringify(message)));
  return { status: r.status, json: JSON.parse(r.body.toString()) as Json };
}

/** A server-streaming call, read as it comes: its messages, the end message, and a way to hang up. */
function stream(path: string, message: object): { messages: Json[]; end: Promise<Json>; next: (pred: (m: Json) => boolean, ms?: number) => Promise<Json>; hangUp: () => void } {
  const messages: Json[] = [];
  const waiters: (() => void)[] = [];
  let req!: http.ClientRequest;
  const end = new Promise<Json>((resolve, reject) => {
    req = http.request({ ...target(), method: 'POST', path, headers: { ...envdHeaders(), 'content-type': 'application/connect+json', 'keepalive-ping-interval': '50' } }, (res) => {
      assert.equal(res.headers['content-type'], 'application/connect+json');
      let buf = Buffer.alloc(0);
      res.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        while (buf.length >= 5 && buf.length >= 5 + buf.readUInt32BE(1)) {
          const len = 5 + buf.readUInt32BE(1);
          const [m] = parseEnvelopes(buf.subarray(0, len));
          buf = buf.subarray(len);
          if (m!.flags & 2) resolve(m!.message);
          else messages.push(m!.message);
          for (const w of waiters.splice(0)) w();
        }
      });
      res.on('close', () => reject(new Error('stream closed without an end message')));
    });
    req.on('error', reject);
    req.end(envelope(0, message));
  });
  end.catch(() => undefined);
  const next = async (pred: (m: Json) => boolean, ms = 10_000): Promise<Json> => {
    const deadline = Date.now() + ms;
    for (;;) {
      const m = messages.find(pred);
      if (m) return m;
      if (Date.now() > deadline) throw new Error(`no such message in ${JSON.stringify(messages).slice(0, 500)}`);
      await new Promise<void>((resolve) => { waiters.push(resolve); setTimeout(resolve, 100); });
    }
  };
  return { messages, end, next, hangUp: () => req.destroy() };
}

const text = (msgs: Json[], key: string) => msgs.map((m) => m['event']?.['data']?.[key]).filter(Boolean).map((b: string) => Buffer.from(b, 'base64').toString()).join('');
const b64 = (s: string) => Buffer.from(s).toString('base64');
const sh = (cmd: string, extra: object = {}) => ({ process: { cmd: '/bin/bash', args: ['-l', '-c', cmd] }, stdin: false, ...extra });

test('Start streams start, stdout, stderr and the exit code (bash -l -c runs as sh -c on busybox)', async () => {
  const s = stream('/process.Process/Start', sh('echo out; echo err >&2; exit 3'));
  assert.deepEqual(await s.end, {});
  assert.ok(s.messages[0]!['event']['start']['pid'] > 0);
  assert.equal(text(s.messages, 'stdout'), 'out\n');
  assert.equal(text(s.messages, 'stderr'), 'err\n');
  const end = s.messages.at(-1)!['event']['end'];
  assert.deepEqual(end, { exitCode: 3, exited: true, status: 'exit status 3' });
  const ok = stream('/process.Process/Start', { process: { cmd: '/bin/sh', args: ['-c', 'echo $FOO; pwd'], envs: { FOO: 'bar' }, cwd: '/tmp' } });
  await ok.end;
  assert.equal(text(ok.messages, 'stdout'), 'bar\n/tmp\n');
  assert.equal(ok.messages.at(-1)!['event']['end']['exitCode'], 0);
});

test('stdin: SendInput and CloseStdin', async () => {
  const s = stream('/process.Process/Start', sh('cat', { stdin: true }));
  const pid = (await s.next((m) => m['event']?.['start']))['event']['start']['pid'] as number;
  assert.deepEqual(await unary('/process.Process/SendInput', { process: { pid }, input: { stdin: b64('hello\n') } }), { status: 200, json: {} });
  assert.equal((await unary('/process.Process/CloseStdin', { process: { pid } })).status, 200);
  await s.end;
  assert.equal(text(s.messages, 'stdout'), 'hello\n');
});

test('pty: output as pty data, Update resizes it', async () => {
  const s = stream('/process.Process/Start', { process: { cmd: '/bin/sh', args: ['-c', 'stty size; read x; stty size'] }, pty: { size: { cols: 80, rows: 24 } } });
  await s.next(() => text(s.messages, 'pty').includes('24 80'));
  const pid = s.messages[0]!['event']['start']['pid'] as number;
  assert.equal((await unary('/process.Process/Update', { process: { pid }, pty: { size: { cols: 100, rows: 30 } } })).status, 200);
  await unary('/process.Process/SendInput', { process: { pid }, input: { pty: b64('\r') } });
  await s.end;
  assert.match(text(s.messages, 'pty'), /30 100/);
});

test('a process outlives its client: List, Connect by tag, SendSignal', async () => {
  const s = stream('/process.Process/Start', { ...sh('i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.2; done'), tag: 'ticker' });
  const pid = (await s.next((m) => m['event']?.['start']))['event']['start']['pid'] as number;
  s.hangUp();
  await new Promise((r) => setTimeout(r, 800));
  const list = await unary('/process.Process/List', {});
  const mine = list.json['processes'].find((p: Json) => p['pid'] === pid);
  assert.equal(mine['tag'], 'ticker');
  assert.deepEqual(mine['config']['args'], ['-l', '-c', 'i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.2; done']);
  const c = stream('/process.Process/Connect', { process: { tag: 'ticker' } });
  assert.equal((await c.next((m) => m['event']?.['start']))['event']['start']['pid'], pid);
  await c.next(() => /tick\d+/.test(text(c.messages, 'stdout')));
  assert.equal((await unary('/process.Process/SendSignal', { process: { pid }, signal: 'SIGNAL_SIGKILL' })).status, 200);
  await c.end;
  assert.deepEqual(c.messages.at(-1)!['event']['end'], { exitCode: -1, exited: false, status: 'signal: killed', error: 'signal: killed' });
  assert.ok(!(await unary('/process.Process/List', {})).json['processes'].some((p: Json) => p['pid'] === pid));
});

test('files: upload (octet-stream, gzip, multipart), download, stat, list, mkdir, move, remove', async () => {
  let r = await request('POST', '/files?path=/tmp/f/a.txt', { 'content-type': 'application/octet-stream' }, Buffer.from('alpha'));
  assert.equal(r.status, 200);
  assert.deepEqual(JSON.parse(r.body.toString()), [{ name: 'a.txt', type: 'file', path: '/tmp/f/a.txt' }]);
  r = await request('POST', '/files?path=rel.txt&username=root', { 'content-type': 'application/octet-stream', 'content-encoding': 'gzip' }, gzipSync('zipped'));
  assert.deepEqual(JSON.parse(r.body.toString()), [{ name: 'rel.txt', type: 'file', path: '/root/rel.txt' }]);
  const form = new FormData();
  form.append('file', new Blob(['one']), '/tmp/f/sub/1.txt');
  form.append('file', new Blob(['two']), '/tmp/f/sub/2.txt');
  const encoded = new Response(form);
  r = await request('POST', '/files', { 'content-type': encoded.headers.get('content-type')! }, Buffer.from(await encoded.arrayBuffer()));
  assert.deepEqual(JSON.parse(r.body.toString()).map((f: Json) => f['path']), ['/tmp/f/sub/1.txt', '/tmp/f/sub/2.txt']);
  assert.equal((await request('GET', '/files?path=/tmp/f/sub/2.txt', {})).body.toString(), 'two');
  assert.equal((await request('GET', '/files?path=rel.txt&username=root', {})).body.toString(), 'zipped');
  const gz = await request('GET', '/files?path=/tmp/f/a.txt', { 'accept-encoding': 'gzip' });
  assert.equal(gz.headers['content-encoding'], 'gzip');
  assert.equal(gunzipSync(gz.body).toString(), 'alpha');

  const st = await unary('/filesystem.Filesystem/Stat', { path: '/tmp/f/a.txt' });
  assert.equal(st.status, 200);
  assert.equal(st.json['entry']['type'], 'FILE_TYPE_FILE');
  assert.equal(st.json['entry']['size'], '5');
  assert.equal(st.json['entry']['owner'], 'root');
  assert.match(st.json['entry']['permissions'], /^-rw/);
  assert.ok(!Number.isNaN(Date.parse(st.json['entry']['modifiedTime'])));
  const one = await unary('/filesystem.Filesystem/ListDir', { path: '/tmp/f', depth: 1 });
  assert.deepEqual(one.json['entries'].map((e: Json) => e['path']).sort(), ['/tmp/f/a.txt', '/tmp/f/sub']);
  const two = await unary('/filesystem.Filesystem/ListDir', { path: '/tmp/f', depth: 2 });
  assert.equal(two.json['entries'].length, 4);
  assert.equal(two.json['entries'].find((e: Json) => e['name'] === 'sub')['type'], 'FILE_TYPE_DIRECTORY');

  const mk = await unary('/filesystem.Filesystem/MakeDir', { path: '/tmp/f/new/deep' });
  assert.equal(mk.json['entry']['path'], '/tmp/f/new/deep');
  assert.equal((await unary('/filesystem.Filesystem/MakeDir', { path: '/tmp/f/new/deep' })).json['code'], 'already_exists');
  const mv = await unary('/filesystem.Filesystem/Move', { source: '/tmp/f/a.txt', destination: '/tmp/f/new/b.txt' });
  assert.equal(mv.json['entry']['path'], '/tmp/f/new/b.txt');
  assert.equal((await request('GET', '/files?path=/tmp/f/new/b.txt', {})).body.toString(), 'alpha');
  assert.equal((await unary('/filesystem.Filesystem/Remove', { path: '/tmp/f/new' })).status, 200);
  const gone = await unary('/filesystem.Filesystem/Stat', { path: '/tmp/f/new' });
  assert.equal(gone.status, 404);
  assert.equal(gone.json['code'], 'not_found');
});

test('WatchDir streams changes, recursively', async () => {
  await unary('/filesystem.Filesystem/MakeDir', { path: '/tmp/w/in' });
  const w = stream('/filesystem.Filesystem/WatchDir', { path: '/tmp/w', recursive: true });
  await w.next((m) => m['start'] !== undefined);
  await request('POST', '/files?path=/tmp/w/in/x.txt', { 'content-type': 'application/octet-stream' }, Buffer.from('x'));
  const ev = await w.next((m) => m['filesystem']?.['name'] === 'in/x.txt');
  assert.equal(ev['filesystem']['type'], 'EVENT_TYPE_CREATE');
  w.hangUp();
});

test('bad input and missing things are Connect errors', async () => {
  assert.deepEqual((await unary('/filesystem.Filesystem/Stat', {})).json['code'], 'invalid_argument');
  assert.equal((await unary('/filesystem.Filesystem/Stat', {})).status, 400);
  assert.equal((await unary('/filesystem.Filesystem/ListDir', { path: '/etc/passwd' })).json['code'], 'invalid_argument');
  assert.equal((await unary('/filesystem.Filesystem/ListDir', { path: '/nope' })).json['code'], 'not_found');
  assert.equal((await unary('/process.Process/SendSignal', { process: { pid: 999999 }, signal: 'SIGNAL_SIGKILL' })).status, 404);
  assert.equal((await unary('/process.Process/SendInput', { process: {}, input: {} })).json['code'], 'invalid_argument');
  const bad = stream('/process.Process/Start', { process: { cmd: '' } });
  assert.equal((await bad.end)['error']['code'], 'invalid_argument');
  const nobody = stream('/process.Process/Connect', { process: { pid: 999999 } });
  assert.equal((await nobody.end)['error']['code'], 'not_found');
  const missing = await request('GET', '/files?path=/nope.txt', {});
  assert.equal(missing.status, 404);
  assert.equal(JSON.parse(missing.body.toString())['code'], 404);
  assert.equal((await request('GET', '/health', {})).status, 204);
  const polled = await unary('/filesystem.Filesystem/CreateWatcher', { path: '/tmp' });
  assert.deepEqual({ status: polled.status, code: polled.json['code'] }, { status: 501, code: 'unimplemented' });
  assert.match(polled.json['message'], /does not implement/);
  assert.equal((await request('GET', '/envs', {})).status, 501);
  assert.equal((await request('GET', '/health', { 'x-access-token': 'forged' })).status, 401);
});
