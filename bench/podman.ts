// Benchmark: podman with hutch as its OCI runtime. `podman --runtime hutch run --rm IMAGE true`
// against the same with runc, interleaved in one run, on one private podman (its own storage, run
// root, tmp dir, cgroup parent; see test/e2e/podman.ts) and the busybox test image built here.
// Target: hutch's p50 ≤ 1.5 × runc's. When hutch's OCI mode is not available, only runc is timed.
// Usage: node dist/bench/podman.js [--n 20] [--warmup 2] [--hutch PATH]
import path from 'node:path';
import { interleave, intOption, ms, onCleanup, printTable, runBench, stringOption, summarize, timingRow, verdict } from './common.js';
import { makeTempDir, removeDirSafely } from '../test/e2e/host.js';
import { buildTestImage } from '../test/e2e/oci-image.js';
import { PrivatePodman } from '../test/e2e/podman.js';
import { HUTCH_RUNTIME_PATH, probeOciLifecycle, RUNC_PATH } from '../test/e2e/runtimes.js';

const TARGET_RATIO = 1.5;

runBench('podman: podman --runtime R run --rm busybox true', async () => {
  const n = intOption('n', 20);
  const warmup = intOption('warmup', 2);
  const hutchPath = stringOption('hutch', HUTCH_RUNTIME_PATH);
  const dir = makeTempDir('bench-podman');
  const podman = new PrivatePodman(path.join(dir, 'podman'), { runc: RUNC_PATH, hutch: hutchPath });
  onCleanup(async () => {
    const problems = await podman.destroy([RUNC_PATH, hutchPath]);
    problems.push(...removeDirSafely(dir).map((m) => `still mounted: ${m}`));
    if (problems.length) throw new Error(`left behind: ${problems.join('; ')}`);
  });
  const image = buildTestImage(path.join(dir, 'image'));
  await podman.ok(['load', '-q', '-i', image.archivePath]);

  const runtimes = [{ name: 'runc', path: RUNC_PATH }];
  const problem = await probeOciLifecycle(hutchPath, dir);
  if (problem) console.log(`NOTE  hutch's OCI mode is not available (${problem}); timing runc only.\n`);
  else runtimes.push({ name: 'hutch', path: hutchPath });

  const rowName = (rt: { name: string }) => `podman --runtime ${rt.name} run --rm busybox true`;
  const variants = runtimes.map((rt) => ({
    name: rowName(rt),
    once: async () => {
      const o = await podman.run(['run', '--rm', ...podman.isolation, image.name, 'true'], { runtime: rt.path });
      if (o.code !== 0) throw new Error(`${rowName(rt)} exited ${o.code}: ${o.stderr.trim()}`);
      return o.ms;
    },
  }));
  await interleave(warmup, variants);
  const samples = await interleave(n, variants);
  console.log(`n=${n} per row after ${warmup} warm-up runs each, interleaved; wall time of the podman command, ms\n`);
  printTable(['command', 'n', 'p50', 'p90', 'mean'], variants.map((v) => timingRow(v.name, summarize(samples.get(v.name)!))));
  console.log('');
  if (runtimes.length === 2) {
    const runc = summarize(samples.get(rowName(runtimes[0]!))!).p50;
    const hutch = summarize(samples.get(rowName(runtimes[1]!))!).p50;
    const ratio = hutch / runc;
    verdict(`p50 ratio hutch/runc ≤ ${TARGET_RATIO}`, ratio <= TARGET_RATIO, `${ratio.toFixed(2)}× (${ms(hutch)} ms vs ${ms(runc)} ms)`);
  }
});
