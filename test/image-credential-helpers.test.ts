// hutch pull with docker credential helpers (credHelpers, credsStore) and identity tokens, against a
// real docker-registry on loopback behind the kit's token or basic-auth front. The helpers are small
// sh scripts on PATH for the hutch process: ones that answer, say "not found", fail, hang, flood or
// print garbage. Every refusal is one line, leaks no secret, and leaves no image, file or process.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { cleanRoot, cleanUpAll, hutch, leftovers, makeRoot, type Result } from './helpers.js';
import { helperServerURL, runCredentialHelper } from '../src/image/registry/credential-helpers.js';
import { makeAgents, send } from '../src/image/registry/transport.js';
import { RegistryAuth } from '../src/image/registry/auth.js';
import { isHutchError } from '../src/errors.js';
import { readProcFile } from '../src/linux/index.js';
import { pushImage, selfSignedCert, startFront, startRegistry, type PushedImage, type RegistryFront, type TestRegistry } from './image/registry-kit.js';
import { storeLeftovers } from './image-store-kit.js';
import { makeLayer } from './image/tar-kit.js';

let root: string;
let tmp: string;
let bin: string;
let log: string;
let reg: TestRegistry;
let bearer: RegistryFront;
let basic: RegistryFront;
let image: PushedImage;
let stores = 0;

// Secrets the helpers and files hold: no error message may contain them.
const SECRETS = ['s3cret', 'idtok-alice', 'idtok-stale', 'LEAKED-SECRET'];

/** The helper scripts: `docker-credential-<name>`, each implementing `get` of the protocol. */
const HELPERS: Record<string, string> = {
  // Reads the whole of stdin (so it hangs unless stdin is closed), logs what it was asked, answers alice.
  good: 'url=$(cat)\necho "good $1 $url" >> "$HELPER_LOG"\nprintf \'{"ServerURL":"%s","Username":"alice","Secret":"s3cret"}\\n\' "$url"',
  wrong: 'url=$(cat)\necho "wrong $1 $url" >> "$HELPER_LOG"\nprintf \'{"ServerURL":"%s","Username":"alice","Secret":"nope"}\\n\' "$url"',
  token: 'url=$(cat)\necho "token $1 $url" >> "$HELPER_LOG"\nprintf \'{"ServerURL":"%s","Username":"<token>","Secret":"idtok-alice"}\\n\' "$url"',
  none: 'url=$(cat)\necho "none $1 $url" >> "$HELPER_LOG"\necho "credentials not found in native keychain"\nexit 1',
  broken: 'cat >/dev/null\necho "keyring is locked (secret store unavailable)"\nexit 3',
  hang: 'cat >/dev/null\nsleep 600 &\necho "$$ $!" > "$HELPER_LOG.pids"\nwait',
  huge: 'cat >/dev/null\nhead -c 8000000 /dev/zero | tr "\\0" x\necho done > "$HELPER_LOG.huge"',
  garbage: 'cat >/dev/null\necho "user=alice secret=LEAKED-SECRET"',
  empty: 'cat >/dev/null\necho "{}"',
  quiet: 'cat >/dev/null\necho "error: credentials not found for this server" >&2\nexit 1',
  signalled: 'cat >/dev/null\nkill -9 $$',
  typed: 'cat >/dev/null\necho \'{"Username":"alice","Secret":42}\'',
  // Starts a process in a session of its own (out of reach of the group kill) that holds stdout open, then hangs.
  escaped: 'cat >/dev/null\nsetsid sh -c \'echo $$ > "$HELPER_LOG.escaped"; exec sleep 20\' &\nsleep 600',
  // Answers and exits, leaving such a daemon behind with stdout open.
  daemon: 'url=$(cat)\nsetsid sh -c \'echo $$ > "$HELPER_LOG.escaped"; exec sleep 20\' &\nprintf \'{"ServerURL":"%s","Username":"alice","Secret":"s3cret"}\\n\' "$url"',
};

