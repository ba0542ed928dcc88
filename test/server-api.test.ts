// hutchd's HTTP surface: auth (tokens, TCP refused without them), JSON errors for malformed,
// unknown and oversized requests, tar uploads that try to escape, the OpenAPI document, metrics.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Header } from 'tar';
import os from 'node:os';
import { makeRoot, cleanRoot, hutch } from './helpers.js';
import { buildImage, busyboxEntries, dockerArchive } from './image-store-kit.js';
import { daemonFixture, rawRequest, serveFails, startDaemon, tokenFile } from './server-kit.js';
import { AuthError, HutchApiError, Sandbox, Transport } from '../src/sdk/index.js';
import { documentedOperations } from '../src/server/index.js';
import { chooseIdRange } from '../src/server/server.js';
import { hostIdRange, idSlotsInUse, ID_RANGE_SIZE } from '../src/linux/index.js';
import { ID_SLOTS_DIR } from '../src/platform/container/private-ids.js';

const fx = daemonFixture('api', ['--max-upload', '64k']);
const root = fx.root;

/** A request whose error is expected: resolves to [status, code]. */
async function refused(p: Promise<unknown>): Promise<[number, string]> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof HutchApiError, String(e));
    assert.ok(e.message.length > 0 && !e.message.includes('\n'), `one-line message: ${e.message}`);
    return [e.status, e.code];
  }
  assert.fail('the request was expected to fail');
}

test('the socket is 0600; malformed, unknown and oversized requests get JSON errors', async () => {
  assert.equal(fs.statSync(fx.daemon.socketPath).mode & 0o777, 0o600);
  assert.deepEqual(await refused(fx.t.json({ method: 'POST', path: '/v1/sandboxes', body: '{not json', contentType: 'application/json' })), [400, 'EINVAL']);
  assert.deepEqual(await refused(fx.t.json({ method: 'POST', path: '/v1/sandboxes', body: '[1,2]', contentType: 'application/json' })), [400, 'EINVAL']);
  assert.deepEqual(await refused(fx.t.json({ method: 'POST', path: '/v1/sandboxes', json: { imagee: 'busybox' } })), [400, 'EINVAL']);
  assert.deepEqual(await refused(fx.t.json({ method: 'POST', path: '/v1/sandboxes', json: { limits: { memoryBytes: 1024 } } })), [400, 'EINVAL']);
  assert.deepEqual(await refused(fx.t.json({ method: 'POST', path: '/v1/sandboxes', json: { labels: { 'dev.hutch.pool': 'x' } } })), [400, 'EINVAL']);
  assert.deepEqual(await refused(fx.t.json({ method: 'POST', path: '/v1/sandboxes', json: { image: '/etc' } })), [400, 'EINVAL']);
  const badName = await fx.t.json({ method: 'POST', path: '/v1/sandboxes', json: { image: 'Busybox:latest' } }).then(() => null, (e: unknown) => e);
  assert.ok(badName instanceof HutchApiError && badName.status === 400
    && badName.message.endsWith('invalid image reference "Busybox:latest": repository name must be lowercase'), String(badName));
  assert.deepEqual(await refused(fx.t.json({ method: 'POST', path: '/v1/sandboxes', json: { ttlMs: 10 } })), [400, 'EINVAL']);
  assert.deepEqual(await refused(fx.t.json({ method: 'GET', path: '/v1/nothing-here' })), [404, 'ENOTFOUND']);
  assert.deepEqual(await refused(fx.t.json({ method: 'PUT', path: '/v1/sandboxes' })), [405, 'EINVAL']);
  assert.deepEqual(await refused(fx.t.json({ method: 'GET', path: '/v1/sandboxes/no-such-sandbox' })), [404, 'ENOTFOUND']);
  assert.deepEqual(await refused(fx.t.json({ method: 'GET', path: '/v1/sandboxes/x/exec' })), [400, 'EINVAL']);
  assert.deepEqual(await refused(fx.t.json({ method: 'POST', path: '/v1/sandboxes', json: { env: { 'A=B': 'x' } } })), [400, 'EINVAL']);
  assert.deepEqual(await refused(fx.t.json({ method: 'POST', path: '/v1/sandboxes', json: { env: ['A=B'] } })), [400, 'EINVAL']);
  assert.deepEqual(await refused(fx.t.json({ method: 'POST', path: '/v1/sandboxes', json: { name: 'x'.repeat(2 * 1024 * 1024) } })), [413, 'EINVAL']);
  // A body larger than the limit without a content-length (chunked) is cut off too.
  async function* chunked() { for (let i = 0; i < 40; i++) yield Buffer.alloc(64 * 1024, 0x20); }
  assert.deepEqual(await refused(fx.t.json({ method: 'POST', path: '/v1/sandboxes', body: chunked(), contentType: 'application/json' })), [413, 'EINVAL']);
  const garbage = await rawRequest(fx.daemon.socketPath, 'THIS IS NOT HTTP\r\n\r\n');
  assert.match(garbage, /^HTTP\/1\.1 400/);
  assert.match(garbage, /"code":"EINVAL"/);
  // Still serving.
  assert.deepEqual(await fx.t.json({ method: 'GET', path: '/healthz' }), { ok: true });
});

