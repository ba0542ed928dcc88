import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  CGROUP_ROOT, UNIFIED_KEY, cgroupDirs, cgroupPids, detectCgroupMode, freezeState, listCgroupChildren,
  readCgroupStats, removeCgroup, parseCgroupLayout, parseMountinfo, cgroupDirsIn, processVanished,
} from '../src/linux/index.js';
import { isHutchError } from '../src/errors.js';
import './suite-run.js'; // marks the processes this file starts as this run's (test/suite-run.ts)

const made: string[] = []; // cgroupsPaths this test created, removed again in after()
const children = new Set<ChildProcess>();
after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) { c.kill('SIGKILL'); await once(c, 'exit'); }
  for (const p of made) await removeCgroup(p);
  for (const p of made) for (const dir of Object.values(cgroupDirs(p))) assert.equal(fs.existsSync(dir), false, `${dir} left behind`);
});

/** Creates a cgroup (and a sub-cgroup `inner`) by hand in every hierarchy, as runc would; optionally not in the v2 one. */
function makeCgroup(withUnified: boolean): { cgroupsPath: string; dirs: Record<string, string> } {
  const cgroupsPath = `/hutch-test-${randomBytes(4).toString('hex')}`;
  made.push(cgroupsPath);
  const dirs = cgroupDirs(cgroupsPath);
  for (const [key, dir] of Object.entries(dirs)) {
    if (key === UNIFIED_KEY && !withUnified) continue;
    for (const d of [dir, path.join(dir, 'inner')]) {
      fs.mkdirSync(d, { recursive: true });
      // A new v1 cpuset cgroup has no cpus or mems: no task may join it until they are copied from the parent.
      if (key === 'cpuset') {
        for (const f of ['cpuset.cpus', 'cpuset.mems']) fs.writeFileSync(path.join(d, f), fs.readFileSync(path.join(path.dirname(d), f)));
      }
    }
  }
  return { cgroupsPath, dirs };
}

/** Starts `sh -c script` and moves it into `sub` below every dir of `dirs` (before it forks anything). */
async function startIn(dirs: Record<string, string>, sub: string, withUnified: boolean): Promise<ChildProcess> {
  const child = spawn('/bin/sh', ['-c', 'read go; sleep 60 & sleep 60 & exec sleep 60'], { stdio: ['pipe', 'ignore', 'inherit'] });
  children.add(child);
  await once(child, 'spawn');
  for (const [key, dir] of Object.entries(dirs)) {
    if (key === UNIFIED_KEY && !withUnified) continue;
    fs.writeFileSync(path.join(dir, sub, 'cgroup.procs'), String(child.pid));
  }
  child.stdin!.end('go\n');
  return child;
}

/** True when `pid` has exited: gone, or a zombie its new parent (init) has not reaped yet. */
function deadOrZombie(pid: number): boolean {
  try {
    return /\) [ZX] /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch (e) {
    if (processVanished(e)) return true;
    throw e;
  }
}

/** Waits until `n` pids are in the cgroup (the shell has forked its sleeps). */
async function waitForPids(cgroupsPath: string, n: number): Promise<number[]> {
  for (let i = 0; i < 200; i++) {
    const pids = cgroupPids(cgroupsPath);
    if (pids.length >= n) return pids;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`fewer than ${n} pids in ${cgroupsPath}: ${cgroupPids(cgroupsPath).join(' ')}`);
}

test('the mode matches the filesystem', () => {
  const mode = detectCgroupMode();
  if (fs.existsSync(path.join(CGROUP_ROOT, 'cgroup.controllers'))) assert.equal(mode, 'v2');
  else if (fs.existsSync(path.join(CGROUP_ROOT, 'unified', 'cgroup.controllers'))) assert.equal(mode, 'hybrid');
  else assert.equal(mode, 'v1');
  assert.equal(detectCgroupMode(), mode, 'cached');
});

test('cgroupDirs: absolute paths from the hierarchy root, relative ones below our own cgroup (as runc)', () => {
  const abs = cgroupDirs('/hutch/abc');
  const rel = cgroupDirs('hutch/abc');
  const own = new Map(fs.readFileSync('/proc/self/cgroup', 'utf8').trim().split('\n').map((l) => {
    const [, ctl, p] = /^\d+:([^:]*):(.*)$/.exec(l)!;
    return [ctl === '' ? UNIFIED_KEY : ctl!, p!] as const;
  }));
  for (const [key, dir] of Object.entries(abs)) {
    assert.ok(dir.startsWith(CGROUP_ROOT + '/') && dir.endsWith('/hutch/abc'), dir);
    const mount = dir.slice(0, -'/hutch/abc'.length);
    const ownPath = [...own].find(([ctl]) => ctl.split(',').includes(key) || ctl === key)?.[1] ?? '/';
    assert.equal(rel[key], path.join(mount, ownPath, 'hutch/abc'), key);
  }
  if (detectCgroupMode() !== 'v1') assert.ok(UNIFIED_KEY in abs);
  if (detectCgroupMode() !== 'v2') assert.ok('memory' in abs && 'pids' in abs && 'cpuacct' in abs);
});

