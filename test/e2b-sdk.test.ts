// E2B's own JS SDK, unmodified, against `hutchd --e2b` (docs/e2b.md). The SDK is installed from npm
// into a cache dir outside the repository (never a dependency of hutch), and each step runs in a
// child node whose script lives in a temp project beside it, with E2B_API_URL, E2B_SANDBOX_URL and
// E2B_API_KEY pointing at hutchd. Skipped, saying why, when the registry cannot be reached.
//
// Versions: 2.51.0 (current), and 2.7.0, the oldest 2.x that reads E2B_SANDBOX_URL (2.6.4 and older
// send envd calls to https://49983-ID.e2b.app whatever the environment says). 2.7.0 also still
// creates with POST /sandboxes and connects with /sandboxes/{id}/connect, always asks for the
// internet (allow_internet_access: true), and until 2.14.1 sends E2b-Sandbox-Id on envd's RPCs only
// (not on /health and /files: hutchd finds the sandbox by its access token).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'node:test';
import { envdHandlers } from '../src/server/e2b/envd.js';
import { cleanRoot, makeRoot } from './helpers.js';
import { startDaemon, tokenFile, type Daemon } from './server-kit.js';

const CURRENT = '2.51.0';
const OLDEST = '2.7.0';

/** The SDK of `version` installed (cached by version across runs), or why it cannot be. */
function installSdk(version: string): { dir: string } | { skip: string } {
  const cacheBase = process.env.HUTCH_E2B_SDK_CACHE ?? path.join(os.homedir(), '.cache', 'hutch');
  const dir = path.join(cacheBase, `e2b-sdk-${version}`);
  const installed = (d: string) => {
    try {
      return JSON.parse(fs.readFileSync(path.join(d, 'node_modules', 'e2b', 'package.json'), 'utf8')).version === version;
    } catch {
      return false;
    }
  };
  if (installed(dir)) return { dir };
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-e2b-'));
  fs.writeFileSync(path.join(tmp, 'package.json'), JSON.stringify({ name: 'hutch-e2b-sdk-test', private: true, type: 'module' }));
  const r = spawnSync('npm', ['install', '--no-save', '--no-audit', '--no-fund', '--prefix', tmp, `e2b@${version}`], { encoding: 'utf8', timeout: 240_000 });
  if (r.status !== 0 || !installed(tmp)) {
    fs.rmSync(tmp, { recursive: true, force: true });
    return { skip: `could not install e2b@${version} from the npm registry: ${(r.stderr || r.error?.message || '').trim().split('\n').pop() ?? ''}` };
  }
  fs.mkdirSync(cacheBase, { recursive: true });
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(tmp, dir); // whole or not at all: a half install is never taken for the cache
  return { dir };
}

/** What one SDK step gave: its JSON result, or the error it threw (its class name and message). */
type Outcome = { ok: true; value: any } | { ok: false; name: string; message: string };