before(async () => {
  root = makeRoot('credhelpers');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-credhelpers-'));
  bin = path.join(tmp, 'bin');
  fs.mkdirSync(bin);
  log = path.join(tmp, 'helper.log');
  for (const [name, body] of Object.entries(HELPERS)) {
    fs.writeFileSync(path.join(bin, `docker-credential-${name}`), `#!/bin/sh\n[ "$1" = get ] || { echo "unsupported: $1"; exit 1; }\n${body}\n`, { mode: 0o755 });
  }
  // On PATH but not executable.
  fs.writeFileSync(path.join(bin, 'docker-credential-noexec'), '#!/bin/sh\necho \'{"Username":"alice","Secret":"s3cret"}\'\n', { mode: 0o644 });
  reg = await startRegistry();
  image = await pushImage(reg.host, 'app/private', '1', { layers: [makeLayer([{ name: 'secret-file', content: 'behind auth\n' }])] });
  bearer = await startFront(reg.host, { auth: 'bearer', users: { alice: 's3cret' }, identityTokens: { 'idtok-alice': 'alice' } });
  basic = await startFront(reg.host, { auth: 'basic', users: { alice: 's3cret' } });
});

after(() => cleanUpAll(
  () => cleanRoot(root),
  () => bearer?.stop(),
  () => basic?.stop(),
  () => reg?.stop(),
  () => fs.rmSync(tmp, { recursive: true, force: true }),
  () => assert.deepEqual(leftovers(root), []),
  () => assert.equal(fs.existsSync(tmp), false),
));

