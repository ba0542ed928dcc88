// hutch run: one-shot sandboxes, exit codes, hardening really in force, limits, bad input.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cleanRoot, hutch, hutchOk, leftovers, makeRoot } from './helpers.js';

let root: string;
before(() => { root = makeRoot('run'); });
after(async () => {
  await cleanRoot(root);
  assert.deepEqual(leftovers(root), []);
});

test('run --rm prints the command output and leaves no sandbox', async () => {
  const out = await hutchOk(root, ['run', '--rm', 'busybox', '--', 'echo', 'hello sandbox']);
  assert.equal(out, 'hello sandbox\n');
  assert.equal((await hutchOk(root, ['ls', '-q'])).trim(), '');
});

test('the exit code comes back; a signal N gives 128+N', async () => {
  assert.equal((await hutch(root, ['run', '--rm', 'busybox', '--', 'sh', '-c', 'exit 7'])).code, 7);
  // The command is pid 1 of its namespace here (it ignores a SIGKILL of its own): kill a child.
  assert.equal((await hutch(root, ['run', '--rm', 'busybox', '--', 'sh', '-c', 'sleep 10 & kill -9 $!; wait $!'])).code, 137);
});

test('stdin reaches the command with -i', async () => {
  const r = await hutch(root, ['run', '--rm', '-i', 'busybox', '--', 'sh', '-c', 'tr a-z A-Z'], { input: 'shout\n' });
  assert.equal(r.stdout, 'SHOUT\n');
});

test('a command that does not exist gives exit code 127 and one clear line', async () => {
  const r = await hutch(root, ['run', '--rm', 'busybox', '--', 'no-such-command']);
  assert.equal(r.code, 127, r.stderr);
  assert.match(r.stderr, /no-such-command/);
  assert.equal((await hutchOk(root, ['ls', '-q'])).trim(), '');
});

test('root inside is an unprivileged id outside; hostname is the name; env, workdir and user apply', async () => {
  const out = await hutchOk(root, ['run', '--rm', '--name', 'probe-1', '-e', 'GREETING=hi', '-w', '/tmp', '-u', '1000:1000', 'busybox', '--',
    'sh', '-c', 'cat /proc/self/uid_map; hostname; echo $GREETING; pwd; id -u; id -g']);
  const lines = out.trim().split('\n');
  const [inside, outside, size] = lines[0]!.trim().split(/\s+/).map(Number);
  assert.equal(inside, 0);
  assert.ok(outside! >= 65536, `root maps to host uid ${outside}`);
  assert.equal(size, 65536);
  assert.deepEqual(lines.slice(1), ['probe-1', 'hi', '/tmp', '1000', '1000']);
  // Names come from the rootfs's /etc/passwd and /etc/group (busybox's has root and nobody).
  assert.equal(await hutchOk(root, ['run', '--rm', '-u', 'nobody:root', 'busybox', '--', 'sh', '-c', 'echo $(id -u):$(id -g) $HOME']), '65534:0 /nonexistent\n');
  // A -w no layer has is made (root's), as runc and docker do.
  assert.equal(await hutchOk(root, ['run', '--rm', '-w', '/new/dir', '-u', 'nobody', 'busybox', '--', 'sh', '-c', 'pwd; stat -c %u /new/dir']), '/new/dir\n0\n');
});

test('the rootfs appears owned by root and the writable layer works; the base is never modified', async () => {
  const out = await hutchOk(root, ['run', '--rm', 'busybox', '--', 'sh', '-c', 'stat -c %u:%g /bin/busybox; echo data > /etc/new-file && cat /etc/new-file; rm /bin/ls && echo removed']);
  assert.deepEqual(out.trim().split('\n'), ['0:0', 'data', 'removed']);
  const again = await hutchOk(root, ['run', '--rm', 'busybox', '--', 'sh', '-c', 'test -e /etc/new-file && echo leaked; test -e /bin/ls && echo intact']);
  assert.equal(again.trim(), 'intact');
});

test('seccomp denies dangerous syscalls with EPERM; capabilities are minimal; no_new_privs is set', async () => {
  const out = await hutch(root, ['run', '--rm', 'busybox', '--', 'sh', '-c',
    'unshare -U true 2>&1; echo "unshare=$?"; mount -t tmpfs none /mnt 2>&1; echo "mount=$?"; grep -E "^(CapEff|NoNewPrivs|Seccomp):" /proc/self/status']);
  assert.match(out.stdout, /unshare: .*(Operation not permitted|not permitted)/i);
  assert.match(out.stdout, /unshare=1/);
  assert.match(out.stdout, /mount=[1-9]/);
  assert.match(out.stdout, /CapEff:\s+00000000a80425fb/);
  assert.match(out.stdout, /NoNewPrivs:\s+1/);
  assert.match(out.stdout, /Seccomp:\s+2/);
});