/** Runs `body` (an async function body; `Sandbox` and the SDK's exports as `e2b` in scope) in a child node. */
async function sdk(project: string, env: NodeJS.ProcessEnv, body: string, timeoutMs = 60_000): Promise<Outcome> {
  const script = path.join(project, `step-${process.hrtime.bigint()}.mjs`);
  fs.writeFileSync(script, `import * as e2b from 'e2b';\nconst { Sandbox } = e2b;\n`
    + `const out = (o) => process.stdout.write('\\n@@' + JSON.stringify(o) + '\\n');\n`
    + `try { out({ ok: true, value: await (async () => { ${body} })() ?? null }); }\n`
    + `catch (e) { out({ ok: false, name: e?.constructor?.name ?? typeof e, message: String(e?.message ?? e) }); }\n`);
  const child = spawn(process.execPath, [script], { cwd: project, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '', stderr = '';
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  clearTimeout(timer);
  fs.rmSync(script, { force: true });
  const line = stdout.split('\n').reverse().find((l) => l.startsWith('@@'));
  if (!line) throw new Error(`SDK step gave no result (exit ${code}${code === null ? ', killed after ' + timeoutMs + ' ms: it hung' : ''}): ${stderr.slice(-2000)}`);
  return JSON.parse(line.slice(2)) as Outcome;
}

function ok(o: Outcome): any {
  if (!o.ok) assert.fail(`SDK step failed: ${o.name}: ${o.message}`);
  return o.value;
}

function failed(o: Outcome, name: RegExp, message?: RegExp): void {
  assert.equal(o.ok, false, `expected an error, got ${JSON.stringify(o)}`);
  if (o.ok) return;
  assert.match(o.name, name, `${o.name}: ${o.message}`);
  if (message) assert.match(o.message, message);
}

/** One SDK version's world: the SDK, a temp project that imports it, and a hutchd --e2b. */
interface World { project: string; env: NodeJS.ProcessEnv; daemon: Daemon; root: string }

async function world(sdkDir: { dir: string } | { skip: string }, tag: string): Promise<World> {
  if ('skip' in sdkDir) throw new Error(sdkDir.skip);
  const project = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-e2b-run-'));
  fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ private: true, type: 'module' }));
  fs.symlinkSync(path.join(sdkDir.dir, 'node_modules'), path.join(project, 'node_modules'));
  const root = makeRoot(tag);
  const tf = tokenFile(root);
  const daemon = await startDaemon(root, ['--listen', '127.0.0.1:0', '--token-file', tf.file, '--e2b', '--e2b-template', 'tiny=busybox', '--e2b-domain', 'sandboxes.test', '--sweep-interval', '500ms']);
  assert.ok(daemon.url, `hutchd gave no TCP address: ${daemon.stderr()}`);
  // E2B_DOMAIN and E2B_DEBUG from the caller's environment must not send the SDK elsewhere.
  const env = { E2B_API_URL: daemon.url, E2B_SANDBOX_URL: daemon.url, E2B_API_KEY: tf.token, E2B_DOMAIN: '', E2B_DEBUG: '' };
  return { project, env, daemon, root };
}

async function endWorld(w: World | undefined): Promise<void> {
  if (!w) return;
  await w.daemon.stop();
  await cleanRoot(w.root);
  fs.rmSync(w.project, { recursive: true, force: true });
}

/** The envd cases: asserted working once envd.ts has the handler, else asserted to fail clearly (no hang). */
function envdCase(w: () => World, rpc: string, name: string, body: () => string, check: (value: any) => void): void {
  test(`${CURRENT}: ${name}`, async () => {
    const o = await sdk(w().project, w().env, body(), 45_000);
    if (Object.hasOwn(envdHandlers, rpc)) check(ok(o));
    else failed(o, /Error/, /not implement/);
  });
}

let cur: World | undefined;
const w = (): World => cur!;
const currentSdk = installSdk(CURRENT);

