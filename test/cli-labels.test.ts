// Labels, sandbox updates (what a warm pool's claim does) and the image-related flags' bad input.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { cleanRoot, hutch, hutchOk, leftovers, makeRoot } from './helpers.js';
import { Engine, SandboxCalls } from '../src/engine/index.js';

let root: string;
before(() => { root = makeRoot('labels'); });
after(async () => {
  await cleanRoot(root);
  assert.deepEqual(leftovers(root), []);
});

test('labels given at run are kept and listed; ls shows the image column', async () => {
  const id = (await hutchOk(root, ['run', '-d', '--label', 'team=a', '-l', 'dev.example/x=1', 'busybox'])).trim();
  const listed = JSON.parse(await hutchOk(root, ['ls', '--json'])) as { id: string; labels?: Record<string, string> }[];
  assert.deepEqual(listed.find((s) => s.id === id)?.labels, { team: 'a', 'dev.example/x': '1' });
  assert.match(await hutchOk(root, ['ls']), new RegExp(`${id}\\s+\\S+\\s+busybox\\s+running`));
  await hutchOk(root, ['rm', '-f', id]);
});

test('bad labels, pull policies and entrypoints are refused before anything is made', async () => {
  for (const [args, message] of [
    [['--label', 'novalue'], /invalid --label "novalue": use KEY=VALUE/],
    [['--label', '-bad=1'], /invalid label key "-bad"/],
    [['--pull', 'sometimes'], /invalid --pull "sometimes"/],
    [['--entrypoint', '[1, 2]'], /invalid --entrypoint .*array of strings/],
    [['--entrypoint', '[oops'], /invalid --entrypoint .*not a JSON array/],
  ] as const) {
    const r = await hutch(root, ['run', ...args, 'busybox', '--', 'true']);
    assert.equal(r.code, 125, r.stderr);
    assert.match(r.stderr, message);
  }
  const many = Array.from({ length: 65 }, (_, i) => ['--label', `k${i}=v`]).flat();
  const r = await hutch(root, ['run', ...many, 'busybox', '--', 'true']);
  assert.match(r.stderr, /too many labels \(65\)/);
  assert.deepEqual((await hutchOk(root, ['ls', '-q'])).trim(), '');
});

test('an image that is not in the store and --pull never: a clear error, no sandbox', async () => {
  const r = await hutch(root, ['run', '--pull', 'never', 'example.invalid/nothing:1', '--', 'true'], { env: { HUTCH_IMAGE_ROOT: `${root}/images` } });
  assert.equal(r.code, 125);
  assert.match(r.stderr, /image example.invalid\/nothing:1 is not in the store/);
  assert.deepEqual((await hutchOk(root, ['ls', '-q'])).trim(), '');
});

test('update: env and working dir for later execs, labels set and removed', async () => {
  const engine = new Engine({ root });
  const calls = new SandboxCalls(engine);
  const created = await engine.create({ rootfs: 'busybox', labels: { pool: 'busybox' } });
  try {
    await engine.start(created.id);
    const updated = await engine.update(created.id, { env: ['GREETING=hi'], cwd: '/tmp', labels: { pool: null, owner: 'me' } });
    assert.deepEqual(updated.labels, { owner: 'me' });
    const p = await calls.exec(created.id, { argv: ['sh', '-c', 'echo "$GREETING $(pwd)"'] });
    const chunks: Buffer[] = [];
    p.stdout.on('data', (d: Buffer) => chunks.push(d));
    const ended = new Promise((resolve) => p.stdout.on('end', resolve));
    const exit = await p.wait();
    await ended;
    assert.equal(exit.exitCode, 0);
    assert.equal(Buffer.concat(chunks).toString(), 'hi /tmp\n');
    await assert.rejects(engine.update(created.id, { cwd: 'relative' }), /working directory must be absolute/);
    await assert.rejects(engine.update(created.id, { labels: { owner: 'you' }, ifLabels: { pool: 'busybox' } }), /no longer has label pool=busybox/);
    assert.deepEqual((await engine.inspect(created.id)).labels, { owner: 'me' }, 'a failed precondition changes nothing');
    await assert.rejects(engine.update(created.id, { labels: { 'bad key': 'x' } }), /invalid label key/);
    await assert.rejects(engine.update('0000000000000000', { labels: {} }), /0000000000000000/);
  } finally {
    calls.closeAll();
    await engine.remove(created.id, true);
  }
});
