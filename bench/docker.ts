// Benchmark: Docker with hutch as an OCI runtime. `docker run --rm --runtime hutch IMAGE true` against
// `--runtime runc`, interleaved in one run, on one private dockerd (its own data and exec roots,
// containerd, socket, cgroup parent; see test/e2e/docker.ts) and the busybox test image built here.
// Target: hutch's p50 ≤ 1.5 × runc's. When hutch's OCI mode is not available, only runc is timed.
// Usage: node dist/bench/docker.js [--n 20] [--warmup 2] [--hutch PATH]
import path from 'node:path';
import { interleave, intOption, ms, onCleanup, printTable, runBench, stringOption, summarize, timingRow, verdict } from './common.js';
import { makeTempDir, removeDirSafely } from '../test/e2e/host.js';
import { buildTestImage, writeDockerArchive } from '../test/e2e/oci-image.js';
import { PrivateDocker, dockerMissing } from '../test/e2e/docker.js';
import { HUTCH_RUNTIME_PATH, probeOciLifecycle } from '../test/e2e/runtimes.js';

const TARGET_RATIO = 1.5;

runBench('docker: docker run --rm --runtime R busybox true', async () => {
  const n = intOption('n', 20);
  const warmup = intOption('warmup', 2);
  const hutchPath = stringOption('hutch', HUTCH_RUNTIME_PATH);
  const missing = dockerMissing();
  if (missing) throw new Error(missing);
  const dir = makeTempDir('bench-docker');
  // dockerd's own runc (the name `runc`, from PATH) and hutch, as a user would configure them.
  const docker = new PrivateDocker(path.join(dir, 'docker'), { hutch: hutchPath });
  onCleanup(async () => {
    const problems = await docker.destroy();
    problems.push(...removeDirSafely(dir).map((m) => `still mounted: ${m}`));
    if (problems.length) throw new Error(`left behind: ${problems.join('; ')}`);
  });
  await docker.start();
  const image = buildTestImage(path.join(dir, 'image'));
  await docker.ok(['load', '-q', '-i', writeDockerArchive(image)]);

  const runtimes = ['runc'];
  const problem = await probeOciLifecycle(hutchPath, dir);
  if (problem) console.log(`NOTE  hutch's OCI mode is not available (${problem}); timing runc only.\n`);
  else runtimes.push('hutch');

  const rowName = (rt: string) => `docker run --rm --runtime ${rt} busybox true`;
  const variants = runtimes.map((rt) => ({
    name: rowName(rt),
    once: async () => {
      const o = await docker.docker(['run', '--rm', '--runtime', rt, '--network', 'none', image.name, 'true']);
      if (o.code !== 0) throw new Error(`${rowName(rt)} exited ${o.code}: ${o.stderr.trim()}`);
      return o.ms;
    },
  }));
  await interleave(warmup, variants);
  const samples = await interleave(n, variants);
  console.log(`n=${n} per row after ${warmup} warm-up runs each, interleaved; wall time of the docker command, ms\n`);
  printTable(['command', 'n', 'p50', 'p90', 'mean'], variants.map((v) => timingRow(v.name, summarize(samples.get(v.name)!))));
  console.log('');
  if (runtimes.length === 2) {
    const runc = summarize(samples.get(rowName('runc'))!).p50;
    const hutch = summarize(samples.get(rowName('hutch'))!).p50;
    const ratio = hutch / runc;
    verdict(`p50 ratio hutch/runc ≤ ${TARGET_RATIO}`, ratio <= TARGET_RATIO, `${ratio.toFixed(2)}× (${ms(hutch)} ms vs ${ms(runc)} ms)`);
  }
});