test.describe(`e2b SDK ${CURRENT}`, { skip: 'skip' in currentSdk ? currentSdk.skip : false }, () => {
  test.before(async () => { cur = await world(currentSdk, 'e2b-sdk'); });
  test.after(async () => endWorld(cur));

  test(`${CURRENT}: create, info, list by metadata, connect, timeout, metrics, kill`, async () => {
    const made = ok(await sdk(w().project, w().env, `
      const s = await Sandbox.create({ metadata: { suite: 'e2b', run: 'one' }, envs: { A: '1' }, timeoutMs: 120_000 });
      return { id: s.sandboxId, running: await s.isRunning() };`));
    assert.match(made.id, /^\S+$/);
    assert.equal(made.running, true);
    const id = made.id as string;
    const info = ok(await sdk(w().project, w().env, `const i = await Sandbox.getInfo(${JSON.stringify(id)}); return { ...i, startedAt: i.startedAt.getTime(), endAt: i.endAt.getTime() };`));
    assert.equal(info.sandboxId, id);
    assert.equal(info.templateId, 'base');
    assert.deepEqual(info.metadata, { suite: 'e2b', run: 'one' });
    assert.equal(info.state, 'running');
    assert.ok(info.endAt - Date.now() > 60_000 && info.endAt - Date.now() <= 121_000, `endAt ${new Date(info.endAt).toISOString()}`);
    assert.ok(info.cpuCount >= 1 && info.memoryMB > 0);
    const listed = ok(await sdk(w().project, w().env, `
      const ids = async (q) => (await Sandbox.list({ query: q }).nextItems()).map((x) => x.sandboxId);
      return { match: await ids({ metadata: { suite: 'e2b', run: 'one' } }), other: await ids({ metadata: { suite: 'none' } }), all: await ids(undefined) };`));
    assert.deepEqual(listed.match, [id]);
    assert.deepEqual(listed.other, []);
    assert.ok(listed.all.includes(id));
    const connected = ok(await sdk(w().project, w().env, `
      const s = await Sandbox.connect(${JSON.stringify(id)});
      await s.setTimeout(600_000);
      const i = await s.getInfo();
      return { id: s.sandboxId, endAt: i.endAt.getTime(), metrics: await s.getMetrics() };`));
    assert.equal(connected.id, id);
    assert.ok(connected.endAt - Date.now() > 500_000, 'setTimeout moved endAt');
    assert.ok(Array.isArray(connected.metrics) && connected.metrics.length >= 1);
    assert.equal(ok(await sdk(w().project, w().env, `return await Sandbox.kill(${JSON.stringify(id)});`)), true);
    assert.equal(ok(await sdk(w().project, w().env, `return await Sandbox.kill(${JSON.stringify(id)});`)), false);
    failed(await sdk(w().project, w().env, `return await Sandbox.getInfo(${JSON.stringify(id)});`), /NotFound/);
  });

  test(`${CURRENT}: pause, then connect resumes`, async () => {
    const r = ok(await sdk(w().project, w().env, `
      const s = await Sandbox.create({ timeoutMs: 60_000 });
      const paused = await s.pause();
      const again = await Sandbox.pause(s.sandboxId);
      const state = (await s.getInfo()).state;
      const c = await Sandbox.connect(s.sandboxId);
      const after = (await c.getInfo()).state;
      await c.kill();
      return { paused, again, state, after };`));
    assert.deepEqual(r, { paused: true, again: false, state: 'paused', after: 'running' });
  });

  test(`${CURRENT}: a template of the map, an unknown one`, async () => {
    const r = ok(await sdk(w().project, w().env, `const s = await Sandbox.create('tiny', { timeoutMs: 30_000 }); const t = (await s.getInfo()).templateId; await s.kill(); return t;`));
    assert.equal(r, 'tiny');
    failed(await sdk(w().project, w().env, `return (await Sandbox.create('no-such-template')).sandboxId;`), /Error/, /template no-such-template not found/);
  });

  test(`${CURRENT}: a wrong API key is the SDK's authentication error`, async () => {
    failed(await sdk(w().project, { ...w().env, E2B_API_KEY: 'e2b_not-a-token-of-hutchd' }, `return (await Sandbox.create()).sandboxId;`), /AuthenticationError/, /invalid API key/);
    failed(await sdk(w().project, { ...w().env, E2B_API_KEY: 'e2b_not-a-token-of-hutchd' }, `return await Sandbox.list().nextItems();`), /AuthenticationError/);
  });

  test(`${CURRENT}: an unknown sandbox is the SDK's not-found error`, async () => {
    failed(await sdk(w().project, w().env, `return await Sandbox.getInfo('nosuchsandbox0');`), /NotFound/);
    failed(await sdk(w().project, w().env, `return (await Sandbox.connect('nosuchsandbox0')).sandboxId;`), /NotFound/);
    assert.equal(ok(await sdk(w().project, w().env, `return await Sandbox.kill('nosuchsandbox0');`)), false);
  });

  test(`${CURRENT}: a sandbox is gone once its timeout ends`, async () => {
    const id = ok(await sdk(w().project, w().env, `return (await Sandbox.create({ timeoutMs: 2_000, metadata: { suite: 'expiry' } })).sandboxId;`)) as string;
    const deadline = Date.now() + 15_000;
    let last: Outcome;
    do {
      await new Promise((r) => setTimeout(r, 1000));
      last = await sdk(w().project, w().env, `return (await Sandbox.getInfo(${JSON.stringify(id)})).state;`);
    } while (last.ok && Date.now() < deadline);
    failed(last, /NotFound/);
    assert.deepEqual(ok(await sdk(w().project, w().env, `return (await Sandbox.list({ query: { metadata: { suite: 'expiry' } } }).nextItems()).map((x) => x.sandboxId);`)), []);
  });

  test(`${CURRENT}: list pages with limit and nextToken`, async () => {
    const r = ok(await sdk(w().project, w().env, `
      const made = await Promise.all([1, 2, 3].map(() => Sandbox.create({ metadata: { suite: 'paging' }, timeoutMs: 60_000 })));
      const p = Sandbox.list({ query: { metadata: { suite: 'paging' } }, limit: 2 });
      const pages = [];
      while (p.hasNext) pages.push((await p.nextItems()).map((x) => x.sandboxId));
      await Promise.all(made.map((s) => s.kill()));
      return { made: made.map((s) => s.sandboxId).sort(), pages };`));
    assert.deepEqual(r.pages.map((p: string[]) => p.length), [2, 1]);
    assert.deepEqual(r.pages.flat().sort(), r.made);
  });

  // The envd side (envd.ts): each case checks the real thing once its handler is there.
  test.describe('envd', () => {
    let id = '';
    test.before(async () => {
      id = ok(await sdk(w().project, w().env, `return (await Sandbox.create({ envs: { GREETING: 'hi' }, timeoutMs: 120_000 })).sandboxId;`));
    });
    const connect = () => `const s = await Sandbox.connect(${JSON.stringify(id)});`;
    envdCase(w, '/process.Process/Start', 'commands.run', () => `${connect()} const r = await s.commands.run('echo hi'); return r;`, (r) => {
      assert.equal(r.exitCode, 0);
      assert.equal(r.stdout, 'hi\n');
    });
    envdCase(w, '/files', 'files.write then read', () => `${connect()} await s.files.write('/tmp/x.txt', 'hello'); return await s.files.read('/tmp/x.txt');`, (r) => {
      assert.equal(r, 'hello');
    });
    envdCase(w, '/filesystem.Filesystem/ListDir', 'files.list', () => `${connect()} return (await s.files.list('/')).map((e) => e.name);`, (r) => {
      assert.ok(r.includes('tmp'));
    });
    // E2B's quick-start examples (busybox: /bin/sh, not bash; the user is root).
    envdCase(w, '/process.Process/Start', 'commands.run streams onStdout and onStderr', () => `${connect()} const out = [], err = [];
      const r = await s.commands.run('echo a; echo b >&2; sleep 0.2; echo c', { onStdout: (d) => out.push(d), onStderr: (d) => err.push(d) });
      return { out: out.join(''), err: err.join(''), stdout: r.stdout, stderr: r.stderr, exitCode: r.exitCode };`, (r) => {
      assert.deepEqual(r, { out: 'a\nc\n', err: 'b\n', stdout: 'a\nc\n', stderr: 'b\n', exitCode: 0 });
    });
    envdCase(w, '/process.Process/Start', 'a failing command is CommandExitError with its exit code', () => `${connect()}
      try { await s.commands.run('echo oops >&2; exit 7'); return 'no error'; } catch (e) { return { name: e.constructor.name, exitCode: e.exitCode, stderr: e.stderr }; }`, (r) => {
      assert.deepEqual(r, { name: 'CommandExitError', exitCode: 7, stderr: 'oops\n' });
    });
    envdCase(w, '/process.Process/Start', 'background commands: wait, kill, list', () => `${connect()}
      const quick = await s.commands.run('sleep 0.3; echo done', { background: true });
      const waited = await quick.wait();
      const slow = await s.commands.run('sleep 30', { background: true });
      const listed = (await s.commands.list()).filter((p) => p.pid === slow.pid).map((p) => ({ cmd: p.cmd, args: p.args }));
      const killed = await slow.kill();
      let end; try { await slow.wait(); end = 'no error'; } catch (e) { end = e.constructor.name; }
      const after = (await s.commands.list()).some((p) => p.pid === slow.pid);
      return { stdout: waited.stdout, exitCode: waited.exitCode, listed, killed, end, after };`, (r) => {
      assert.equal(r.stdout, 'done\n');
      assert.equal(r.exitCode, 0);
      assert.equal(r.listed.length, 1);
      assert.match(r.listed[0].args.join(' '), /sleep 30/);
      assert.equal(r.killed, true);
      assert.equal(r.end, 'CommandExitError');
      assert.equal(r.after, false);
    });
    envdCase(w, '/process.Process/SendInput', 'stdin: sendStdin and closeStdin', () => `${connect()}
      const h = await s.commands.run('cat', { background: true, stdin: true });
      await h.sendStdin('hello ');
      await s.commands.sendStdin(h.pid, 'world\\n');
      await h.closeStdin();
      return (await h.wait()).stdout;`, (r) => {
      assert.equal(r, 'hello world\n');
    });
    envdCase(w, '/process.Process/Update', 'pty.create, sendInput, resize, output', () => `${connect()}
      let out = '';
      const dec = new TextDecoder();
      const h = await s.pty.create({ cols: 80, rows: 24, onData: (d) => { out += dec.decode(d); } });
      const until = async (re) => { for (let i = 0; i < 100 && !re.test(out); i++) await new Promise((r) => setTimeout(r, 100)); return re.test(out); };
      await s.pty.sendInput(h.pid, new TextEncoder().encode('stty size\\n'));
      const first = await until(/24 80/);
      await s.pty.resize(h.pid, { cols: 100, rows: 30 });
      await s.pty.sendInput(h.pid, new TextEncoder().encode('stty size; echo $((6*7)); exit\\n'));
      const second = await until(/30 100/);
      const r = await h.wait();
      return { first, second, answer: /42/.test(out), exitCode: r.exitCode };`, (r) => {
      assert.deepEqual(r, { first: true, second: true, answer: true, exitCode: 0 });
    });
    envdCase(w, '/filesystem.Filesystem/Move', 'files: write, read, list, exists, getInfo, makeDir, rename, remove', () => `${connect()}
      const f = s.files;
      const made = await f.makeDir('/tmp/q/sub');
      const again = await f.makeDir('/tmp/q/sub');
      const w1 = await f.write('/tmp/q/a.txt', 'alpha');
      await f.write([{ path: '/tmp/q/sub/b.txt', data: 'beta' }, { path: '/tmp/q/sub/c.bin', data: new Uint8Array([1, 2, 3]).buffer }]);
      const list = (await f.list('/tmp/q')).map((e) => e.name + ':' + e.type).sort();
      const deep = (await f.list('/tmp/q', { depth: 2 })).length;
      const info = await f.getInfo('/tmp/q/a.txt');
      const moved = await f.rename('/tmp/q/a.txt', '/tmp/q/sub/a2.txt');
      const read = await f.read('/tmp/q/sub/a2.txt');
      const bytes = Array.from(await f.read('/tmp/q/sub/c.bin', { format: 'bytes' }));
      const existed = [await f.exists('/tmp/q/a.txt'), await f.exists('/tmp/q/sub/a2.txt')];
      await f.remove('/tmp/q');
      let missing; try { await f.read('/tmp/q/sub/b.txt'); missing = 'read it'; } catch (e) { missing = e.constructor.name; }
      return { made, again, w1: w1.path, list, deep, info: { name: info.name, type: info.type, size: info.size }, moved: moved.path, read, bytes, existed, gone: await f.exists('/tmp/q'), missing };`, (r) => {
      assert.deepEqual(r, {
        made: true, again: false, w1: '/tmp/q/a.txt', list: ['a.txt:file', 'sub:dir'], deep: 4, info: { name: 'a.txt', type: 'file', size: 5 },
        moved: '/tmp/q/sub/a2.txt', read: 'alpha', bytes: [1, 2, 3], existed: [false, true], gone: false, missing: 'FileNotFoundError',
      });
    });
    envdCase(w, '/filesystem.Filesystem/WatchDir', 'files.watchDir (recursive) sees a file written', () => `${connect()}
      await s.files.makeDir('/tmp/watched/in');
      const seen = [];
      const h = await s.files.watchDir('/tmp/watched', (ev) => { seen.push(ev.name + ':' + ev.type); }, { recursive: true });
      await s.files.write('/tmp/watched/in/new.txt', 'x');
      for (let i = 0; i < 50 && !seen.some((e) => e.startsWith('in/new.txt')); i++) await new Promise((r) => setTimeout(r, 100));
      await h.stop();
      return seen;`, (r) => {
      assert.ok(r.some((e: string) => /^in\/new\.txt:(create|write)$/.test(e)), JSON.stringify(r));
    });
    envdCase(w, '/process.Process/Start', 'Sandbox.connect from a second client runs in the same sandbox', () => `${connect()}
      await s.commands.run('echo shared > /tmp/shared.txt');
      const other = await Sandbox.connect(s.sandboxId);
      return (await other.commands.run('cat /tmp/shared.txt; echo $GREETING')).stdout;`, (r) => {
      assert.equal(r, 'shared\nhi\n');
    });
    envdCase(w, '/process.Process/Start', 'a command timeoutMs that expires is the SDK\'s TimeoutError', () => `${connect()}
      const t0 = Date.now();
      let name = 'no error'; try { await s.commands.run('sleep 21', { timeoutMs: 1_000 }); } catch (e) { name = e.constructor.name; }
      const fast = Date.now() - t0 < 10_000;
      const left = (await s.commands.list()).filter((p) => p.args.join(' ').includes('sleep 21'));
      for (const p of left) await s.commands.kill(p.pid);
      return { name, fast, stillRunning: left.length };`, (r) => {
      assert.deepEqual(r, { name: 'TimeoutError', fast: true, stillRunning: 1 }, 'the process outlives the timeout (docs/e2b.md)');
    });
    envdCase(w, '/process.Process/Start', 'getHost: PORT-ID.DOMAIN reaches that port of the sandbox through hutchd', () => `${connect()}
      await s.commands.run('mkdir -p /www && echo hello-host > /www/index.html');
      const h = await s.commands.run('httpd -f -p 127.0.0.1:8080 -h /www', { background: true });
      const host = s.getHost(8080);
      const http = await import('node:http');
      const api = new URL(process.env.E2B_API_URL);
      const get = (hostHeader) => new Promise((resolve, reject) => http.get({ host: api.hostname, port: api.port, path: '/', headers: { host: hostHeader } }, (res) => {
        let d = ''; res.on('data', (c) => { d += c; }); res.on('end', () => resolve(res.statusCode + ' ' + d));
      }).on('error', reject));
      let body = '';
      for (let i = 0; i < 30 && !body.startsWith('200'); i++) { body = await get(host); if (!body.startsWith('200')) await new Promise((r) => setTimeout(r, 100)); }
      const unknown = await get('8080-0123456789abcdef.sandboxes.test');
      await h.kill();
      return { host, body, unknown };`, (r) => {
      assert.match(r.host, /^8080-[0-9a-f]{16}\.sandboxes\.test$/);
      assert.equal(r.body, '200 hello-host\n');
      assert.match(r.unknown, /^404 /);
    });
    envdCase(w, '/process.Process/Start', 'several clients at once: 5 sandboxes x 3 commands', () => `
      const boxes = await Promise.all([0, 1, 2, 3, 4].map(() => Sandbox.create({ timeoutMs: 60_000 })));
      const outs = await Promise.all(boxes.flatMap((b, i) => [0, 1, 2].map(async (j) => (await b.commands.run('echo ' + i + '-' + j)).stdout.trim())));
      await Promise.all(boxes.map((b) => b.kill()));
      return outs.sort();`, (r) => {
      assert.deepEqual(r, [0, 1, 2, 3, 4].flatMap((i) => [0, 1, 2].map((j) => `${i}-${j}`)).sort());
    });
    envdCase(w, '/process.Process/Start', 'the default user is root; a user the image lacks is InvalidArgumentError', () => `${connect()}
      const who = (await s.commands.run('id -un; echo $HOME; pwd')).stdout;
      let named; try { await s.commands.run('id -un', { user: 'user' }); named = 'ran'; } catch (e) { named = e.constructor.name + ': ' + e.message; }
      return { who, named };`, (r) => {
      assert.equal(r.who, 'root\n/root\n/root\n');
      assert.match(r.named, /^InvalidArgumentError: .*unknown user "user"/);
    });
    test(`${CURRENT}: envd calls need the sandbox's access token`, async () => {
      const health = (headers: Record<string, string>) => fetch(`${w().daemon.url}/health`, { headers: { 'E2b-Sandbox-Port': '49983', ...headers } });
      const forged = await health({ 'E2b-Sandbox-Id': id, 'X-Access-Token': 'forged' });
      assert.equal(forged.status, 401);
      assert.match(((await forged.json()) as { message: string }).message, /X-Access-Token/);
      assert.equal((await health({ 'E2b-Sandbox-Id': 'nosuchsandbox0', 'X-Access-Token': 'x' })).status, 502);
      const unknown = await fetch(`${w().daemon.url}/no.Such/Method`, { method: 'POST', headers: { 'E2b-Sandbox-Id': id, 'X-Access-Token': 'forged' } });
      assert.equal(unknown.status, 401, 'the token is checked before the path');
      const token = ok(await sdk(w().project, w().env, `return (await Sandbox.connect(${JSON.stringify(id)})).envdAccessToken ?? null;`)) as string;
      assert.equal((await health({ 'E2b-Sandbox-Id': id, 'X-Access-Token': token })).status, 204);
      const otherPort = await fetch(`${w().daemon.url}/`, { headers: { 'E2b-Sandbox-Id': id, 'E2b-Sandbox-Port': '8080', 'X-Access-Token': token } });
      assert.equal(otherPort.status, 501);
      assert.match(((await otherPort.json()) as { message: string }).message, /envd \(port 49983\) only/);
    });
  });
});

