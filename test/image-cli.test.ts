// The image verbs' surface: progress bars on a terminal (a real pty) and plain lines otherwise, how
// IMAGE is looked up (short names, ids, prefixes, digests), and one-line usage errors.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cleanRoot, cleanUpAll, HUTCH, hutch, leftovers, makeRoot, type Result } from './helpers.js';
import { Terminal } from './e2e/terminal.js';
import { pushImage, startRegistry, type TestRegistry } from './image/registry-kit.js';
import { makeLayer } from './image/tar-kit.js';
import { buildImage, busyboxEntries } from './image-store-kit.js';
import { ImageStore } from '../src/image/store/index.js';
import { progressDisplay } from '../src/cli/progress.js';
import { isHutchError } from '../src/errors.js';
import type { ImageRecord } from '../src/image/types.js';

let root: string;
let tmp: string;
let reg: TestRegistry;
let env: NodeJS.ProcessEnv;

before(async () => {
  root = makeRoot('imgcli');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-imgcli-'));
  env = { HUTCH_IMAGE_ROOT: path.join(tmp, 'store'), REGISTRY_AUTH_FILE: path.join(tmp, 'no-auth.json') };
  reg = await startRegistry();
});
after(() => cleanUpAll(
  () => cleanRoot(root),
  () => reg?.stop(),
  () => fs.rmSync(tmp, { recursive: true, force: true }),
  () => assert.deepEqual(leftovers(root), []),
));

const h = (args: string[]): Promise<Result> => hutch(root, args, { env, timeoutMs: 120_000 });

