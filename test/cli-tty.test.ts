// Interactive terminals through a real pty: `run -t -i` (runc's console) and `exec -t -i` (the agent's pty):
// a working shell, window resize, Ctrl-C reaching the foreground process; and no host tty handed in.
// Platform-independent: run on every platform (testPlatforms).
import test, { after, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import { HUTCH, cleanRoot, hutchOk, leftovers, platformRoot, rootEnv, testPlatforms } from './helpers.js';
import { Terminal } from './e2e/terminal.js';

for (const { name: platform, skip } of testPlatforms()) describe(`on ${platform}`, { ...(skip ? { skip } : {}) }, () => {
  let root: string;
  before(() => { root = platformRoot('tty', platform); });
  after(async () => {
    await cleanRoot(root);
    assert.deepEqual(leftovers(root), []);
  });

  /** hutch on a pty, driven like a person at a terminal would. */
  function hutchTerminal(args: string[]): Terminal {
    return new Terminal(process.execPath, [HUTCH, '--root', root, ...args], rootEnv(root));
  }

  async function shellSession(t: Terminal, interrupt = true): Promise<void> {
    await t.waitFor(/\/ # /);
    let mark = t.type('tty; stty size\r');
    await t.waitFor(/\/dev\/pts\/\d+[\s\S]*24 80/, mark);
    t.term.resize(100, 40);
    await new Promise((r) => setTimeout(r, 300));
    mark = t.type('stty size\r');
    await t.waitFor(/40 100/, mark);
    if (interrupt) {
      mark = t.type('sleep 1000\r');
      await new Promise((r) => setTimeout(r, 300));
      t.type('\x03'); // Ctrl-C: SIGINT to the foreground process group inside
      await t.waitFor(/\^C/, mark);
      mark = t.type('echo "after sleep rc=$?"\r');
      await t.waitFor(/after sleep rc=130/, mark);
    }
    mark = t.type('exit 5\r');
    assert.equal(await t.exit, 5);
  }

  test('run -t -i busybox -- sh: a working interactive shell', async () => {
    if (platform === 'gvisor') {
      // runsc 2022-12 gives a foreground run a terminal only through a console socket: refused in one line.
      const t = hutchTerminal(['run', '--rm', '-t', '-i', 'busybox', '--', 'sh']);
      assert.equal(await t.exit, 125);
      assert.match(t.output, /the gvisor platform gives a foreground run no terminal yet: use hutch run -d and hutch exec -t/);
      assert.deepEqual((await hutchOk(root, ['ls', '-q'])).trim(), '', 'nothing of it is left');
      return;
    }
    await shellSession(hutchTerminal(['run', '--rm', '-t', '-i', 'busybox', '--', 'sh']));
  });

  test('exec -t -i ID -- sh: a working interactive shell through the agent', async () => {
    const id = (await hutchOk(root, ['run', '-d', 'busybox'])).trim();
    try {
      // gvisor: the sentry's pty does not turn ^C into SIGINT for the shell's job (docs/gvisor.md).
      await shellSession(hutchTerminal(['exec', '-t', '-i', id, '--', 'sh']), platform !== 'gvisor');
    } finally {
      await hutchOk(root, ['rm', '-f', id]);
    }
  });

  test('without -t, a host terminal is never handed to the sandbox (it gets pipes)', async () => {
    const t = hutchTerminal(['run', '--rm', '-i', 'busybox', '--', 'sh', '-c', 'for fd in 0 1 2; do readlink /proc/self/fd/$fd; done']);
    assert.equal(await t.exit, 0);
    assert.doesNotMatch(t.output, /\/dev\/pts|\/dev\/tty/);
    assert.match(t.output, platform === 'gvisor' ? /host:\[/ : /pipe:/, 'pipes (gVisor shows a host fd as host:[N])');
  });
});