let old: World | undefined;
const oldestSdk = installSdk(OLDEST);

test.describe(`e2b SDK ${OLDEST}`, { skip: 'skip' in oldestSdk ? oldestSdk.skip : false }, () => {
  test.before(async () => { old = await world(oldestSdk, 'e2b-sdk-old'); });
  test.after(async () => endWorld(old));

  test(`${OLDEST}: create, list, connect, kill`, async () => {
    const o = old as World;
    const r = ok(await sdk(o.project, o.env, `
      const s = await Sandbox.create({ metadata: { suite: 'old' }, timeoutMs: 60_000 });
      const listed = (await Sandbox.list({ query: { metadata: { suite: 'old' } } }).nextItems()).map((x) => x.sandboxId);
      const c = await Sandbox.connect(s.sandboxId);
      const running = await c.isRunning();
      const killed = await Sandbox.kill(s.sandboxId);
      return { id: s.sandboxId, listed, same: c.sandboxId === s.sandboxId, running, killed, after: await Sandbox.kill(s.sandboxId) };`));
    assert.deepEqual(r.listed, [r.id]);
    assert.deepEqual({ same: r.same, running: r.running, killed: r.killed, after: r.after }, { same: true, running: true, killed: true, after: false });
  });

  test(`${OLDEST}: commands and files through envd (its calls find their sandbox by token where it sends no id)`, async () => {
    const o = old as World;
    const r = ok(await sdk(o.project, o.env, `
      const s = await Sandbox.create({ timeoutMs: 60_000 });
      const run = await s.commands.run('echo old-sdk; exit 3').catch((e) => ({ exitCode: e.exitCode, stdout: e.stdout }));
      await s.files.write('/tmp/o.txt', 'from 2.7');
      const back = await s.files.read('/tmp/o.txt');
      const names = (await s.files.list('/tmp')).map((e) => e.name);
      await s.kill();
      return { run, back, names };`));
    assert.deepEqual(r.run, { exitCode: 3, stdout: 'old-sdk\n' });
    assert.equal(r.back, 'from 2.7');
    assert.ok(r.names.includes('o.txt'), r.names.join(' '));
  });
});
