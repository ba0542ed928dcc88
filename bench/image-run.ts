// Benchmark: a one-shot run of an image already in the store against the embedded busybox.
// `hutch run --rm IMAGE -- true` (a 3-layer image: busybox-static, files, config) and
// `hutch run --rm busybox -- true`, interleaved; the image's extra cost (find it in the store, its
// layers as overlay lowers, its config applied) should stay ≤ 20 ms.
// Usage: node dist/bench/image-run.js [--n 30] [--warmup 3]
import fs from 'node:fs';
import path from 'node:path';
import { buildImage, busyboxEntries, dockerArchive } from '../test/image-store-kit.js';
import {
  hutchCmd, interleave, intOption, makeBenchRoot, ms, printTable, runBench, runQuiet, setChildEnv, summarize, timeCommand, timingRow, verdict,
} from './common.js';

const TARGET_MS = 20;
const IMAGE = 'bench/image-run:1';

runBench('image-run: hutch run --rm IMAGE -- true vs busybox', async () => {
  const n = intOption('n', 30);
  const warmup = intOption('warmup', 3);
  const br = makeBenchRoot();
  // Children inherit the image root: the store lives in the bench's state root and goes with it.
  setChildEnv('HUTCH_IMAGE_ROOT', path.join(br.root, 'images'));
  const image = buildImage([
    busyboxEntries(),
    [{ name: 'app/' }, ...Array.from({ length: 50 }, (_, i) => ({ name: `app/file-${i}.txt`, content: `file ${i}\n`.repeat(100) }))],
    [{ name: 'etc/' }, { name: 'etc/app.conf', content: 'answer=42\n' }],
  ], { Env: ['PATH=/bin:/usr/bin', 'APP=bench'], WorkingDir: '/app' });
  const archive = path.join(br.root, 'image.tar');
  fs.writeFileSync(archive, dockerArchive([{ image, tags: [IMAGE] }]));
  const loaded = await runQuiet(hutchCmd(br.root, ['load', '-i', archive]));
  if (loaded.status !== 0) throw new Error(`hutch load failed: ${loaded.stderr.trim()}`);
  const check = await timeCommand(hutchCmd(br.root, ['run', '--rm', IMAGE, '--', 'sh', '-c', 'echo $APP $(pwd) $(cat /etc/app.conf)']));
  if (check.stdout.trim() !== 'bench /app answer=42') throw new Error(`the image's sandbox printed ${JSON.stringify(check.stdout)}`);
  const variants = [
    { name: 'hutch run --rm busybox -- true', once: async () => (await timeCommand(hutchCmd(br.root, ['run', '--rm', 'busybox', '--', 'true']))).ms },
    { name: `hutch run --rm ${IMAGE} -- true (3 layers)`, once: async () => (await timeCommand(hutchCmd(br.root, ['run', '--rm', IMAGE, '--', 'true']))).ms },
  ];
  console.log(`warm-up: ${warmup} rounds; then ${n} rounds, interleaved\n`);
  await interleave(warmup, variants);
  const results = await interleave(n, variants);
  const [busybox, img] = variants.map((v) => summarize(results.get(v.name)!));
  printTable(['wall time, ms', 'n', 'p50', 'p90', 'mean'], variants.map((v, i) => timingRow(v.name, [busybox!, img!][i]!)));
  const extra = img!.p50 - busybox!.p50;
  console.log('');
  verdict(`image run adds ≤ ${TARGET_MS} ms over busybox (p50)`, extra <= TARGET_MS, `+${ms(extra)} ms (${ms(img!.p50)} vs ${ms(busybox!.p50)})`);
});
