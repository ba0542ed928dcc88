// Sandboxes with an agent: create/start/exec/ps/stats/pause/resume/kill/stop/wait/rm/cp, and bad
// transitions. Platform-independent: run on every platform (testPlatforms), one suite.
import test, { after, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cleanRoot, hutch, hutchOk, leftovers, platformRoot, rootEnv, testPlatforms } from './helpers.js';

for (const { name: platform, skip } of testPlatforms()) describe(`on ${platform}`, { ...(skip ? { skip } : {}) }, () => {
  let root: string;
  before(() => { root = platformRoot('life', platform); });
  after(async () => {
    await cleanRoot(root);
    assert.deepEqual(leftovers(root), []);
  });

  async function status(ref: string): Promise<string> {
    const all = JSON.parse(await hutchOk(root, ['ls', '--json'])) as { id: string; name: string; status: string }[];
    const s = all.find((x) => x.id === ref || x.name === ref);
    return s ? s.status : 'absent';
  }

  test('create → ready, start → running, exec, pause ⇄ resume, stop, rm', async () => {
    const id = (await hutchOk(root, ['create', '--name', 'life1', '--memory', '128m', 'busybox'])).trim();
    assert.match(id, /^[0-9a-f]{16}$/);
    assert.equal(await status(id), 'ready');
    const listed = (JSON.parse(await hutchOk(root, ['ls', '--json'])) as { id: string; platform: string }[]).find((x) => x.id === id);
    assert.equal(listed?.platform, platform, 'the sandbox is on the platform it was made on');
    const r = await hutch(root, ['exec', id, '--', 'true']);
    assert.equal(r.code, 125);
    assert.match(r.stderr, /it is ready \(needs running\)/);

    await hutchOk(root, ['start', 'life1']);
    assert.equal(await status(id), 'running');
    const again = await hutch(root, ['start', 'life1']);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /running → running is not a valid transition/);

    assert.equal(await hutchOk(root, ['exec', 'life1', '--', 'sh', '-c', 'echo out; echo err >&2; hostname']), 'out\nlife1\n');
    assert.equal((await hutch(root, ['exec', 'life1', '--', 'sh', '-c', 'exit 3'])).code, 3);
    assert.equal((await hutch(root, ['exec', 'life1', '--', 'sh', '-c', 'kill -9 $$'])).code, 137);
    assert.equal((await hutch(root, ['exec', 'life1', '--', 'no-such-binary'])).code, 127);
    assert.equal(await hutchOk(root, ['exec', '-i', 'life1', '--', 'cat'], { input: 'piped stdin\n' }), 'piped stdin\n');
    assert.equal(await hutchOk(root, ['exec', '-u', '1234:5678', '-w', '/tmp', '-e', 'A=b', 'life1', '--', 'sh', '-c', 'echo $(id -u):$(id -g) $(pwd) $A']), '1234:5678 /tmp b\n');

    const stats = JSON.parse(await hutchOk(root, ['stats', '--json', 'life1'])) as { memoryBytes: number; memoryLimitBytes: number; pids: number; pidsLimit: number };
    assert.ok(stats.memoryBytes > 0);
    assert.equal(stats.memoryLimitBytes, 128 * 1024 * 1024);
    assert.equal(stats.pidsLimit, 1024);

    await hutchOk(root, ['pause', 'life1']);
    assert.equal(await status(id), 'paused');
    assert.match((await hutch(root, ['exec', 'life1', '--', 'true'])).stderr, /paused/);
    assert.match((await hutch(root, ['pause', 'life1'])).stderr, /paused → paused is not a valid transition/);
    await hutchOk(root, ['resume', 'life1']);
    assert.equal(await hutchOk(root, ['exec', 'life1', '--', 'echo', 'thawed']), 'thawed\n');

    const rmRunning = await hutch(root, ['rm', 'life1']);
    assert.notEqual(rmRunning.code, 0);
    assert.match(rmRunning.stderr, /stop it first or use rm -f/);

    await hutchOk(root, ['stop', '--time', '2', 'life1']);
    assert.equal(await status(id), 'stopped');
    assert.match((await hutch(root, ['exec', 'life1', '--', 'true'])).stderr, /it is stopped \(needs running\)/);
    assert.match((await hutch(root, ['start', 'life1'])).stderr, /it is stopped, and a stopped sandbox cannot run again; remove it \(hutch rm life1\)/);
    await hutchOk(root, ['rm', 'life1']);
    assert.equal(await status(id), 'absent');
    assert.match((await hutch(root, ['rm', id])).stderr, /no such sandbox/);
  });

  test('ps lists processes; kill reaches one pid, a process group, or all', async () => {
    const id = (await hutchOk(root, ['run', '-d', 'busybox'])).trim();
    const pid = Number((await hutchOk(root, ['exec', '-d', id, '--', 'sleep', '1001'])).trim());
    await hutchOk(root, ['exec', '-d', id, '--', 'sh', '-c', 'sleep 1002 & sleep 1003']);
    let ps = JSON.parse(await hutchOk(root, ['ps', '--json', id])) as { pid: number; pgid: number; argv: string[] }[];
    assert.ok(ps.some((p) => p.pid === pid && p.argv.join(' ') === 'sleep 1001'));
    const group = ps.find((p) => p.argv.join(' ') === 'sleep 1002')!;
    assert.ok(group);

    await hutchOk(root, ['kill', '--pid', String(pid), id, 'KILL']);
    await hutchOk(root, ['kill', '--pgid', String(group.pgid), id, '9']);
    await new Promise((r) => setTimeout(r, 200));
    ps = JSON.parse(await hutchOk(root, ['ps', '--json', id])) as { pid: number; pgid: number; argv: string[] }[];
    assert.ok(!ps.some((p) => /sleep 100[123]/.test(p.argv.join(' '))), JSON.stringify(ps));
    assert.ok(!ps.some((p) => p.argv.length === 0 && p.pid !== 1), 'no zombies left after the kills');

    await hutchOk(root, ['exec', '-d', id, '--', 'sleep', '1004']);
    await hutchOk(root, ['kill', '--all', id, 'TERM']);
    await new Promise((r) => setTimeout(r, 200));
    ps = JSON.parse(await hutchOk(root, ["ps", "--json", id])) as { pid: number; pgid: number; argv: string[] }[];
    assert.deepEqual(ps.map((p) => p.pid), [1]);
    assert.match((await hutch(root, ['kill', '--pid', 'x', id])).stderr, /invalid pid/);
    await hutchOk(root, ['rm', '-f', id]);
  });

  test('a main process: the sandbox stops when it exits, wait prints its code', async () => {
    const id = (await hutchOk(root, ['create', 'busybox', '--', 'sh', '-c', 'sleep 0.3; exit 42'])).trim();
    await hutchOk(root, ['start', id]);
    const waited = await hutch(root, ['wait', id]);
    assert.deepEqual([waited.stdout, waited.code], ['42\n', 42], 'wait prints the code and exits with it');
    assert.equal(await status(id), 'stopped');
    await hutchOk(root, ['rm', id]);
  });

  test('cp copies files and directories both ways; paths resolve inside the sandbox', async () => {
    const id = (await hutchOk(root, ['run', '-d', 'busybox'])).trim();
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-cp-'));
    try {
      const big = Buffer.alloc(3 * 1024 * 1024 + 17, 'x');
      fs.writeFileSync(path.join(tmp, 'big.bin'), big);
      fs.mkdirSync(path.join(tmp, 'tree/sub'), { recursive: true });
      fs.writeFileSync(path.join(tmp, 'tree/a.txt'), 'A');
      fs.writeFileSync(path.join(tmp, 'tree/sub/b.txt'), 'B');
      await hutchOk(root, ['cp', path.join(tmp, 'big.bin'), `${id}:/tmp/big.bin`]);
      await hutchOk(root, ['cp', path.join(tmp, 'tree'), `${id}:/tmp`]);
      assert.equal(await hutchOk(root, ['exec', id, '--', 'sh', '-c', 'wc -c < /tmp/big.bin; cat /tmp/tree/a.txt /tmp/tree/sub/b.txt']), `${big.length}\nAB`);
      await hutchOk(root, ['exec', id, '--', 'sh', '-c', 'mkdir -p /out/d && echo inside > /out/d/f && ln -s /etc/shadow /out/d/link']);
      await hutchOk(root, ['cp', `${id}:/out`, path.join(tmp, 'back')]);
      assert.equal(fs.readFileSync(path.join(tmp, 'back/d/f'), 'utf8'), 'inside\n');
      assert.equal(fs.readlinkSync(path.join(tmp, 'back/d/link')), '/etc/shadow', 'links are copied as links, not followed');
      await hutchOk(root, ['cp', `${id}:/tmp/big.bin`, path.join(tmp, 'big.back')]);
      assert.ok(fs.readFileSync(path.join(tmp, 'big.back')).equals(big));
      // A link planted inside resolves inside the sandbox, not on the host.
      // (A link to /etc, not to /: gVisor 2022-12 resolves /link-to-root/any/path to / itself; docs/gvisor.md.)
      await hutchOk(root, ['exec', id, '--', 'sh', '-c', 'ln -s /etc /tmp/escape; echo from-sandbox > /etc/os-release']);
      const r = await hutch(root, ['cp', `${id}:/tmp/escape/os-release`, path.join(tmp, 'osr')]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(fs.readFileSync(path.join(tmp, 'osr'), 'utf8'), 'from-sandbox\n', 'the file came from the sandbox, not from the host');
      assert.match((await hutch(root, ['cp', `${id}:/nope`, path.join(tmp, 'x')])).stderr, /nope/);
      assert.match((await hutch(root, ['cp', `${id}:relative`, tmp])).stderr, /must be absolute/);
      assert.match((await hutch(root, ['cp', tmp, tmp])).stderr, /exactly one/);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
      await hutchOk(root, ['rm', '-f', id]);
    }
  });

  test('cp keeps symlinks both ways as text; a link planted in the sandbox never leads a write to the host', async () => {
    const id = (await hutchOk(root, ['run', '-d', 'busybox'])).trim();
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-cplink-'));
    const sh = (script: string): Promise<string> => hutchOk(root, ['exec', id, '--', 'sh', '-c', script]);
    try {
      const victim = path.join(tmp, 'victim'); // a host dir a hostile link in the sandbox names
      fs.mkdirSync(victim);
      fs.mkdirSync(path.join(tmp, 'tree/sub'), { recursive: true });
      fs.writeFileSync(path.join(tmp, 'tree/f'), 'F');
      fs.symlinkSync('f', path.join(tmp, 'tree/rel'));
      fs.symlinkSync(victim, path.join(tmp, 'tree/sub/abs'));
      fs.symlinkSync('/no/such/target', path.join(tmp, 'dangling'));
      await hutchOk(root, ['cp', path.join(tmp, 'tree'), `${id}:/tmp`]);
      await hutchOk(root, ['cp', path.join(tmp, 'dangling'), `${id}:/tmp/dangling`]);
      assert.equal(await sh('for l in /tmp/tree/rel /tmp/tree/sub/abs /tmp/dangling; do readlink $l; done; cat /tmp/tree/rel'), `f\n${victim}\n/no/such/target\nF`,
        'host→sandbox: links are made as links with their target text, a dangling one too');

      // Links the sandbox planted where copies go, naming a host dir: a dir's place, a file's, a link's.
      await sh(`ln -s ${victim} /tmp/evil-dir`);
      await hutchOk(root, ['cp', path.join(tmp, 'tree/sub'), `${id}:/tmp/evil-dir`]);
      assert.equal(await sh('[ -d /tmp/evil-dir ] && [ ! -L /tmp/evil-dir ] && echo replaced; readlink /tmp/evil-dir/abs'), `replaced\n${victim}\n`,
        'a planted link where a directory goes is replaced by the directory, in the sandbox');
      await sh(`mkdir -p ${victim} /tmp/t2/tree; ln -s ${victim} /tmp/t2/tree/sub; ln -s ${victim}/planted /tmp/t2/tree/f; ln -s ${victim} /tmp/t2/tree/rel; ln -s ${victim}/one /tmp/evil-file`);
      await hutchOk(root, ['cp', path.join(tmp, 'tree'), `${id}:/tmp/t2`]);
      await hutchOk(root, ['cp', path.join(tmp, 'tree/f'), `${id}:/tmp/evil-file`]);
      assert.equal(await sh(`cat ${victim}/planted ${victim}/one; readlink /tmp/t2/tree/rel; [ ! -L /tmp/t2/tree/sub ] && readlink /tmp/t2/tree/sub/abs`), `FFf\n${victim}\n`,
        'a file written through a planted link lands where the link resolves inside the sandbox; links and dirs replace links');
      assert.deepEqual(fs.readdirSync(victim), [], 'nothing was written on the host through the sandbox\'s links');

      // sandbox→host: a single link and links in a tree, never followed on the host.
      await sh('ln -s /etc/shadow /tmp/one; mkdir /tmp/lt; ln -s ../../../../etc /tmp/lt/up; ln -s /tmp/lt/up /tmp/lt/chain');
      await hutchOk(root, ['cp', `${id}:/tmp/one`, path.join(tmp, 'one')]);
      assert.equal(fs.readlinkSync(path.join(tmp, 'one')), '/etc/shadow');
      await hutchOk(root, ['cp', `${id}:/tmp/lt`, path.join(tmp, 'lt')]);
      assert.equal(fs.readlinkSync(path.join(tmp, 'lt/up')), '../../../../etc');
      assert.equal(fs.readlinkSync(path.join(tmp, 'lt/chain')), '/tmp/lt/up');
      // A copy onto a link the last copy made on the host (dangling there) does not write through it.
      const again = await hutch(root, ['cp', `${id}:/tmp/tree/f`, path.join(tmp, 'lt/chain')]);
      assert.notEqual(again.code, 0);
      assert.match(again.stderr, /lt\/chain is a symlink on the host: not written through/);
      assert.equal(fs.existsSync('/tmp/lt/up'), false);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
      await hutchOk(root, ['rm', '-f', id]);
    }
  });

  test('cp of a fifo, socket or device, either way, fails with one line naming it and writes nothing', async () => {
    const id = (await hutchOk(root, ['run', '-d', 'busybox'])).trim();
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-cpdev-'));
    const net = await import('node:net');
    const { execFileSync } = await import('node:child_process');
    const server = net.createServer();
    try {
      fs.mkdirSync(path.join(tmp, 'tree'));
      fs.writeFileSync(path.join(tmp, 'tree/a'), 'A');
      execFileSync('mkfifo', [path.join(tmp, 'tree/pipe'), path.join(tmp, 'pipe')]);
      await new Promise<void>((resolve) => server.listen(path.join(tmp, 'sock'), resolve));
      const fails = async (args: string[], named: string, kind: RegExp): Promise<void> => {
        const r = await hutch(root, ['cp', ...args]);
        assert.notEqual(r.code, 0, `cp ${args.join(' ')} succeeded`);
        assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
        assert.ok(r.stderr.includes(`${named} `), r.stderr);
        assert.match(r.stderr, kind);
        assert.match(r.stderr, /only regular files, directories and symlinks can be copied/);
      };
      await fails([path.join(tmp, 'pipe'), `${id}:/tmp/pipe`], path.join(tmp, 'pipe'), /is a fifo/);
      await fails([path.join(tmp, 'tree'), `${id}:/tmp/tree`], path.join(tmp, 'tree/pipe'), /is a fifo/);
      await fails([path.join(tmp, 'sock'), `${id}:/tmp/sock`], path.join(tmp, 'sock'), /is a socket/);
      await fails(['/dev/null', `${id}:/tmp/null`], '/dev/null', /is a character device/);
      assert.equal(await hutchOk(root, ['exec', id, '--', 'ls', '/tmp']), '', 'nothing of a refused tree was copied in');

      await hutchOk(root, ['exec', id, '--', 'sh', '-c', 'mkfifo /tmp/ff; mkdir -p /tmp/d/e; echo x > /tmp/d/a; mkfifo /tmp/d/e/ff']);
      await fails([`${id}:/tmp/ff`, path.join(tmp, 'ff')], '/tmp/ff', /in the sandbox is a device, fifo or socket/);
      await fails([`${id}:/tmp/d`, path.join(tmp, 'd')], '/tmp/d/e/ff', /in the sandbox is a device, fifo or socket/);
      await fails([`${id}:/dev/null`, path.join(tmp, 'null')], '/dev/null', /in the sandbox/);
      for (const name of ['ff', 'd', 'null']) assert.equal(fs.existsSync(path.join(tmp, name)), false, `${name} was not made on the host`);
      // A fifo or device on the host where a file goes is not written to (nor does the copy block on it).
      const onto = await hutch(root, ['cp', `${id}:/tmp/d/a`, path.join(tmp, 'pipe')]);
      assert.notEqual(onto.code, 0);
      assert.match(onto.stderr, /pipe on the host is a fifo or socket: not written to/);
      assert.match((await hutch(root, ['cp', `${id}:/tmp/d/a`, '/dev/null'])).stderr, /\/dev\/null on the host is a character device: not written to/);
    } finally {
      server.close();
      fs.rmSync(tmp, { recursive: true, force: true });
      await hutchOk(root, ['rm', '-f', id]);
    }
  });

  test('exec into a sandbox whose init is the command (run without -d) goes through the executor', async () => {
    const { spawn } = await import('node:child_process');
    const { HUTCH } = await import('./helpers.js');
    const fg = spawn(process.execPath, [HUTCH, '--root', root, 'run', '--name', 'direct1', 'busybox', '--', 'sleep', '1000'], { stdio: 'ignore', env: rootEnv(root) });
    const exited = new Promise<number | null>((res) => fg.on('exit', (code) => res(code)));
    for (let i = 0; i < 100 && (await status('direct1')) !== 'running'; i++) await new Promise((r) => setTimeout(r, 50));
    if (platform === 'gvisor') {
      // runsc's exec has no terminal flag in this release: the platform does not offer it (docs/gvisor.md).
      assert.match((await hutch(root, ['exec', 'direct1', '--', 'true'])).stderr, /on the gvisor platform, which cannot run another command beside it/);
      await hutchOk(root, ['rm', '-f', 'direct1']);
      assert.equal(await exited, 137, 'the foreground run reports the kill');
      return;
    }
    const r = await hutch(root, ['exec', '-e', 'X=y', 'direct1', '--', 'sh', '-c', 'echo $X; cat /proc/1/cmdline | tr "\\0" " "; grep Seccomp: /proc/self/status; exit 4']);
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stdout, /^y\nsleep 1000 Seccomp:\s+2\n$/);
    assert.equal((await hutch(root, ['exec', 'direct1', '--', 'nope'])).code, 127);
    assert.match((await hutch(root, ['ps', 'direct1'])).stderr, /runs its command as init .*: list its processes with hutch exec direct1 -- ps/);
    await hutchOk(root, ['rm', '-f', 'direct1']);
    assert.equal(await exited, 137, 'the foreground run reports the kill');
  });

  test('a reader that goes away: exec gets SIGPIPE like a local process, and nothing is left running', async () => {
    const { spawnSync } = await import('node:child_process');
    const { HUTCH } = await import('./helpers.js');
    const id = (await hutchOk(root, ['run', '-d', 'busybox'])).trim();
    const r = spawnSync('bash', ['-c', `"${process.execPath}" "${HUTCH}" --root "${root}" exec ${id} -- yes | head -1; echo "status=\${PIPESTATUS[0]}"`], { encoding: 'utf8', timeout: 30_000, env: rootEnv(root) });
    assert.equal(r.stdout, 'y\nstatus=141\n', r.stderr);
    assert.doesNotMatch(r.stderr, /EPIPE|Unhandled/);
    await new Promise((res) => setTimeout(res, 200));
    const ps = JSON.parse(await hutchOk(root, ['ps', '--json', id])) as { pid: number }[];
    assert.deepEqual(ps.map((p) => p.pid), [1], 'yes was stopped');
    await hutchOk(root, ['rm', '-f', id]);
  });
});
