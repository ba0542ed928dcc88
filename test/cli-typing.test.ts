// The CLI as people type it: global flags after the verb, `serve --root` and its socket, a --root
// that is a file or a 0700 dir, `start` of a stopped sandbox, TERM on run -t and exec -t.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { HUTCH, cleanRoot, hutch, hutchOk, leftovers, makeRoot, type Result } from './helpers.js';
import { Terminal } from './e2e/terminal.js';

let root: string;
before(() => { root = makeRoot('typing'); });
after(async () => {
  await cleanRoot(root);
  assert.deepEqual(leftovers(root), []);
});

/** hutch with exactly `args` (no --root put first, unlike helpers.hutch). */
function hutchAsTyped(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [HUTCH, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`hutch ${args.join(' ')} timed out: ${stderr}`)); }, 60_000);
    child.on('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, stdout, stderr }); });
  });
}

test('global flags after the verb: ls --root, run --root ... --rm, up to the command (after the image or --)', async () => {
  const id = (await hutchAsTyped(['run', '--root', root, '-d', '--name', 'after-verb', 'busybox'])).stdout.trim();
  assert.match(id, /^[0-9a-f]{16}$/);
  assert.match((await hutchAsTyped(['ls', '--root', root, '-q'])).stdout, new RegExp(id));
  assert.match((await hutchAsTyped(['ls', `--root=${root}`])).stdout, /after-verb/);
  // After the image (or --), the words are the sandboxed command's, --root included.
  const echoed = await hutchAsTyped(['run', '--root', root, '--rm', 'busybox', 'echo', '--root', 'X']);
  assert.equal(echoed.code, 0, echoed.stderr);
  assert.equal(echoed.stdout, '--root X\n');
  assert.equal((await hutchAsTyped(['exec', '--root', root, 'after-verb', '--', 'echo', '--debug'])).stdout, '--debug\n');
  const rm = await hutchAsTyped(['rm', '-f', 'after-verb', '--root', root]);
  assert.equal(rm.code, 0, rm.stderr);
  // The last one wins; a bad value is one line as before.
  assert.equal((await hutchAsTyped(['--root', '/nonexistent-hutch-root', 'ls', '-q', '--root', root])).code, 0);
  const bad = await hutchAsTyped(['ls', '--root']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^hutch: ls: --root needs a value\n$/);
  for (const args of [['ls', '--root='], ['--root=', 'ls'], ['ls', '--executor', '']]) {
    const empty = await hutchAsTyped(args);
    assert.equal(empty.code, 1);
    assert.match(empty.stderr, /^hutch: --(root|executor) needs a value \(got an empty one\)\n$/, args.join(' '));
  }
  const relative = await hutchAsTyped(['ls', '--root', 'relative/dir']);
  assert.equal(relative.code, 1);
  assert.match(relative.stderr, /^hutch: state root must be an absolute path: relative\/dir\n$/);
  // --debug after the verb gives the stack trace.
  const debug = await hutchAsTyped(['start', '--root', root, '--debug', 'no-such-box']);
  assert.equal(debug.code, 1);
  assert.match(debug.stderr, /no such sandbox: no-such-box\n[\s\S]*\n {4}at /);
  const unknown = await hutchAsTyped(['run', '--root', root, '--executor', 'nope', '--rm', 'busybox', '--', 'true']);
  assert.equal(unknown.code, 125);
  assert.match(unknown.stderr, /unknown executor "nope"/);
});

/** `hutch serve` with exactly `args`; resolves once it says where it serves. */
async function serveAsTyped(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ where: string; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, [HUTCH, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM'); await exited; };
  try {
    const where = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`hutchd did not start: ${stderr}`)), 20_000);
      child.stderr.on('data', () => { const m = /serving on (\S+)/.exec(stderr); if (m) { clearTimeout(timer); resolve(m[1]!); } });
      void exited.then(() => { clearTimeout(timer); reject(new Error(`hutchd exited: ${stderr}`)); });
    });
    return { where, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

function healthz(socketPath: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http.get({ socketPath, path: '/healthz' }, (res) => { res.resume(); resolve(res.statusCode ?? 0); }).on('error', reject);
  });
}