test('masked and read-only /proc and /sys paths', async () => {
  const out = await hutch(root, ['run', '--rm', 'busybox', '--', 'sh', '-c',
    'wc -c < /proc/keys; echo 1 > /proc/sys/kernel/domainname 2>&1; echo "sys=$?"; echo x > /proc/sysrq-trigger 2>&1; echo "sysrq=$?"']);
  const lines = out.stdout.trim().split('\n');
  assert.equal(lines[0]!.trim(), '0', '/proc/keys reads as empty');
  assert.match(out.stdout, /sys=1/);
  assert.match(out.stdout, /sysrq=1/);
});

test('network host: the host\'s resolv.conf and hosts, read-only, so names resolve as on the host; none keeps the rootfs\'s', async () => {
  const hostResolv = fs.readFileSync('/etc/resolv.conf', 'utf8');
  const hostHosts = fs.readFileSync('/etc/hosts', 'utf8');
  for (const extra of [[], ['--read-only']]) {
    const out = await hutchOk(root, ['run', '--rm', '--network', 'host', ...extra, 'busybox', '--', 'sh', '-c', 'cat /etc/resolv.conf; echo ---; cat /etc/hosts; echo x >> /etc/resolv.conf 2>/dev/null && echo writable || echo read-only']);
    assert.equal(out, `${hostResolv}---\n${hostHosts}read-only\n`, `with ${extra.join(' ') || 'a writable layer'}`);
  }
  // An image without the files gets them made in its writable layer for the mount.
  const bare = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-bare-'));
  try {
    fs.chmodSync(bare, 0o755);
    fs.cpSync(path.join(process.env.HUTCH_DATA_ROOT ?? '/var/lib/hutch', 'rootfs', 'busybox'), bare, { recursive: true, verbatimSymlinks: true });
    fs.rmSync(path.join(bare, 'etc', 'resolv.conf'));
    assert.equal(await hutchOk(root, ['run', '--rm', '--network', 'host', bare, '--', 'cat', '/etc/resolv.conf']), hostResolv);
    assert.ok(!fs.existsSync(path.join(bare, 'etc', 'resolv.conf')), 'the base rootfs is not changed');
  } finally {
    fs.rmSync(bare, { recursive: true, force: true });
  }
  assert.equal(await hutchOk(root, ['run', '--rm', 'busybox', '--', 'cat', '/etc/resolv.conf']), fs.readFileSync(path.join(process.env.HUTCH_DATA_ROOT ?? '/var/lib/hutch', 'rootfs', 'busybox', 'etc', 'resolv.conf'), 'utf8'));
});

test('network: loopback only by default', async () => {
  const out = await hutchOk(root, ['run', '--rm', 'busybox', '--', 'sh', '-c', 'ls /sys/class/net; ip -o link show lo | grep -c UP']);
  assert.deepEqual(out.trim().split('\n'), ['lo', '1']);
});

test('hardening can be switched off part by part', async () => {
  const out = await hutchOk(root, ['run', '--rm', '--no-userns', '--seccomp', 'off', '--cap-all', '--allow-new-privs', 'busybox', '--', 'sh', '-c',
    'cat /proc/self/uid_map; grep -E "^(NoNewPrivs|Seccomp):" /proc/self/status']);
  assert.match(out, /^\s*0\s+0\s+4294967295/m);
  assert.match(out, /NoNewPrivs:\s+0/);
  assert.match(out, /Seccomp:\s+0/);
});

test('the pids limit stops a fork bomb', async () => {
  const r = await hutch(root, ['run', '--rm', '--pids', '20', 'busybox', '--', 'sh', '-c',
    // Only shell builtins after the bomb: at the limit, nothing can fork.
    '(i=0; while [ $i -lt 60 ]; do sleep 30 & i=$((i+1)); done) 2>/dev/null; read n < /sys/fs/cgroup/pids/pids.current; read m < /sys/fs/cgroup/pids/pids.max; kill -9 -1; echo "running=$n max=$m"'], { timeoutMs: 60_000 });
  const running = Number(/running=(\d+)/.exec(r.stdout)?.[1]);
  assert.ok(running <= 20 && running >= 15, `processes in the sandbox: ${running}; ${r.stdout} ${r.stderr}`);
  assert.match(r.stdout, /max=20/);
});

test('the memory limit OOM-kills a process that grows past it', async () => {
  const r = await hutch(root, ['run', '--rm', '--memory', '32m', 'busybox', '--', 'sh', '-c', 'tail /dev/zero; echo "tail=$?"'], { timeoutMs: 60_000 });
  assert.match(r.stdout, /tail=137/);
});

test('the cpu limit is written to the cgroup', async () => {
  const out = await hutchOk(root, ['run', '--rm', '--cpus', '0.5', 'busybox', '--', 'sh', '-c',
    'cat /sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us 2>/dev/null || cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d" " -f1 /sys/fs/cgroup/cpu.max']);
  assert.equal(out.trim(), '50000');
});