test('bad cgroupsPaths are refused', () => {
  for (const p of ['', '/', '..', 'a/../../b', '/a/./b', 'a//b', 'system.slice:hutch:abc', 'a\0b', 'a b']) {
    assert.throws(() => cgroupDirs(p), (e: unknown) => isHutchError(e, 'EINVAL'), JSON.stringify(p));
  }
  assert.throws(() => listCgroupChildren('../x'), (e: unknown) => isHutchError(e, 'EINVAL'));
});

test('a missing cgroup: stats say ENOTFOUND, pids are none, removal is a no-op', async () => {
  const p = `/hutch-test-missing-${randomBytes(4).toString('hex')}`;
  assert.throws(() => readCgroupStats(p), (e: unknown) => isHutchError(e, 'ENOTFOUND'));
  assert.throws(() => freezeState(p), (e: unknown) => isHutchError(e, 'ENOTFOUND'));
  assert.deepEqual(cgroupPids(p), []);
  assert.deepEqual(listCgroupChildren(p), []);
  await removeCgroup(p);
});

test('stats, pids, freezing and removal of a live cgroup', async () => {
  const { cgroupsPath, dirs } = makeCgroup(true);
  const child = await startIn(dirs, 'inner', true);
  const pids = await waitForPids(cgroupsPath, 3);
  assert.ok(pids.includes(child.pid!));
  const name = cgroupsPath.slice(1);
  assert.ok(listCgroupChildren('/').includes(name));
  assert.deepEqual(listCgroupChildren(cgroupsPath), ['inner']);

  const mode = detectCgroupMode();
  const memDir = mode === 'v2' ? dirs[UNIFIED_KEY]! : dirs['memory']!;
  const pidsDir = mode === 'v2' ? dirs[UNIFIED_KEY]! : dirs['pids']!;
  let stats = readCgroupStats(cgroupsPath);
  assert.equal(stats.memoryLimitBytes, null);
  assert.equal(stats.pidsLimit, null);
  assert.equal(stats.pids, 3);
  assert.ok(stats.memoryBytes > 0 && stats.cpuUsageNs > 0, JSON.stringify(stats));
  assert.equal(typeof stats.oomKills, 'number');
  fs.writeFileSync(path.join(memDir, mode === 'v2' ? 'memory.max' : 'memory.limit_in_bytes'), String(256 << 20));
  fs.writeFileSync(path.join(pidsDir, 'pids.max'), '100');
  stats = readCgroupStats(cgroupsPath);
  assert.equal(stats.memoryLimitBytes, 256 << 20);
  assert.equal(stats.pidsLimit, 100);

  assert.equal(freezeState(cgroupsPath), 'thawed');
  const freezer = dirs['freezer'];
  if (freezer !== undefined) fs.writeFileSync(path.join(freezer, 'freezer.state'), 'FROZEN');
  else fs.writeFileSync(path.join(dirs[UNIFIED_KEY]!, 'cgroup.freeze'), '1');
  for (let i = 0; i < 100 && freezeState(cgroupsPath) !== 'frozen'; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(freezeState(cgroupsPath), 'frozen');

  // Frozen processes must still be killed, and the sub-cgroup removed before its parent.
  const exited = once(child, 'exit');
  await removeCgroup(cgroupsPath, { timeoutMs: 5000 });
  const [, signal] = await exited;
  assert.equal(signal, 'SIGKILL');
  for (const pid of pids) assert.ok(deadOrZombie(pid), `pid ${pid} still alive`);
  for (const dir of Object.values(dirs)) assert.equal(fs.existsSync(dir), false, dir);
  assert.ok(!listCgroupChildren('/').includes(name));
  await removeCgroup(cgroupsPath); // idempotent
});

test('removal kills through the v1 freezer when there is no cgroup.kill', async (t) => {
  if (detectCgroupMode() === 'v2') return t.skip('v1 controllers only');
  const { cgroupsPath, dirs } = makeCgroup(false);
  const child = await startIn(dirs, '', false);
  await waitForPids(cgroupsPath, 3);
  const exited = once(child, 'exit');
  await removeCgroup(cgroupsPath);
  assert.equal((await exited)[1], 'SIGKILL');
  assert.deepEqual(cgroupPids(cgroupsPath), []);
  for (const dir of Object.values(dirs)) assert.equal(fs.existsSync(dir), false, dir);
});

const PROC_CGROUPS = '#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpuset\t0\t1\t1\ncpu\t0\t1\t1\ncpuacct\t0\t1\t1\nmemory\t0\t1\t1\npids\t0\t1\t1\nfreezer\t0\t1\t1\n';

/** A mountinfo line for a cgroup mount. */
function cgMount(id: number, point: string, fsType: 'cgroup' | 'cgroup2', superOpts: string, root = '/'): string {
  return `${id} 1 0:${id} ${root} ${point} rw,nosuid,nodev,noexec,relatime shared:${id} - ${fsType} ${fsType} ${superOpts}`;
}

test('layouts: a pure v2 host (systemd style)', () => {
  const mounts = parseMountinfo([
    '24 1 0:22 / /sys rw shared:2 - sysfs sysfs rw',
    cgMount(30, '/sys/fs/cgroup', 'cgroup2', 'rw,nsdelegate,memory_recursiveprot'),
  ].join('\n'));
  const l = parseCgroupLayout(mounts, PROC_CGROUPS, '0::/user.slice/user-0.slice/session-3.scope\n');
  assert.equal(l.mode, 'v2');
  assert.deepEqual(cgroupDirsIn(l, '/hutch/abc'), { [UNIFIED_KEY]: '/sys/fs/cgroup/hutch/abc' });
  assert.deepEqual(cgroupDirsIn(l, 'hutch/abc'), { [UNIFIED_KEY]: '/sys/fs/cgroup/user.slice/user-0.slice/session-3.scope/hutch/abc' });
});

test('layouts: hybrid with co-mounted cpu,cpuacct and a named systemd hierarchy', () => {
  const mounts = parseMountinfo([
    cgMount(31, '/sys/fs/cgroup/unified', 'cgroup2', 'rw,nsdelegate'),
    cgMount(32, '/sys/fs/cgroup/systemd', 'cgroup', 'rw,xattr,name=systemd'),
    cgMount(33, '/sys/fs/cgroup/cpu,cpuacct', 'cgroup', 'rw,cpu,cpuacct'),
    cgMount(34, '/sys/fs/cgroup/memory', 'cgroup', 'rw,memory'),
    cgMount(34, '/sys/fs/cgroup/memory-again', 'cgroup', 'rw,memory'), // the same hierarchy twice
    cgMount(35, '/mnt/elsewhere', 'cgroup', 'rw,pids'), // outside /sys/fs/cgroup: ignored
  ].join('\n'));
  const l = parseCgroupLayout(mounts, PROC_CGROUPS, '4:memory:/sessions/x\n3:cpu,cpuacct:/\n1:name=systemd:/init.scope\n0::/init.scope\n');
  assert.equal(l.mode, 'hybrid');
  assert.deepEqual(cgroupDirsIn(l, 'hutch/abc'), {
    [UNIFIED_KEY]: '/sys/fs/cgroup/unified/init.scope/hutch/abc',
    'name=systemd': '/sys/fs/cgroup/systemd/init.scope/hutch/abc',
    cpu: '/sys/fs/cgroup/cpu,cpuacct/hutch/abc',
    cpuacct: '/sys/fs/cgroup/cpu,cpuacct/hutch/abc',
    memory: '/sys/fs/cgroup/memory/sessions/x/hutch/abc',
  });
});

test('layouts: v1 only, inside a cgroup namespace (mount roots not "/"), and none at all', () => {
  const mounts = parseMountinfo([
    cgMount(40, '/sys/fs/cgroup/memory', 'cgroup', 'rw,memory', '/docker/c1'),
    cgMount(41, '/sys/fs/cgroup/pids', 'cgroup', 'rw,pids', '/docker/c1'),
  ].join('\n'));
  const l = parseCgroupLayout(mounts, PROC_CGROUPS, '5:memory:/docker/c1/app\n4:pids:/docker/c1\n');
  assert.equal(l.mode, 'v1');
  assert.deepEqual(cgroupDirsIn(l, 'hutch/abc'), {
    memory: '/sys/fs/cgroup/memory/app/hutch/abc',
    pids: '/sys/fs/cgroup/pids/hutch/abc',
  });
  assert.throws(() => parseCgroupLayout([], PROC_CGROUPS, ''), (e: unknown) => isHutchError(e, 'EUNSUPPORTED'));
});