test('serve --root R (and HUTCH_ROOT=R) listens on R/hutchd.sock: two roots, two hutchd, no collision', async (t) => {
  const other = makeRoot('typing-serve');
  t.after(() => cleanRoot(other));
  const a = await serveAsTyped(['serve', '--root', root]);
  try {
    assert.equal(a.where, `unix:${path.join(root, 'hutchd.sock')}`);
    const b = await serveAsTyped(['serve'], { HUTCH_ROOT: other });
    try {
      assert.equal(b.where, `unix:${path.join(other, 'hutchd.sock')}`);
      assert.equal(await healthz(path.join(root, 'hutchd.sock')), 200);
      assert.equal(await healthz(path.join(other, 'hutchd.sock')), 200);
    } finally {
      await b.stop();
    }
  } finally {
    await a.stop();
  }
  assert.equal(fs.existsSync(path.join(root, 'hutchd.sock')), false);
});

test('a --root that is a file gets one clear line; a root made 0700 (as runc --root R list makes it) works', async () => {
  const file = path.join(root, 'not-a-dir');
  fs.writeFileSync(file, '');
  for (const args of [['ls'], ['run', '--rm', 'busybox', '--', 'true'], ['run', '-d', 'busybox']]) {
    const r = await hutch(file, args);
    assert.notEqual(r.code, 0);
    assert.equal(r.stderr, `hutch: state root ${file} is not a directory (--root or $HUTCH_ROOT): give a directory, or a path that does not exist yet\n`, args.join(' '));
  }
  // A dir above the root that others cannot search: named, with what to do.
  const locked = path.join(root, 'locked');
  fs.mkdirSync(locked, { mode: 0o700 });
  const under = await hutch(path.join(locked, 'r'), ['run', '--rm', 'busybox', '--', 'true']);
  assert.equal(under.code, 125);
  assert.equal(under.stderr, `hutch: state root ${locked}/r is inside ${locked}, which others cannot search (mode 700): sandboxes could not reach their rootfs; use a root elsewhere (--root) or chmod o+x ${locked}\n`);
  const tight = makeRoot('typing-0700');
  try {
    fs.chmodSync(tight, 0o700);
    assert.equal(await hutchOk(tight, ['run', '--rm', 'busybox', '--', 'echo', 'ok']), 'ok\n');
    const id = (await hutchOk(tight, ['run', '-d', 'busybox'])).trim();
    assert.equal(await hutchOk(tight, ['exec', id, '--', 'echo', 'agent ok']), 'agent ok\n');
  } finally {
    await cleanRoot(tight);
  }
});

test('start of a stopped sandbox says it is stopped and how to run again, in one line', async () => {
  const id = (await hutchOk(root, ['run', '-d', '--name', 'ran-once', 'busybox', '--', 'true'])).trim();
  await hutchOk(root, ['wait', id]);
  const r = await hutch(root, ['start', 'ran-once']);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, `hutch: cannot start sandbox ${id}: it is stopped, and a stopped sandbox cannot run again; remove it (hutch rm ran-once) and make a new one (hutch run, or hutch create and start)\n`);
  await hutchOk(root, ['rm', id]);
});

test('run -t and exec -t set TERM from the caller (xterm when it has none); -e TERM=… wins', async () => {
  const onPty = (term: string | undefined, args: string[]) => new Terminal('/usr/bin/env', [...(term ? [`TERM=${term}`] : ['-u', 'TERM']), process.execPath, HUTCH, '--root', root, ...args], process.env);
  const cases: [string | undefined, string[], string][] = [
    ['screen-256color', ['run', '--rm', '-t', 'busybox', '--', 'sh', '-c', 'echo "term=$TERM"'], 'term=screen-256color'],
    [undefined, ['run', '--rm', '-t', 'busybox', '--', 'sh', '-c', 'echo "term=$TERM"'], 'term=xterm'],
    ['screen-256color', ['run', '--rm', '-t', '-e', 'TERM=vt100', 'busybox', '--', 'sh', '-c', 'echo "term=$TERM"'], 'term=vt100'],
  ];
  const id = (await hutchOk(root, ['run', '-d', 'busybox'])).trim();
  cases.push(['screen-256color', ['exec', '-t', id, '--', 'sh', '-c', 'echo "term=$TERM"'], 'term=screen-256color']);
  cases.push([undefined, ['exec', '-t', id, '--', 'sh', '-c', 'echo "term=$TERM"'], 'term=xterm']);
  try {
    for (const [term, args, want] of cases) {
      const t = onPty(term, args);
      try {
        assert.equal(await t.exit, 0, t.output);
        assert.match(t.output, new RegExp(`${want}[\\r\\n]`), `${term} ${args.join(' ')}`);
      } finally {
        await t.close();
      }
    }
  } finally {
    await hutchOk(root, ['rm', '-f', id]);
  }
});