test('uploads: size cap, and tar entries that escape are refused', async () => {
  const sb = await Sandbox.create({ transport: fx.t });
  try {
    const bigFile = Buffer.alloc(100 * 1024, 1);
    assert.deepEqual(await refused(sb.files.write('/tmp/big', bigFile)), [413, 'EINVAL']);
    // A refused or cut upload leaves the file it was to replace whole.
    await sb.files.write('/tmp/keep', 'old content');
    assert.deepEqual(await refused(sb.files.write('/tmp/keep', bigFile)), [413, 'EINVAL']);
    const cut = await rawRequest(fx.daemon.socketPath, `PUT /v1/sandboxes/${sb.id}/files?path=/tmp/keep HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 60000\r\n\r\n${'x'.repeat(30000)}`);
    assert.doesNotMatch(cut, /^HTTP\/1\.1 200/);
    assert.equal(await sb.files.read('/tmp/keep', { encoding: 'utf8' }), 'old content');
    assert.deepEqual(await refused(fx.t.json({ method: 'GET', path: `/v1/sandboxes/${sb.id}/files`, query: { path: 'relative/path' } })), [400, 'EINVAL']);
    const entry = (name: string, body: string, type: 'File' | 'SymbolicLink' | 'Link' | 'FIFO' = 'File', linkpath?: string) => {
      const block = Buffer.alloc(512);
      new Header({ path: name, mode: 0o644, size: type === 'File' ? body.length : 0, type, mtime: new Date(), ...(linkpath ? { linkpath } : {}) }).encode(block, 0);
      const data = type === 'File' ? Buffer.from(body) : Buffer.alloc(0);
      return Buffer.concat([block, data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
    };
    const end = Buffer.alloc(1024);
    await sb.files.mkdir('/work/in', { parents: true });
    assert.deepEqual(await refused(sb.files.upload('/work/in', Buffer.concat([entry('ok.txt', 'fine'), entry('../../escaped.txt', 'bad'), end]))), [403, 'EPERM']);
    assert.equal(await sb.files.exists('/escaped.txt'), false);
    assert.equal(await sb.files.exists('/work/escaped.txt'), false);
    assert.deepEqual(await refused(sb.files.upload('/work/in', Buffer.concat([entry('/abs.txt', 'bad'), end]))), [403, 'EPERM']);
    assert.equal(await sb.files.exists('/abs.txt'), false);
    const r = await sb.files.upload('/work/in', Buffer.concat([
      entry('link', '', 'SymbolicLink', '/etc/passwd'), entry('b.txt', 'b'), entry('sub/hard', '', 'Link', 'b.txt'), end,
    ]));
    assert.deepEqual(r, { path: '/work/in', files: 1, dirs: 0, links: 2, bytes: 1 });
    // A fifo (or device) entry is refused naming it, as hutch cp refuses one; so is one in a download.
    const fifo = await sb.files.upload('/work/in', Buffer.concat([entry('pipe', '', 'FIFO'), end])).then(() => null, (e: unknown) => e);
    assert.ok(fifo instanceof HutchApiError && fifo.status === 400 && /tar entry pipe is a fifo/.test(fifo.message), String(fifo));
    assert.equal(await sb.files.exists('/work/in/pipe'), false);
    await sb.exec('mkdir -p /work/fifo/d && mkfifo /work/fifo/d/p');
    const down = await sb.files.download('/work/fifo').then(() => null, (e: unknown) => e);
    assert.ok(down instanceof HutchApiError && down.status === 400 && /\/work\/fifo\/d\/p in the sandbox is a device, fifo or socket/.test(down.message), String(down));
    // The symlink resolves inside the sandbox (its own /etc/passwd); the hard link shares b.txt's inode.
    assert.match((await sb.exec('readlink /work/in/link; head -c 5 /work/in/link; echo; [ /work/in/b.txt -ef /work/in/sub/hard ] && echo same')).stdout, /^\/etc\/passwd\nroot:\nsame\n$/);
    // Uploading again replaces the links; a hard link that leaves the target dir is refused.
    assert.equal((await sb.files.upload('/work/in', Buffer.concat([entry('link', '', 'SymbolicLink', 'b.txt'), end]))).links, 1);
    assert.equal(await sb.files.read('/work/in/link', { encoding: 'utf8' }), 'b');
    assert.deepEqual(await refused(sb.files.upload('/work/in', Buffer.concat([entry('evil', '', 'Link', '../../etc/passwd'), end]))), [403, 'EPERM']);
    assert.equal(await sb.files.exists('/work/in/evil'), false);
    assert.deepEqual(await refused(sb.files.upload('/work/in', Buffer.from('this is not a tar archive at all'.repeat(40)))), [400, 'EINVAL']);
    assert.deepEqual(await refused(sb.files.upload('/work/in/b.txt', Buffer.concat([entry('x', 'x'), end]))), [400, 'EINVAL']);
  } finally {
    await sb.kill();
  }
});

test('OpenAPI describes every route; metrics are Prometheus text', async () => {
  const doc = await fx.t.json<{ openapi: string; paths: Record<string, Record<string, { summary: string }>> }>({ method: 'GET', path: '/openapi.json' });
  assert.equal(doc.openapi, '3.1.0');
  const served = Object.entries(doc.paths).flatMap(([p, ops]) => Object.entries(ops).map(([m, op]) => ({ key: `${m.toUpperCase()} ${p}`, summary: op.summary })));
  assert.ok(served.length >= 25, `routes: ${served.length}`);
  for (const op of served) assert.notEqual(op.summary, 'undocumented', `${op.key} is in the router but not in the OpenAPI document`);
  const keys = new Set(served.map((o) => o.key));
  for (const d of documentedOperations()) assert.ok(keys.has(d), `${d} is documented but not served`);
  const res = await fx.t.request({ method: 'GET', path: '/metrics' });
  assert.match(String(res.headers['content-type']), /^text\/plain/);
  let text = '';
  for await (const c of res) text += String(c);
  assert.match(text, /hutch_sandboxes\{state="running"\} \d+/);
});

test('tokens: TCP refused without them; wrong or missing token is 401 on HTTP and WebSocket', async () => {
  const r = await serveFails(root, ['--socket', path.join(root, 'unused.sock'), '--listen', '127.0.0.1:0']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /token/);
  assert.equal(fs.existsSync(path.join(root, 'unused.sock')), false);
  const empty = path.join(root, 'empty-tokens');
  fs.writeFileSync(empty, '# nothing\n');
  assert.match((await serveFails(root, ['--socket', path.join(root, 'unused.sock'), '--listen', '127.0.0.1:0', '--token-file', empty])).stderr, /no tokens/);

  // A second hutchd on the same state root is refused (it would take the first one's sandboxes over).
  const second = await serveFails(root, ['--socket', path.join(root, 'second.sock')]);
  assert.notEqual(second.code, 0);
  assert.match(second.stderr, /another hutchd \(pid \d+\) serves the state root/);
  const notSocket = path.join(root, 'not-a-socket');
  fs.writeFileSync(notSocket, 'keep me');
  const otherRoot = makeRoot('apisock');
  assert.match((await serveFails(otherRoot, ['--socket', notSocket])).stderr, /not a socket/);
  assert.equal(fs.readFileSync(notSocket, 'utf8'), 'keep me');
  assert.equal(fs.existsSync(path.join(otherRoot, 'hutchd.pid')), false, 'a hutchd that failed to start lets go of its root');
  await cleanRoot(otherRoot);
  const securedRoot = makeRoot('apitcp');
  const { file, token } = tokenFile(securedRoot);
  const secured = await startDaemon(securedRoot, ['--listen', '127.0.0.1:0', '--token-file', file]);
  try {
    assert.ok(secured.url);
    for (const bad of [undefined, 'wrong-token-wrong-token', token + 'x']) {
      const c = new Transport({ baseUrl: secured.url!, ...(bad ? { token: bad } : {}) });
      await assert.rejects(Sandbox.list({ transport: c }), (e: unknown) => e instanceof AuthError && e.status === 401);
      c.close();
    }
    const unixNoToken = new Transport({ socketPath: secured.socketPath });
    await assert.rejects(Sandbox.list({ transport: unixNoToken }), (e: unknown) => e instanceof AuthError);
    unixNoToken.close();
    const good = new Transport({ baseUrl: secured.url!, token });
    assert.deepEqual(await good.json({ method: 'GET', path: '/healthz' }), { ok: true });
    const sb = await Sandbox.create({ transport: good });
    try {
      assert.equal((await sb.exec('echo tcp')).stdout, 'tcp\n');
      const wrong = new Transport({ baseUrl: secured.url!, token: 'x'.repeat(32) });
      const foreign = await Sandbox.connect(sb.id, { transport: good });
      await assert.rejects(
        Sandbox.prototype.spawn.call(Object.assign(Object.create(Sandbox.prototype), { transport: wrong, info: foreign.info }), 'true'),
        (e: unknown) => e instanceof AuthError,
      );
      wrong.close();
      const streamed = await sb.exec('echo ws', { onStdout: () => undefined });
      assert.equal(streamed.stdout, 'ws\n');
    } finally {
      await sb.kill();
      good.close();
    }
  } finally {
    await secured.stop();
    await cleanRoot(securedRoot);
  }
});

test('each sandbox hutchd makes gets a host id range of its own (--userns private is its default)', async () => {
  const shared = hostIdRange();
  const a = await Sandbox.create({ transport: fx.t });
  const b = await Sandbox.create({ transport: fx.t });
  try {
    const uidOf = (id: string) => {
      const pid = Number(fs.readFileSync(path.join(root, 'sandboxes', id, 'init.pid'), 'utf8'));
      return Number(/^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
    };
    const [ua, ub] = [uidOf(a.id), uidOf(b.id)];
    assert.notEqual(ua, ub, 'two sandboxes, two host uids for their root');
    for (const u of [ua, ub]) {
      assert.ok(u >= shared.hostUid + ID_RANGE_SIZE && (u - shared.hostUid) % ID_RANGE_SIZE === 0, `${u} is the root of a private range`);
    }
    // The image's files are root's inside, and root can write.
    assert.equal((await a.exec('stat -c %u:%g /bin/busybox && touch /made && echo ok')).stdout, '0:0\nok\n');
  } finally {
    await a.kill();
    await b.kill();
  }
  assert.deepEqual([...idSlotsInUse(ID_SLOTS_DIR).values()].filter((o) => o?.dir.startsWith(`${root}/`)), [], 'their ranges are free again');
  assert.deepEqual(await serveFails(root, ['--socket', path.join(root, 'other.sock'), '--userns', 'bogus']).then((r) => [r.code, /invalid --userns "bogus"/.test(r.stderr)]), [1, true]);
  // Platforms: of a pool, and the default.
  for (const bad of ['busybox=2@', 'busybox=@gvisor', 'busybox=x@gvisor']) {
    assert.match((await serveFails(root, ['--socket', path.join(root, 'other.sock'), '--pool', bad])).stderr, /invalid --pool .*use IMAGE=N or IMAGE=N@PLATFORM/);
  }
  assert.match((await serveFails(root, ['--socket', path.join(root, 'other.sock'), '--platform', 'warp'])).stderr, /unknown platform "warp"/);
  assert.match((await serveFails(root, ['--socket', path.join(root, 'other.sock'), '--pool', 'busybox=1@warp'])).stderr, /unknown platform "warp"/);
});

test('the id range hutchd chooses: private when the host can, shared when asked; without idmapped mounts the default falls back and an explicit private is refused', async () => {
  // The probe's answer is stubbed: this host supports idmapped mounts, so a host without them cannot
  // be made here (the real probe is tested in platform-private-ids.test.ts).
  let probed = 0;
  const can = async () => { probed++; return null; };
  const cannot = async () => { probed++; return 'mount_setattr: EINVAL'; };
  assert.deepEqual(await chooseIdRange(undefined, can), { idRange: 'private' });
  assert.deepEqual(await chooseIdRange('private', can), { idRange: 'private' });
  assert.deepEqual(await chooseIdRange('shared', cannot), { idRange: 'shared' });
  assert.equal(probed, 2, 'shared asks nothing of the host');
  const fallback = await chooseIdRange(undefined, cannot);
  assert.equal(fallback.idRange, 'shared');
  assert.match(fallback.warning ?? '', /shared id range: .*mount_setattr: EINVAL/);
  await assert.rejects(chooseIdRange('private', cannot), /--userns private: this host cannot give sandboxes id ranges of their own: mount_setattr: EINVAL/);
  await assert.rejects(chooseIdRange('bogus' as 'private', can), /invalid id range "bogus"/);
});

test('images through the API: Entrypoint/Cmd is the main command (entrypoint [] for none), WorkingDir exists, user names; a bad cwd or user is a 400, not a 404', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-api-images-'));
  const env = { HUTCH_IMAGE_ROOT: path.join(tmp, 'store') };
  const imgRoot = makeRoot('api-images');
  const images = [
    { tag: 'api/served:1', runtime: { Cmd: ['sh', '-c', 'echo "main ran in $(pwd)" > /tmp/main; exec sleep 60'], WorkingDir: '/srv/app' } },
    { tag: 'api/quick:1', runtime: { Cmd: ['true'] } },
  ].map(({ tag, runtime }) => ({ image: buildImage([busyboxEntries()], runtime), tags: [tag] }));
  fs.writeFileSync(path.join(tmp, 'images.tar'), dockerArchive(images));
  const loaded = await hutch(imgRoot, ['load', '-q', '-i', path.join(tmp, 'images.tar')], { env });
  assert.equal(loaded.code, 0, loaded.stderr);
  const daemon = await startDaemon(imgRoot, ['--pool', 'busybox=1'], path.join(imgRoot, 'hutchd.sock'), env);
  const t = new Transport({ socketPath: daemon.socketPath });
  const made: Sandbox[] = [];
  try {
    const served = await Sandbox.create({ transport: t, image: 'api/served:1' });
    made.push(served);
    let main = '';
    for (let i = 0; i < 100 && main === ''; i++) {
      main = (await served.exec('cat /tmp/main 2>/dev/null || true')).stdout;
      if (main === '') await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(main, 'main ran in /srv/app\n', 'the image\'s Cmd runs as the main command, in its WorkingDir');
    const cwd = await served.exec('pwd; stat -c %u:%g /srv/app');
    assert.deepEqual([cwd.exitCode, cwd.stdout], [0, '/srv/app\n0:0\n'], 'exec in a WorkingDir no layer had');
    const asApp = await served.exec('echo $(id -u):$(id -g) $HOME', { user: 'app' });
    assert.equal(asApp.stdout, '1234:2345 /home/app\n');
    assert.equal((await served.exec('id -g', { user: 'app:nogroup' })).stdout, '65534\n');
    assert.equal((await served.exec('id -u', { user: '4321:765' })).stdout, '4321\n', 'numbers keep working');
    // A missing cwd and an unknown user are the request's fault, and the sandbox is still there.
    const body = (json: Record<string, unknown>) => t.json({ method: 'POST', path: `/v1/sandboxes/${served.id}/processes`, json: { cmd: 'true', wait: true, ...json } });
    assert.deepEqual(await refused(body({ cwd: '/nowhere' })), [400, 'EINVAL']);
    await assert.rejects(body({ cwd: '/nowhere' }), /working directory \/nowhere does not exist in the sandbox/);
    assert.deepEqual(await refused(body({ user: 'nosuch' })), [400, 'EINVAL']);
    await assert.rejects(body({ user: 'nosuch' }), /unknown user "nosuch"/);
    assert.deepEqual(await refused(body({ user: 'a:b:c' })), [400, 'EINVAL']);
    assert.equal((await served.exec('echo alive')).stdout, 'alive\n');
    // entrypoint [] (and no cmd): no main command, the sandbox waits for exec.
    const idle = await Sandbox.create({ transport: t, image: 'api/quick:1', entrypoint: [] });
    made.push(idle);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await idle.exec('echo idle')).stdout, 'idle\n');
    // A cmd of the request replaces the image's.
    const own = await Sandbox.create({ transport: t, image: 'api/served:1', cmd: ['sh', '-c', 'echo own > /tmp/main; exec sleep 60'] });
    made.push(own);
    let ownMain = '';
    for (let i = 0; i < 100 && ownMain === ''; i++) ownMain = (await own.exec('cat /tmp/main 2>/dev/null || true')).stdout;
    assert.equal(ownMain, 'own\n');
    // A claim from the warm pool gets its cwd made too, as a cold create does.
    let poolReady = '';
    for (let i = 0; i < 300 && !/^hutch_pool_ready\{image="busybox"\} 1$/m.test(poolReady); i++) {
      let text = '';
      for await (const c of await t.request({ method: 'GET', path: '/metrics' })) text += String(c);
      poolReady = text;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.match(poolReady, /^hutch_pool_ready\{image="busybox"\} 1$/m);
    const fromPool = await Sandbox.create({ transport: t, cwd: '/claimed/here' });
    made.push(fromPool);
    assert.equal(fromPool.info.labels['dev.hutch.pool'], undefined);
    assert.equal((await fromPool.exec('pwd')).stdout, '/claimed/here\n');
    assert.deepEqual(await refused(t.json({ method: 'POST', path: '/v1/sandboxes', json: { image: 'api/quick:1', entrypoint: 'true' } })), [400, 'EINVAL']);
    assert.deepEqual(await refused(t.json({ method: 'POST', path: '/v1/sandboxes', json: { image: 'api/quick:1', cmd: [] } })), [400, 'EINVAL']);
  } finally {
    for (const sb of made) await sb.kill().catch(() => undefined);
    t.close();
    await daemon.stop();
    await cleanRoot(imgRoot);
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
