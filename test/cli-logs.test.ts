// hutch logs: a detached main command's output is kept by the agent (main.log in the run dir, one
// rotation) and read back by the host as untrusted files.
// Platform-independent: run on every platform (testPlatforms).
import test, { after, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { cleanRoot, hutch, hutchOk, leftovers, platformRoot, testPlatforms } from './helpers.js';

for (const { name: platform, skip } of testPlatforms()) describe(`on ${platform}`, { ...(skip ? { skip } : {}) }, () => {
  let root: string;
  before(() => { root = platformRoot('logs', platform); });
  after(async () => {
    await cleanRoot(root);
    assert.deepEqual(leftovers(root), []);
  });

  test('stdout and stderr of the main command, --tail, and -f until the sandbox stops', async () => {
    const id = (await hutchOk(root, ['run', '-d', 'busybox', '--', 'sh', '-c', 'echo one; echo two >&2; sleep 1; echo three; exit 3'])).trim();
    const early = await hutchOk(root, ['logs', id]);
    assert.equal(early, 'one\ntwo\n');
    const followed = await hutch(root, ['logs', '-f', id]);
    assert.equal(followed.code, 0, followed.stderr);
    assert.equal(followed.stdout, 'one\ntwo\nthree\n', 'follow ends when the sandbox stops, with all output');
    assert.equal(await hutchOk(root, ['logs', '--tail', '2', id]), 'two\nthree\n');
    assert.equal(await hutchOk(root, ['logs', '-n', '0', id]), '');
    const waited = await hutch(root, ['wait', id]);
    assert.deepEqual([waited.stdout, waited.code], ['3\n', 3]);
    await hutchOk(root, ['rm', id]);
  });

  test('output past the cap is rotated once: the newest output is all there', async () => {
    // 9 MiB of 64-byte lines, past the 8 MiB cap: main.log.1 holds the first part, main.log the rest.
    const id = (await hutchOk(root, ['run', '-d', 'busybox', '--', 'sh', '-c', 'yes 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde | head -n 147456; echo END'])).trim();
    await hutchOk(root, ['wait', id]);
    const run = path.join(root, 'sandboxes', id, 'run');
    assert.ok(fs.existsSync(path.join(run, 'main.log.1')), 'rotated');
    const r = await hutch(root, ['logs', id]);
    assert.equal(r.stdout.length, 147456 * 64 + 4);
    assert.ok(r.stdout.endsWith('cde\nEND\n'));
    assert.equal(await hutchOk(root, ['logs', '--tail', '1', id]), 'END\n');
    await hutchOk(root, ['rm', id]);
  });

  test('a log the sandbox turned into a symlink or a fifo is refused, nothing of the host is read', async () => {
    // The agent writes main.log when output comes: the symlink goes in after the last output.
    const id = (await hutchOk(root, ['run', '-d', 'busybox', '--', 'sh', '-c', 'echo x; sleep 0.3; rm -f /.hutch/run/main.log; ln -s /etc/shadow /.hutch/run/main.log && touch /.hutch/run/planted; sleep 600'])).trim();
    const planted = path.join(root, 'sandboxes', id, 'run', 'planted');
    for (let i = 0; i < 200 && !fs.existsSync(planted); i++) await new Promise((res) => setTimeout(res, 25));
    assert.ok(fs.existsSync(planted), 'the sandbox planted its symlink');
    let r = await hutch(root, ['logs', id]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^hutch: the sandbox's log .*main\.log is a symlink: not read\n$/);
    assert.doesNotMatch(r.stdout, /root:/);
    await hutchOk(root, ['exec', id, '--', 'sh', '-c', 'rm /.hutch/run/main.log; mkfifo /.hutch/run/main.log.1']);
    r = await hutch(root, ['logs', id], { timeoutMs: 10_000 });
    if (platform === 'gvisor') {
      // gVisor makes a fifo inside the sentry only: the host's run dir never sees one.
      assert.equal(r.code, 0, r.stderr);
      assert.ok(!fs.existsSync(path.join(root, 'sandboxes', id, 'run', 'main.log.1')));
    } else {
      assert.equal(r.code, 1);
      assert.match(r.stderr, /main\.log\.1 is not a regular file: not read/);
    }
    await hutchOk(root, ['rm', '-f', id]);
  });

  test('a foreground run has no log; bad input is one line', async () => {
    await hutchOk(root, ['run', '--name', 'fg', 'busybox', '--', 'true']);
    let r = await hutch(root, ['logs', 'fg']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /ran its command in the foreground: its output went to the terminal/);
    await hutchOk(root, ['rm', 'fg']);
    r = await hutch(root, ['logs', 'no-such-sandbox']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no-such-sandbox/);
    r = await hutch(root, ['logs', '--tail', 'x', 'fg']);
    assert.match(r.stderr, /invalid --tail "x"/);
  });
});
