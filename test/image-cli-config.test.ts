// An image's runtime config as docker and podman apply it, through the CLI: Entrypoint/Cmd as the main
// command of `run -d` and `create` + `start`, a WorkingDir no layer has made at create, and `-u` with
// names from the rootfs's own /etc/passwd and /etc/group, on run and exec, resolved without leaving it.
import test, { before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { buildImage, dockerArchive, type BuiltImage } from './image-store-kit.js';
import type { LayerEntry } from './image/tar-kit.js';
import { imageCliFixture } from './image-cli-fixture.js';

const fx = imageCliFixture('imgcfg');
const { h, ok } = fx;
let tmp: string;
before(() => ({ tmp } = fx));

/** Loads an image of the busybox base plus `entries` under `tag`. */
async function load(tag: string, entries: LayerEntry[], runtime: Record<string, unknown>): Promise<BuiltImage> {
  const img = buildImage([{ blob: fx.base.blob, diffId: fx.base.diffId }, entries], { Cmd: undefined, ...runtime });
  const file = path.join(tmp, `${tag.replace(/[:/]/g, '-')}.tar`);
  fs.writeFileSync(file, dockerArchive([{ image: img, tags: [tag] }]));
  await ok(['load', '-q', '-i', file]);
  return img;
}

interface Listed { id: string; status: string; command?: string[]; exitCode?: number | null; cwd: string }
async function inspect(id: string): Promise<Listed> {
  const all = JSON.parse(await ok(['ls', '--json'])) as Listed[];
  const found = all.find((s) => s.id === id);
  assert.ok(found, `sandbox ${id} is listed`);
  return found;
}

test('run -d and create + start without a command run the image\'s Entrypoint/Cmd as the main command; logs show it', async () => {
  await load('cfg/cmd:1', [], { Cmd: ['sh', '-c', 'echo "main as $(id -u) in $(pwd)"; sleep 60'] });
  await load('cfg/ep:1', [], { Entrypoint: ['sh', '-c', 'echo "ep: $0 $*"; sleep 60'], Cmd: ['default-arg'] });
  const id = (await ok(['run', '-d', 'cfg/cmd:1'])).trim();
  try {
    assert.deepEqual((await inspect(id)).command, ['sh', '-c', 'echo "main as $(id -u) in $(pwd)"; sleep 60']);
    await waitFor(async () => (await ok(['logs', id])) === 'main as 0 in /\n', 'the Cmd\'s output in hutch logs');
  } finally {
    await ok(['rm', '-f', id]);
  }
  // A given command replaces Cmd and follows the Entrypoint.
  const ep = (await ok(['create', 'cfg/ep:1', '--', 'given'])).trim();
  try {
    await ok(['start', ep]);
    await waitFor(async () => (await ok(['logs', ep])) === 'ep: given \n', 'the entrypoint with the given command');
  } finally {
    await ok(['rm', '-f', ep]);
  }
  const epDefault = (await ok(['run', '-d', 'cfg/ep:1'])).trim();
  try {
    await waitFor(async () => (await ok(['logs', epDefault])) === 'ep: default-arg \n', 'the entrypoint with the image\'s Cmd');
  } finally {
    await ok(['rm', '-f', epDefault]);
  }
  // A Cmd that does not exist: run -d fails as a command that does not exist does, and keeps nothing.
  await load('cfg/missing:1', [], { Cmd: ['no-such-binary'] });
  const missing = await h(['run', '-d', 'cfg/missing:1']);
  assert.equal(missing.code, 127, missing.stderr);
  assert.match(missing.stderr, /command not found: no-such-binary/);
  assert.equal((await ok(['ls', '-q'])).trim(), '');
  // A main command that ends stops the sandbox, and wait prints its code.
  await load('cfg/quick:1', [], { Cmd: ['sh', '-c', 'echo bye; exit 3'] });
  const quick = (await ok(['run', '-d', 'cfg/quick:1'])).trim();
  try {
    const waited = await h(['wait', quick]);
    assert.deepEqual([waited.code, waited.stdout.trim()], [3, '3'], 'wait prints the main command\'s code and exits with it');
    assert.equal(await ok(['logs', quick]), 'bye\n');
  } finally {
    await ok(['rm', '-f', quick]);
  }
  // With --rm -d the sandbox goes when the image's command ends.
  const gone = (await ok(['run', '--rm', '-d', 'cfg/quick:1'])).trim();
  await waitFor(async () => !(await ok(['ls', '-q'])).includes(gone), 'the --rm -d sandbox to be removed');
});

test('--entrypoint drops the image\'s Cmd (as docker does); no Entrypoint and no Cmd: the sandbox waits for exec', async () => {
  await load('cfg/ep2:1', [], { Entrypoint: ['/bin/echo', 'from-entrypoint'], Cmd: ['from-cmd'] });
  assert.equal(await ok(['run', '--rm', 'cfg/ep2:1']), 'from-entrypoint from-cmd\n');
  assert.equal(await ok(['run', '--rm', '--entrypoint', 'echo', 'cfg/ep2:1']), '\n', 'a given entrypoint runs without the image\'s Cmd');
  assert.equal(await ok(['run', '--rm', '--entrypoint', 'echo', 'cfg/ep2:1', 'given']), 'given\n');
  // --entrypoint '' and no command: nothing to run; in the foreground that is an error...
  const none = await h(['run', '--rm', '--entrypoint', '', 'cfg/ep2:1']);
  assert.equal(none.code, 125);
  assert.match(none.stderr, /no command to run/);
  // ...and with -d a sandbox that waits for exec, as one from busybox does.
  const idle = (await ok(['run', '-d', '--entrypoint', '', 'cfg/ep2:1'])).trim();
  await load('cfg/bare:1', [], {});
  const bare = (await ok(['run', '-d', 'cfg/bare:1'])).trim();
  try {
    for (const id of [idle, bare]) {
      const info = await inspect(id);
      assert.equal(info.status, 'running');
      assert.deepEqual(info.command, [], 'no main command');
      assert.equal(await ok(['exec', id, '--', 'echo', 'still here']), 'still here\n');
    }
  } finally {
    await ok(['rm', '-f', idle, bare]);
  }
  const fg = await h(['run', '--rm', 'cfg/bare:1']);
  assert.equal(fg.code, 125);
  assert.match(fg.stderr, /no command to run: give one \(the image has no Cmd or Entrypoint\)/);
});

test('a WorkingDir no layer has is made at create (root\'s, 0755, in the writable layer), in agent mode too', async () => {
  const escape = path.join(tmp, 'outside-the-rootfs');
  await load('cfg/wd:1', [{ name: 'link', type: 'symlink', linkname: escape }, { name: 'afile', content: 'x' }], { WorkingDir: '/work/deep' });
  await load('cfg/wdlink:1', [{ name: 'link', type: 'symlink', linkname: escape }], { WorkingDir: '/link/app' });
  await load('cfg/wdfile:1', [{ name: 'afile', content: 'x' }], { WorkingDir: '/afile/sub' });
  const id = (await ok(['run', '-d', 'cfg/wd:1'])).trim();
  try {
    assert.equal(await ok(['exec', id, '--', 'pwd']), '/work/deep\n');
    assert.equal(await ok(['exec', id, '--', 'stat', '-c', '%u:%g %a', '/work', '/work/deep']), '0:0 755\n0:0 755\n');
    assert.equal(await ok(['exec', '-u', '1234', id, '--', 'sh', '-c', 'pwd; id -u']), '/work/deep\n1234\n');
    // A missing -w of exec is a clear error, not "not found".
    const r = await h(['exec', '-w', '/nowhere', id, '--', 'true']);
    assert.equal(r.code, 125);
    assert.match(r.stderr, /working directory \/nowhere does not exist in the sandbox/);
  } finally {
    await ok(['rm', '-f', id]);
  }
  // An absolute symlink in the path resolves inside the rootfs, as it would in the sandbox: the dir is
  // made there, never on the host.
  const linked = (await ok(['run', '-d', 'cfg/wdlink:1'])).trim();
  try {
    assert.equal(await ok(['exec', linked, '--', 'pwd']), `${escape}/app\n`, 'the dir the link leads to, inside');
    assert.equal(await ok(['exec', linked, '--', 'stat', '-c', '%F', `${escape}/app`]), 'directory\n');
    assert.equal(fs.existsSync(escape), false, 'nothing was made on the host');
  } finally {
    await ok(['rm', '-f', linked]);
  }
  assert.equal(await ok(['run', '--rm', 'cfg/wd:1', '--', 'pwd']), '/work/deep\n', 'a one-shot run too');
  const file = await h(['run', '-d', 'cfg/wdfile:1']);
  assert.equal(file.code, 125);
  assert.match(file.stderr, /cannot make its working directory: .*afile is not a directory/);
  assert.equal(file.stderr.trim().split('\n').length, 1, file.stderr);
});

test('-u NAME[:GROUP], UID[:GID], NAME:GID, UID:GROUP from the image\'s /etc/passwd and /etc/group, on run and exec', async () => {
  await load('cfg/users:1', [], { Cmd: ['sh'] });
  const ids = async (user: string) => ok(['run', '--rm', '-u', user, 'cfg/users:1', '--', 'sh', '-c', 'echo $(id -u):$(id -g) $HOME']);
  assert.equal(await ids('app'), '1234:2345 /home/app\n');
  assert.equal(await ids('app:root'), '1234:0 /home/app\n');
  assert.equal(await ids('app:65534'), '1234:65534 /home/app\n');
  assert.equal(await ids('1234'), '1234:2345 /home/app\n', 'a uid takes its passwd group');
  assert.equal(await ids('4321'), '4321:4321 /\n', 'a uid without an entry keeps working');
  assert.equal(await ids('4321:765'), '4321:765 /\n');
  assert.equal(await ids('0:nogroup'), '0:65534 /root\n');
  for (const [user, message] of [
    ['nosuch', /unknown user "nosuch": no such user in the sandbox's \/etc\/passwd/],
    ['app:nosuch', /unknown group "nosuch": no such group in the sandbox's \/etc\/group/],
    ['a:b:c', /invalid user "a:b:c"/],
    ['70000', /outside the sandbox's id range/],
    ['', /invalid user ""/],
  ] as const) {
    const r = await h(['run', '--rm', '-u', user, 'cfg/users:1', '--', 'true']);
    assert.equal(r.code, 125, `-u ${user}`);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
  // -u overrides the image's User, which is then never looked up (as docker does).
  await load('cfg/ghostuser:1', [], { User: 'ghost' });
  assert.equal(await ok(['run', '--rm', '-u', 'app', 'cfg/ghostuser:1', '--', 'id', '-u']), '1234\n');
  const ghost = await h(['run', '--rm', 'cfg/ghostuser:1', '--', 'true']);
  assert.equal(ghost.code, 125);
  assert.match(ghost.stderr, /unknown user "ghost"/);
  const id = (await ok(['run', '-d', '-u', 'app', 'cfg/users:1', '--', 'sleep', '60'])).trim();
  try {
    assert.equal(await ok(['exec', id, '--', 'id', '-u']), '1234\n', 'the sandbox\'s user');
    assert.equal(await ok(['exec', '-u', 'root', id, '--', 'sh', '-c', 'echo $(id -u):$(id -g) $HOME']), '0:0 /root\n');
    assert.equal(await ok(['exec', '-u', 'nobody:app', id, '--', 'sh', '-c', 'echo $(id -u):$(id -g)']), '65534:2345\n');
    // A user added at run time is found: names are resolved in the sandbox's rootfs as it is now.
    await ok(['exec', '-u', '0', id, '--', 'sh', '-c', 'echo "late:x:777:778::/home/late:/bin/sh" >> /etc/passwd; echo "lategroup:x:779:" >> /etc/group']);
    assert.equal(await ok(['exec', '-u', 'late:lategroup', id, '--', 'sh', '-c', 'echo $(id -u):$(id -g) $HOME']), '777:779 /home/late\n');
    const r = await h(['exec', '-u', 'ghost', id, '--', 'true']);
    assert.equal(r.code, 125);
    assert.match(r.stderr, /unknown user "ghost"/);
  } finally {
    await ok(['rm', '-f', id]);
  }
});

test('names are resolved without leaving the rootfs: a symlinked passwd cannot read host files; fifos and huge files are refused', async () => {
  const hostDir = path.join(tmp, 'host-only');
  fs.mkdirSync(hostDir);
  fs.writeFileSync(path.join(hostDir, 'passwd'), 'hostonly:x:4242:4242::/:/bin/sh\n');
  await load('cfg/hostile:1', [], { Cmd: ['sleep', '60'] });
  const id = (await ok(['run', '-d', 'cfg/hostile:1'])).trim();
  const sh = (script: string) => ok(['exec', '-u', '0:0', id, '--', 'sh', '-c', script]);
  try {
    for (const link of [`${hostDir}/passwd`, `../../../../../../../..${hostDir}/passwd`]) {
      await sh(`busybox rm -f /etc/passwd && busybox ln -s '${link}' /etc/passwd`);
      const r = await h(['exec', '-u', 'hostonly', id, '--', 'true']);
      assert.equal(r.code, 125, `through ${link}: ${r.stdout}`);
      assert.match(r.stderr, /unknown user "hostonly"/);
    }
    // A link that stays inside is followed, as it would be in the sandbox.
    await sh('echo "inside:x:555:555::/:/bin/sh" > /tmp/pw && busybox rm -f /etc/passwd && busybox ln -s ../tmp/pw /etc/passwd');
    assert.equal(await ok(['exec', '-u', 'inside', id, '--', 'id', '-u']), '555\n');
    await sh('busybox rm -f /etc/passwd && busybox mkfifo /etc/passwd');
    const fifo = await h(['exec', '-u', 'inside', id, '--', 'true']);
    assert.equal(fifo.code, 125);
    assert.match(fifo.stderr, /etc\/passwd in the sandbox's rootfs is not a regular file/);
    await sh('busybox rm -f /etc/passwd && head -c 2000000 /dev/zero > /etc/passwd');
    const huge = await h(['exec', '-u', 'inside', id, '--', 'true']);
    assert.equal(huge.code, 125);
    assert.match(huge.stderr, /etc\/passwd in the sandbox's rootfs is larger than 1048576 bytes/);
  } finally {
    await ok(['rm', '-f', id]);
  }
});

async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