test('bad input: each is one clear line, non-zero, and nothing is left', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-bad-'));
  try {
    fs.symlinkSync('/', path.join(tmp, 'to-root'));
    const cases: [string[], RegExp][] = [
      [['run', '--rm', '/nonexistent/rootfs', '--', 'true'], /does not exist/],
      [['run', '--rm', path.join(tmp, 'to-root'), '--', 'true'], /host's root/],
      [['run', '--rm', '--name', 'bad/name', 'busybox', '--', 'true'], /invalid sandbox name/],
      [['run', '--rm', '--name', 'x'.repeat(200), 'busybox', '--', 'true'], /invalid sandbox name/],
      [['run', '--rm', '--memory', '1k', 'busybox', '--', 'true'], /too small/],
      [['run', '--rm', '--memory', 'lots', 'busybox', '--', 'true'], /invalid size/],
      [['run', '-d', '--memory', '8m', 'busybox'], /too small for a sandbox with an agent/],
      [['run', '--rm', '--cpus', '1000', 'busybox', '--', 'true'], /out of range/],
      [['run', '--rm', '--pids', '0', 'busybox', '--', 'true'], /out of range/],
      [['run', '--rm', '-u', 'nosuch', 'busybox', '--', 'true'], /unknown user "nosuch": no such user in the sandbox's \/etc\/passwd/],
      [['run', '--rm', '-u', 'root:x:y', 'busybox', '--', 'true'], /invalid user/],
      [['run', '--rm', '-e', '=x', 'busybox', '--', 'true'], /invalid environment/],
      [['run', '--bogus', 'busybox'], /unknown flag --bogus/],
      [['run', '--rm', '-t', 'busybox', '--', 'true'], /-t needs a terminal on stdin/],
      [['frobnicate'], /unknown verb/],
      [['exec', 'ffffffffffffffff', '--', 'true'], /no such sandbox/],
      [['rm', 'nope'], /no such sandbox/],
      [['start', 'nope'], /no such sandbox/],
    ];
    for (const [args, re] of cases) {
      const r = await hutch(root, args);
      assert.notEqual(r.code, 0, `${args.join(' ')} should fail`);
      assert.match(r.stderr, re, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line for ${args.join(' ')}: ${r.stderr}`);
    }
    assert.equal((await hutchOk(root, ['ls', '-q'])).trim(), '');
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('every verb has --help', async () => {
  for (const verb of ['run', 'create', 'start', 'exec', 'ls', 'ps', 'stats', 'pause', 'resume', 'stop', 'kill', 'wait', 'rm', 'cp', 'info', 'setup']) {
    const r = await hutch(root, [verb, '--help']);
    assert.equal(r.code, 0, verb);
    assert.match(r.stdout, new RegExp(`^Usage: hutch ${verb}`), verb);
  }
});

test('each hardening switch has its effect: --read-only, --network host, --no-mask-paths, --seccomp strict', async () => {
  const ro = await hutch(root, ['run', '--rm', '--read-only', 'busybox', '--', 'sh', '-c', 'echo x > /x; echo "rc=$?"']);
  assert.match(ro.stdout, /rc=1/);
  assert.match(ro.stderr, /Read-only file system/);
  const links = Number((await hutchOk(root, ['run', '--rm', '--network', 'host', 'busybox', '--', 'sh', '-c', 'ls /sys/class/net | wc -l'])).trim());
  assert.ok(links > 1, `the host's interfaces are visible (${links})`);
  const masked = await hutchOk(root, ['run', '--rm', 'busybox', '--', 'sh', '-c', 'grep -c " /proc/sys " /proc/self/mountinfo']);
  assert.equal(masked.trim(), '1', '/proc/sys is a read-only mount by default');
  const unmasked = await hutch(root, ['run', '--rm', '--no-mask-paths', 'busybox', '--', 'sh', '-c', 'grep -c " /proc/sys " /proc/self/mountinfo']);
  assert.equal(unmasked.stdout.trim(), '0');
  // ioprio_set needs no capability: only the strict profile refuses it.
  const strict = await hutch(root, ['run', '--rm', '--seccomp', 'strict', 'busybox', '--', 'sh', '-c', 'ionice -c 3 true; echo "rc=$?"']);
  assert.match(strict.stdout, /rc=1/);
  assert.match(strict.stderr, /ioprio_set: Operation not permitted/);
  assert.equal(await hutchOk(root, ['run', '--rm', 'busybox', '--', 'sh', '-c', 'ionice -c 3 true; echo "rc=$?"']), 'rc=0\n');
  assert.match((await hutch(root, ['run', '--rm', '--seccomp', 'lax', 'busybox', '--', 'true'])).stderr, /use default, strict or off/);
  assert.match((await hutch(root, ['run', '--rm', '--network', 'no-such-net', 'busybox', '--', 'true'])).stderr, /no network named "no-such-net"/);
});