/** Writes an auth/config file with `doc` (an object, or raw text); returns its path. */
function config(doc: object | string): string {
  const file = path.join(tmp, `config-${++stores}.json`);
  fs.writeFileSync(file, typeof doc === 'string' ? doc : JSON.stringify(doc));
  return file;
}

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const helperLog = (): string[] => (fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n').filter(Boolean) : []);

/** Runs `hutch pull -q` of app/private:1 through `front` with a fresh image store; extra env wins. */
async function pull(front: RegistryFront, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Result & { store: string }> {
  fs.rmSync(log, { force: true });
  const store = path.join(tmp, `store-${++stores}`);
  const r = await hutch(root, ['pull', '-q', ...args, `${front.host}/app/private:1`], {
    timeoutMs: 60_000,
    env: {
      HUTCH_IMAGE_ROOT: store, PATH: `${bin}:${process.env.PATH}`, HELPER_LOG: log,
      // Keep the tester's own auth files out of it.
      REGISTRY_AUTH_FILE: path.join(tmp, 'absent.json'), XDG_RUNTIME_DIR: path.join(tmp, 'no-xdg'), DOCKER_CONFIG: path.join(tmp, 'no-docker'),
      ...env,
    },
  });
  return { ...r, store };
}

/** A pull that must succeed: prints the image id. */
async function pulled(front: RegistryFront, args: string[], env: NodeJS.ProcessEnv = {}): Promise<void> {
  const r = await pull(front, args, env);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${image.manifest.config.digest}\n`);
}

/** A pull that must fail with one line matching `message`, no secret in it, and nothing stored or left. */
async function refused(front: RegistryFront, args: string[], message: RegExp, env: NodeJS.ProcessEnv = {}): Promise<Result> {
  const r = await pull(front, args, env);
  assert.equal(r.code, 1, `expected a failure: ${r.stdout} ${r.stderr}`);
  assert.match(r.stderr, message);
  assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  for (const s of SECRETS) assert.ok(!r.stderr.includes(s), `the error shows a secret (${s}): ${r.stderr}`);
  const images = fs.existsSync(path.join(r.store, 'images')) ? fs.readdirSync(path.join(r.store, 'images')) : [];
  assert.deepEqual(images, [], 'no image registered');
  assert.deepEqual(fs.existsSync(r.store) ? storeLeftovers(r.store) : [], [], 'no temp or partial files');
  return r;
}

test('credHelpers: the helper for the registry is asked with its host on stdin and its answer pulls', async () => {
  bearer.tokenRequests.length = 0;
  await pulled(bearer, ['--authfile', config({ credHelpers: { [bearer.host]: 'good', 'other.example': 'broken' } })]);
  assert.deepEqual(helperLog(), [`good get ${bearer.host}`], 'asked once, with get and the host');
  assert.ok(bearer.tokenRequests.length >= 1 && bearer.tokenRequests.every((t) => t.authorization === `Basic ${b64('alice:s3cret')}`));
  assert.equal(helperServerURL('docker.io'), 'https://index.docker.io/v1/', 'Docker Hub is asked by the URL docker login stores');
  await pulled(basic, ['--authfile', config({ credHelpers: { [basic.host]: 'good' } })]);
});

test('precedence: credHelpers over auths and credsStore; credsStore over auths; auths when the store has none', async () => {
  const wrongAuth = { auth: b64('alice:nope') };
  // The registry's helper decides alone, whatever auths and credsStore say.
  await pulled(bearer, ['--authfile', config({ auths: { [bearer.host]: wrongAuth }, credsStore: 'wrong', credHelpers: { [bearer.host]: 'good' } })]);
  assert.deepEqual(helperLog(), [`good get ${bearer.host}`]);
  // The default store beats an auths entry (docker's order; `docker login` leaves the entry empty).
  await pulled(bearer, ['--authfile', config({ auths: { [bearer.host]: wrongAuth }, credsStore: 'good' })]);
  await pulled(bearer, ['--authfile', config({ auths: { [bearer.host]: {} }, credsStore: 'good' })]);
  // A store without credentials for the registry leaves the auths entry.
  await pulled(bearer, ['--authfile', config({ auths: { [bearer.host]: { auth: b64('alice:s3cret') } }, credsStore: 'none' })]);
  assert.deepEqual(helperLog(), [`none get ${bearer.host}`]);
  // A registry helper that has none means anonymous (as docker and podman do): here refused.
  await refused(bearer, ['--authfile', config({ auths: { [bearer.host]: { auth: b64('alice:s3cret') } }, credHelpers: { [bearer.host]: 'none' } })],
    new RegExp(`registry ${bearer.host} requires credentials for app/private`));
  // A store that gives wrong credentials: refused, naming the helper.
  await refused(bearer, ['--authfile', config({ credsStore: 'wrong' })], new RegExp(`refused the credentials of alice \\(from docker-credential-wrong, credsStore in `));
});

test('auth files in order: a helper without credentials in containers\' auth.json passes on to docker\'s config.json', async () => {
  const xdg = path.join(tmp, 'xdg');
  const docker = path.join(tmp, 'docker');
  fs.mkdirSync(path.join(xdg, 'containers'), { recursive: true });
  fs.mkdirSync(docker);
  fs.writeFileSync(path.join(xdg, 'containers', 'auth.json'), JSON.stringify({ credHelpers: { [bearer.host]: 'none' } }));
  fs.writeFileSync(path.join(docker, 'config.json'), JSON.stringify({ credsStore: 'good' }));
  await pulled(bearer, [], { XDG_RUNTIME_DIR: xdg, DOCKER_CONFIG: docker });
  assert.deepEqual(helperLog(), [`none get ${bearer.host}`, `good get ${bearer.host}`]);
});

test('identity token in auths: traded at the realm with an OAuth2 refresh_token POST, once per pull', async () => {
  bearer.tokenRequests.length = 0;
  bearer.requests.length = 0;
  await pulled(bearer, ['--authfile', config({ auths: { [bearer.host]: { auth: b64('alice:'), identitytoken: 'idtok-alice' } } })]);
  assert.equal(bearer.tokenRequests.length, 1, 'the token is cached for the manifest, config and layer');
  const [t] = bearer.tokenRequests;
  assert.equal(t!.method, 'POST');
  assert.equal(t!.authorization, undefined, 'no basic credentials with a refresh token');
  assert.deepEqual(t!.form, { grant_type: 'refresh_token', refresh_token: 'idtok-alice', client_id: 'hutch', scope: 'repository:app/private:pull', service: 'hutch-test' });
  const ok = bearer.requests.filter((q) => q.status === 200);
  assert.ok(ok.length >= 3 && ok.every((q) => q.authorization?.startsWith('Bearer ')), 'manifest, config and layer sent with the access token');
});

test('a helper answering <token> gives an identity token; a refused one is EAUTH without the token', async () => {
  bearer.tokenRequests.length = 0;
  await pulled(bearer, ['--authfile', config({ credHelpers: { [bearer.host]: 'token' } })]);
  assert.equal(bearer.tokenRequests[0]!.form?.refresh_token, 'idtok-alice');
  await refused(bearer, ['--authfile', config({ auths: { [bearer.host]: { auth: b64('alice:'), identitytoken: 'idtok-stale' } } })],
    new RegExp(`registry ${bearer.host} refused the identity token of alice \\(from .*config-\\d+\\.json\\)`));
  await refused(basic, ['--authfile', config({ credHelpers: { [basic.host]: 'token' } })],
    new RegExp(`registry ${basic.host} asks for basic authentication, which the identity token \\(from docker-credential-token, credHelpers in .*\\) cannot answer`));
});

test('a helper that fails, floods, prints garbage or is missing is an error naming it and the registry', async () => {
  const cfg = (name: string): string[] => ['--authfile', config({ credHelpers: { [bearer.host]: name } })];
  const named = (name: string) => `credential helper docker-credential-${name} \\(credHelpers in [^)]+\\) for registry ${bearer.host.replace(/\./g, '\\.')}`;
  await refused(bearer, cfg('broken'), new RegExp(`${named('broken')} failed \\(exit status 3\\): keyring is locked \\(secret store unavailable\\)$`, 'm'));
  await refused(bearer, cfg('garbage'), new RegExp(`${named('garbage')} answered with something that is not JSON \\(\\d+ bytes\\)`));
  const huge = await refused(bearer, cfg('huge'), new RegExp(`${named('huge')} printed more than 1048576 bytes and was killed`));
  assert.ok(huge.stderr.length < 1000);
  assert.equal(fs.existsSync(`${log}.huge`), false, 'the flooding helper was killed before it finished');
  await refused(bearer, cfg('absent'), new RegExp(`${named('absent')}: docker-credential-absent is not on PATH`));
  await refused(bearer, ['--authfile', config({ credsStore: 'absent' })], /docker-credential-absent \(credsStore in .*\) for registry .* is not on PATH/);
});

test('helpers with nothing to give ({} or "not found" on stderr) mean no credentials; signals, bad types and no exec bit are errors', async () => {
  const cfg = (name: string): string[] => ['--authfile', config({ credHelpers: { [bearer.host]: name } })];
  const none = new RegExp(`registry ${bearer.host} requires credentials for app/private and none were found`);
  await refused(bearer, cfg('empty'), none);
  await refused(bearer, cfg('quiet'), none);
  await refused(bearer, cfg('signalled'), /docker-credential-signalled \(credHelpers in .*\) for registry .* failed \(killed by SIGKILL\)$/m);
  await refused(bearer, cfg('typed'), /docker-credential-typed \(credHelpers in .*\) for registry .* answered JSON without a string Username and Secret/);
  await refused(bearer, cfg('noexec'), /docker-credential-noexec \(credHelpers in .*\) for registry .*: docker-credential-noexec is not executable/);
});

test('a helper that hangs is killed with its children after the time limit', async () => {
  const started = Date.now();
  await refused(bearer, ['--authfile', config({ credHelpers: { [bearer.host]: 'hang' } })],
    new RegExp(`docker-credential-hang \\(credHelpers in .*\\) for registry ${bearer.host} did not answer within 1500 ms and was killed`),
    { HUTCH_CREDENTIAL_HELPER_TIMEOUT_MS: '1500' });
  assert.ok(Date.now() - started < 15_000, 'the pull gave up in time');
  const pids = fs.readFileSync(`${log}.pids`, 'utf8').trim().split(' ').map(Number);
  assert.equal(pids.length, 2);
  const alive = (pid: number): boolean => {
    try {
      process.kill(pid, 0);
    } catch {
      return false;
    }
    // A zombie waiting for its reaper is dead too.
    const status = readProcFile(pid, 'status'); // null: it exited meanwhile
    return status !== null && !/^State:\s+Z/m.test(status);
  };
  const deadline = Date.now() + 5000;
  while (pids.some(alive) && Date.now() < deadline) await sleep(50);
  assert.deepEqual(pids.filter(alive), [], 'the helper and the sleep it started are gone');
});

test('bad auth files: malformed JSON, credHelpers that is not an object, helper names that are paths', async () => {
  await refused(bearer, ['--authfile', config('{"credHelpers": {')], /auth file .*config-\d+\.json is not valid JSON/);
  await refused(bearer, ['--authfile', config({ credHelpers: ['good'] })], /auth file .*config-\d+\.json: credHelpers is not an object of registry → helper name/);
  for (const [doc, shown] of [
    [{ credHelpers: { [bearer.host]: '../../../bin/sh' } }, 'credHelpers names the credential helper "../../../bin/sh"'],
    [{ credHelpers: { [bearer.host]: '..' } }, 'credHelpers names the credential helper ".."'],
    [{ credsStore: 'good/../../x' }, 'credsStore names the credential helper "good/../../x"'],
    [{ credsStore: 7 }, 'credsStore names the credential helper number'],
  ] as const) {
    await refused(bearer, ['--authfile', config(doc)], new RegExp(`auth file .*config-\\d+\\.json: ${shown.replace(/[.()]/g, '\\$&')}, which is not a plain name`));
    assert.deepEqual(helperLog(), [], 'no helper ran');
  }
});

test('redirects: credentials never follow an https -> http downgrade on the same host:port, nor a token POST to another origin', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-redirect-'));
  const cert = selfSignedCert(dir);
  fs.rmSync(dir, { recursive: true, force: true });
  if (!cert) { t.skip('openssl is not installed: no certificate for the https server'); return; }
  const seen: { scheme: string; path: string; authorization?: string; body: string }[] = [];
  let port = 0;
  // One port speaking https and plain http (told apart by the first byte), so only the scheme changes.
  const handler = (scheme: string) => (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => {
      const { authorization } = req.headers;
      seen.push({ scheme, path: req.url ?? '', body: Buffer.concat(parts).toString(), ...(authorization ? { authorization } : {}) });
      const to = { '/down': `http://127.0.0.1:${port}/next`, '/same': `https://127.0.0.1:${port}/next`, '/post': `http://127.0.0.1:${port}/token` }[req.url ?? ''];
      if (to) res.writeHead(req.url === '/post' ? 307 : 302, { location: to }).end();
      else res.writeHead(200).end('ok');
    });
  };
  const tlsServer = https.createServer(cert, handler('https'));
  const plainServer = http.createServer(handler('http'));
  for (const server of [tlsServer, plainServer]) await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const front = net.createServer((s) => s.once('data', (b: Buffer) => {
    const up = net.connect(((b[0] === 0x16 ? tlsServer : plainServer).address() as AddressInfo).port, '127.0.0.1');
    up.write(b);
    s.pipe(up).pipe(s);
    for (const [a, z] of [[s, up], [up, s]] as const) { a.on('error', () => z.destroy()); a.on('close', () => z.destroy()); }
  }));
  await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
  port = (front.address() as AddressInfo).port;
  const agents = makeAgents();
  const opts = { headers: { Authorization: 'Bearer sekrit-token' }, timeoutMs: 5000, connectTimeoutMs: 2000, agents, insecureTls: true };
  try {
    const same = await send(new URL(`https://127.0.0.1:${port}/same`), opts);
    same.body.resume();
    assert.equal(same.status, 200);
    assert.deepEqual(seen.map((q) => [q.scheme, q.path, q.authorization]), [['https', '/same', 'Bearer sekrit-token'], ['https', '/next', 'Bearer sekrit-token']],
      'a redirect within the origin keeps the credentials');
    seen.length = 0;
    const down = await send(new URL(`https://127.0.0.1:${port}/down`), opts);
    down.body.resume();
    assert.equal(down.status, 200);
    assert.deepEqual(seen.map((q) => [q.scheme, q.path, q.authorization]), [['https', '/down', 'Bearer sekrit-token'], ['http', '/next', undefined]],
      'no token in clear text after https -> http');
    seen.length = 0;
    await assert.rejects(send(new URL(`https://127.0.0.1:${port}/post`), { ...opts, method: 'POST', body: Buffer.from('grant_type=refresh_token&refresh_token=idtok-alice') }),
      (e) => isHutchError(e, 'EPROTO') && /redirected a token request to http:\/\/127\.0\.0\.1:\d+; its credentials are not sent on/.test(e.message) && !e.message.includes('idtok'));
    assert.deepEqual(seen.map((q) => [q.scheme, q.path]), [['https', '/post']], 'the refresh token went nowhere else');
  } finally {
    for (const a of Object.values(agents)) a.destroy();
    for (const server of [tlsServer, plainServer]) server.closeAllConnections();
    for (const server of [front, tlsServer, plainServer]) await new Promise<void>((r) => server.close(() => r()));
  }
});