test('pull on a terminal draws a bar per layer, redrawn in place; ends with the id', async () => {
  const base = buildImage([busyboxEntries()]).layers[0]!.blob;
  const img = await pushImage(reg.host, 'cli/bars', '1', { layers: [base, makeLayer([{ name: 'f', content: 'x'.repeat(100_000) }])] });
  const t = new Terminal(process.execPath, [HUTCH, '--root', root, 'pull', `${reg.host}/cli/bars:1`], { ...process.env, ...env });
  assert.equal(await t.exit, 0, t.output);
  for (const l of img.manifest.layers) assert.match(t.output, new RegExp(`${l.digest.slice(7, 19)}  (Done|Unpacking)`));
  assert.match(t.output, /\x1b\[\d+A/, 'the block of lines is redrawn (cursor up)');
  assert.match(t.output, /\x1b\[2K/, 'each line is cleared before it is drawn');
  assert.ok(t.output.trimEnd().endsWith(img.manifest.config.digest), 'the id comes last');
});

test('the bar display: a bar while downloading, sizes; the line display: one line per phase change', () => {
  let out = '';
  const tty = { isTTY: true, columns: 100, write: (s: string) => { out += s; return true; } } as unknown as NodeJS.WriteStream;
  const bars = progressDisplay(tty);
  const digest = `sha256:${'ab'.repeat(32)}`;
  bars.onProgress({ digest, phase: 'downloading', done: 0, total: 4_000_000 });
  bars.onProgress({ digest, phase: 'downloading', done: 2_000_000, total: 4_000_000 });
  bars.finish();
  assert.match(out, /abababababab {2}Downloading +\[=+> +\] 2\.0 MB \/ 4\.0 MB/);
  let plain = '';
  const pipe = { isTTY: false, write: (s: string) => { plain += s; return true; } } as unknown as NodeJS.WriteStream;
  const lines = progressDisplay(pipe);
  for (const phase of ['downloading', 'downloading', 'verifying', 'unpacking', 'done'] as const) lines.onProgress({ digest, phase, done: 1, total: 4_000_000 });
  assert.equal(plain, 'Layer abababababab: Downloading (4.0 MB)\nLayer abababababab: Verifying\nLayer abababababab: Unpacking\nLayer abababababab: Done (4.0 MB)\n');
});

test('IMAGE lookup: short and full names, ids with or without sha256:, unique prefixes of ≥ 12, name@digest', () => {
  const store = new ImageStore(path.join(tmp, 'lookup'), { uidBase: 1e9, gidBase: 1e9, size: 65536 });
  store.parts();
  const record = (hex: string, repoDigests: string[] = []): ImageRecord => ({
    id: `sha256:${hex}`, names: [], manifestDigest: `sha256:${'f'.repeat(64)}`, repoDigests, architecture: 'amd64', os: 'linux',
    storedAt: new Date().toISOString(), size: 0, layers: [], config: {},
  });
  const a = 'a1b2c3d4e5f6' + '0'.repeat(52);
  const b = 'a1b2c3d4e5f6' + '1'.repeat(52);
  const c = 'c'.repeat(64);
  const pinned = `127.0.0.1:5000/team/app@sha256:${'d'.repeat(64)}`;
  store.records.register(record(a), ['docker.io/library/busybox:latest']);
  store.records.register(record(b), ['127.0.0.1:5000/team/app:1']);
  store.records.register(record(c, [pinned]), []);
  for (const q of ['busybox', 'busybox:latest', 'library/busybox', 'docker.io/library/busybox:latest', `sha256:${a}`, a]) assert.equal(store.find(q)?.id, `sha256:${a}`, q);
  assert.equal(store.find('127.0.0.1:5000/team/app:1')?.id, `sha256:${b}`);
  assert.equal(store.find(pinned)?.id, `sha256:${c}`);
  assert.equal(store.find('cccccccccccc')?.id, `sha256:${c}`);
  assert.equal(store.find('a1b2c3d4e5f60')?.id, `sha256:${a}`, 'a longer prefix that is unique');
  assert.throws(() => store.find('a1b2c3d4e5f6'), (e: unknown) => isHutchError(e, 'EINVAL') && /ambiguous/.test(e.message));
  assert.equal(store.find('ccccc'), undefined, 'a prefix shorter than 12 is a name, and no image has it');
  assert.equal(store.find('127.0.0.1:5000/team/app:2'), undefined);
  assert.equal(store.nameOf('busybox'), 'docker.io/library/busybox:latest');
  assert.equal(store.nameOf(pinned), undefined, 'a repo digest that is not one of the names');
  assert.equal(store.nameOf(a), undefined, 'an id is not a name');
  assert.deepEqual(store.list().map((r) => r.id).sort(), [a, b, c].map((x) => `sha256:${x}`).sort());
  assert.throws(() => store.rootfsOf('nope'), (e: unknown) => isHutchError(e, 'ENOTFOUND') && e.message === 'image nope not found');
});

test('run and create with a bad image name say what is wrong with it in one line', async () => {
  const cases: [string, RegExp][] = [
    ['Busybox', /^hutch: invalid image reference "Busybox": repository name must be lowercase\n$/],
    [`x@sha256:${'A'.repeat(64)}`, /: bad digest: hex digits must be lowercase\n$/],
    [`x/${'a'.repeat(300)}`, /…": the name is 312 characters, at most 255\n$/],
  ];
  for (const [image, re] of cases) {
    for (const verb of [['run', '--rm'], ['create']]) {
      const r = await h([...verb, image, '--', 'true']);
      assert.equal(r.code, 125, `${verb.join(' ')} ${image}: ${r.stderr}`);
      assert.match(r.stderr, re);
    }
  }
  assert.deepEqual(JSON.parse((await h(['ls', '--json'])).stdout), [], 'no sandbox was made');
});

test('usage errors are one line with exit code 1', async () => {
  const cases: [string[], RegExp][] = [
    [['pull'], /^hutch: pull: missing image reference/],
    [['pull', '--platform', 'a/b/c/d', 'busybox'], /^hutch: invalid platform "a\/b\/c\/d": expected os\/arch/],
    [['pull', 'UPPER/Case'], /^hutch: .*(invalid|reference)/i],
    [['pull', 'Busybox'], /^hutch: invalid image reference "Busybox": repository name must be lowercase$/m],
    [['pull', 'busybox:t!'], /^hutch: invalid image reference "busybox:t!": tag "t!" has "!"/],
    [['pull', `busybox@sha256:${'a'.repeat(40)}`], /: bad digest: sha256 takes 64 hex digits, this has 40$/m],
    [['pull', ':5000/busybox'], /: registry port ":5000" has no host before it$/m],
    [['pull', ''], /^hutch: invalid image reference "": the name is empty$/m],
    [['load'], /^hutch: load: missing input/],
    [['image'], /^hutch: image: missing subcommand/],
    [['image', 'prune', 'extra'], /^hutch: image prune takes no operands/],
    [['rmi', `sha256:${'e'.repeat(64)}`], /^hutch: image sha256:e{64} not found/],
  ];
  for (const [args, re] of cases) {
    const r = await h(args);
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});
