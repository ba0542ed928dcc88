// Benchmark: what a disk limit (--disk, a tmpfs for the writable layer) adds to a sandbox's create.
// engine.create (+ start, + remove) with and without `diskBytes`, interleaved; then the pieces alone:
// a tmpfs mount + umount through the FFI, and for comparison the loop-mounted ext4 that a disk-backed
// limit would need (sparse file, mkfs.ext4, losetup, mount; each loop device detached after).
// Usage: node dist/bench/disk.js [--n 30] [--n-loop 5] [--disk 512m]
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Engine, parseSize } from '../src/engine/index.js';
import { mount, MS_NODEV, MS_NOSUID, umount2 } from '../src/linux/index.js';
import { interleave, intOption, makeBenchRoot, ms, onCleanup, printTable, runBench, stringOption, summarize, timingRow, verdict } from './common.js';

/** Runs a command to completion; throws with its stderr when it fails. */
function run(file: string, args: string[]): string {
  const r = spawnSync(file, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${file} ${args.join(' ')}: ${r.error?.message ?? r.stderr.trim()}`);
  return r.stdout.trim();
}

/** Loop devices backed by files under `dir` (losetup -j per image file): detached at the end whatever happened. */
function detachLoopsUnder(dir: string): void {
  if (!fs.existsSync(dir)) return;
  for (const f of fs.readdirSync(dir).filter((n) => n.endsWith('.img'))) {
    for (const line of run('losetup', ['-j', path.join(dir, f)]).split('\n').filter(Boolean)) {
      const dev = line.slice(0, line.indexOf(':'));
      spawnSync('umount', [dev]);
      run('losetup', ['-d', dev]);
    }
  }
}

runBench('disk: what --disk adds to a create', async () => {
  const n = intOption('n', 30);
  const nLoop = intOption('n-loop', 5);
  const diskText = stringOption('disk', '512m');
  const diskBytes = parseSize(diskText);
  const br = makeBenchRoot();
  const engine = new Engine({ root: br.root });
  const phases = new Map<string, { create: number[]; start: number[]; remove: number[] }>();
  const variant = (name: string, limits: { diskBytes?: number }) => {
    const p = { create: [] as number[], start: [] as number[], remove: [] as number[] };
    phases.set(name, p);
    return {
      name,
      once: async () => {
        const t0 = performance.now();
        const sb = await engine.create({ rootfs: 'busybox', limits });
        const t1 = performance.now();
        await engine.start(sb.id);
        const t2 = performance.now();
        await engine.remove(sb.id, true);
        const t3 = performance.now();
        p.create.push(t1 - t0);
        p.start.push(t2 - t1);
        p.remove.push(t3 - t2);
        return t2 - t0;
      },
    };
  };
  const variants = [variant('no disk limit', {}), variant(`--disk ${diskText}`, { diskBytes })];
  console.log(`${n} rounds, interleaved, after 2 warm-up rounds\n`);
  await interleave(2, variants);
  for (const p of phases.values()) p.create.length = p.start.length = p.remove.length = 0;
  const results = await interleave(n, variants);
  const rows: string[][] = [];
  for (const v of variants) {
    const p = phases.get(v.name)!;
    rows.push(timingRow(`${v.name}: create + start`, summarize(results.get(v.name)!)));
    rows.push(timingRow(`  of which engine.create`, summarize(p.create)));
    rows.push(timingRow(`  of which engine.start`, summarize(p.start)));
    rows.push(timingRow(`  (not in the above) engine.remove`, summarize(p.remove)));
  }
  printTable(['ms', 'n', 'p50', 'p90', 'mean'], rows);

  // The pieces alone.
  const pieces = path.join(br.root, 'pieces');
  fs.mkdirSync(path.join(pieces, 'mnt'), { recursive: true });
  onCleanup(() => detachLoopsUnder(pieces));
  const mnt = path.join(pieces, 'mnt');
  const tmpfsMs: number[] = [];
  for (let i = 0; i < 200; i++) {
    const t0 = performance.now();
    mount('hutch-disk', mnt, 'tmpfs', MS_NOSUID | MS_NODEV, `size=${diskBytes},nr_inodes=${Math.floor(diskBytes / 4096)},mode=0700`);
    fs.mkdirSync(path.join(mnt, 'upper'));
    fs.mkdirSync(path.join(mnt, 'work'));
    const err = umount2(mnt, 0);
    tmpfsMs.push(performance.now() - t0);
    if (err) throw new Error(`umount ${mnt}: ${err}`);
  }
  const loopMs: number[] = [];
  for (let i = 0; i < nLoop; i++) {
    const img = path.join(pieces, `disk-${i}.img`);
    const t0 = performance.now();
    fs.closeSync(fs.openSync(img, 'w'));
    fs.truncateSync(img, diskBytes);
    run('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=1,lazy_journal_init=1', '-O', '^has_journal', img]);
    const dev = run('losetup', ['-f', '--show', img]);
    try {
      mount(dev, mnt, 'ext4', MS_NOSUID | MS_NODEV, null);
      loopMs.push(performance.now() - t0);
      umount2(mnt, 0);
    } finally {
      run('losetup', ['-d', dev]);
      fs.rmSync(img, { force: true });
    }
  }
  console.log('');
  printTable(['ms', 'n', 'p50', 'p90', 'mean'], [
    timingRow(`tmpfs ${diskText}: mount, mkdir upper+work, umount (FFI)`, summarize(tmpfsMs)),
    timingRow(`loop ext4 ${diskText}: sparse file, mkfs.ext4, losetup, mount (not umount)`, summarize(loopMs)),
  ]);
  const none = summarize(phases.get('no disk limit')!.create);
  const disk = summarize(phases.get(`--disk ${diskText}`)!.create);
  console.log('');
  verdict('--disk adds ≤ 5 ms (p50) to engine.create', disk.p50 - none.p50 <= 5, `${ms(disk.p50)} − ${ms(none.p50)} = ${ms(disk.p50 - none.p50)} ms`);
  console.log('');
});