test('a registry reached over https that names a plain-http realm gets no credentials sent in clear (anonymous still works)', async () => {
  const asked: (string | undefined)[] = [];
  const tokens = http.createServer((req, res) => {
    asked.push(req.headers.authorization);
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"token":"t0k"}');
  });
  await new Promise<void>((r) => tokens.listen(0, '127.0.0.1', r));
  const realm = `http://127.0.0.1:${(tokens.address() as AddressInfo).port}/token`;
  const agents = makeAgents();
  const sendOptions = () => ({ headers: {}, timeoutMs: 5000, connectTimeoutMs: 2000, agents, insecureTls: false });
  const challenge = `Bearer realm="${realm}",service="reg"`;
  try {
    const withCreds = new RegistryAuth([config({ auths: { 'reg.test': { auth: b64('alice:s3cret') } } })], sendOptions);
    await assert.rejects(withCreds.answerChallenge('reg.test', 'app', challenge, undefined, new URL('https://reg.test/v2/app/manifests/1')),
      (e) => isHutchError(e, 'EAUTH') && e.message.includes(`registry reg.test names a plain-http token server (http://127.0.0.1:`)
        && e.message.includes('refusing to send the credentials of alice') && !e.message.includes('s3cret'));
    assert.deepEqual(asked, [], 'the token server was not asked');
    // Over plain http (an insecure registry) the credentials are in clear anyway: the realm is used.
    const plainReg = new RegistryAuth([config({ auths: { 'reg.test': { auth: b64('alice:s3cret') } } })], sendOptions);
    assert.deepEqual(await plainReg.answerChallenge('reg.test', 'app', challenge, undefined, new URL('http://reg.test/v2/app/manifests/1')), { Authorization: 'Bearer t0k' });
    // Without credentials there is nothing to leak.
    const anonymous = new RegistryAuth([path.join(tmp, 'absent.json')], sendOptions);
    assert.deepEqual(await anonymous.answerChallenge('reg.test', 'app', challenge, undefined, new URL('https://reg.test/v2/app/manifests/1')), { Authorization: 'Bearer t0k' });
    assert.deepEqual(asked, [`Basic ${b64('alice:s3cret')}`, undefined]);
  } finally {
    for (const a of Object.values(agents)) a.destroy();
    tokens.closeAllConnections();
    await new Promise<void>((r) => tokens.close(() => r()));
  }
});

test('a helper whose child left its process group (setsid) with stdout open neither hangs the pull nor spoils its answer', async () => {
  const escapedPid = (): number => Number(fs.readFileSync(`${log}.escaped`, 'utf8').trim());
  const reap = (): void => {
    try {
      process.kill(escapedPid(), 'SIGKILL');
    } catch {
      // gone already
    }
    fs.rmSync(`${log}.escaped`, { force: true });
  };
  try {
    let started = Date.now();
    await refused(bearer, ['--authfile', config({ credHelpers: { [bearer.host]: 'escaped' } })],
      /docker-credential-escaped \(credHelpers in .*\) for registry .* did not answer within 1500 ms and was killed/, { HUTCH_CREDENTIAL_HELPER_TIMEOUT_MS: '1500' });
    assert.ok(Date.now() - started < 10_000, `the pull gave up at the time limit, not when the escaped child exited (${Date.now() - started} ms)`);
    reap();
    started = Date.now();
    await pulled(bearer, ['--authfile', config({ credHelpers: { [bearer.host]: 'daemon' } })]);
    assert.ok(Date.now() - started < 10_000, `the answer counted once the helper exited (${Date.now() - started} ms)`);
  } finally {
    reap();
  }
});

test('a helper is looked for in absolute PATH directories only: ".", "" or a relative entry never runs a file of the current directory', async () => {
  const saved = { path: process.env.PATH, log: process.env.HELPER_LOG, cwd: process.cwd() };
  const origin = { via: 'credHelpers' as const, file: 'test-config.json' };
  try {
    process.chdir(bin);
    process.env.HELPER_LOG = log;
    fs.rmSync(log, { force: true });
    for (const entries of ['.', '', 'bin', `.:${path.dirname(bin)}/nowhere`]) {
      process.env.PATH = `${entries}:/usr/bin:/bin`;
      await assert.rejects(runCredentialHelper('good', 'reg.test', origin),
        (e) => isHutchError(e, 'ENOTFOUND') && e.message.endsWith('docker-credential-good is not on PATH'), `PATH=${process.env.PATH}`);
    }
    assert.deepEqual(helperLog(), [], 'the helper in the current directory never ran');
    // The same directory named absolutely is used.
    process.env.PATH = `${bin}:/usr/bin:/bin`;
    assert.deepEqual(await runCredentialHelper('good', 'reg.test', origin), { username: 'alice', secret: 's3cret' });
    // A limit beyond what node's timers take is not a 1 ms limit.
    process.env.HUTCH_CREDENTIAL_HELPER_TIMEOUT_MS = '1e10';
    assert.deepEqual(await runCredentialHelper('good', 'reg.test', origin), { username: 'alice', secret: 's3cret' });
    delete process.env.HUTCH_CREDENTIAL_HELPER_TIMEOUT_MS;
    await assert.rejects(runCredentialHelper('noexec', 'reg.test', origin), (e) => isHutchError(e, 'EAUTH') && e.message.endsWith('docker-credential-noexec is not executable'));
  } finally {
    process.chdir(saved.cwd);
    process.env.PATH = saved.path;
    delete process.env.HUTCH_CREDENTIAL_HELPER_TIMEOUT_MS;
    if (saved.log === undefined) delete process.env.HELPER_LOG;
    else process.env.HELPER_LOG = saved.log;
  }
});
