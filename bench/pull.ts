// Benchmark: pull + unpack throughput from a loopback registry. A ~200 MB image (busybox base, one big
// file, many small files, a few medium ones; gzip layers) is pushed to Debian's docker-registry on
// 127.0.0.1, then `hutch pull` into a fresh store is timed against `skopeo copy` (registry → OCI
// layout) + `umoci unpack` (layout → rootfs) of the same image, interleaved in one run. Each run starts
// from empty dirs (removed after, untimed). MB/s = compressed image bytes / wall time.
// Usage: node dist/bench/pull.js [--n 3] [--mb 200]
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { HUTCH_CLI, interleave, intOption, makeBenchRoot, onCleanup, printTable, runBench, summarize, timeCommand } from './common.js';
import { pushImage, startRegistry } from '../test/image/registry-kit.js';
import { tarOf, type LayerEntry } from '../test/image/tar-kit.js';
import { busyboxEntries } from '../test/image-store-kit.js';

const MB = 1e6;

/** Data that compresses about 2:1, like binaries and text mixed: 4 KiB random, 4 KiB text, in turn. */
function mixed(size: number): Buffer {
  const out = Buffer.alloc(size);
  const text = Buffer.from('the quick brown fox jumps over the lazy dog 0123456789\n'.repeat(80));
  for (let at = 0; at < size; at += 4096) {
    const len = Math.min(4096, size - at);
    if ((at / 4096) % 2 === 0) randomBytes(len).copy(out, at);
    else text.copy(out, at, 0, len);
  }
  return out;
}

/** The image's layers (uncompressed entries), about `totalMb` MB in all. */
function layers(totalMb: number): LayerEntry[][] {
  const unit = (totalMb * MB) / 200;
  const small: LayerEntry[] = [{ name: 'usr/' }, { name: 'usr/share/' }, { name: 'usr/share/many/' }];
  for (let i = 0; i < 3000; i++) small.push({ name: `usr/share/many/f${i}.txt`, content: mixed(Math.round((4096 + (i % 8) * 4096) * unit / MB)) });
  const tiny: LayerEntry[] = [{ name: 'etc/' }, { name: 'etc/conf.d/' }];
  for (let i = 0; i < 10000; i++) tiny.push({ name: `etc/conf.d/c${i}`, content: `setting_${i}=value_${i}\n`.repeat(Math.max(1, Math.round(40 * unit / MB))) });
  const medium: LayerEntry[] = [{ name: 'opt/' }];
  for (let i = 0; i < 5; i++) medium.push({ name: `opt/medium-${i}.bin`, content: mixed(Math.round(12 * unit)), mode: 0o755 });
  return [busyboxEntries(), [{ name: 'data/' }, { name: 'data/big.bin', content: mixed(Math.round(80 * unit)) }], small, medium, tiny];
}

runBench('pull: registry on loopback → unpacked layers, hutch pull vs skopeo copy + umoci unpack', async () => {
  const n = intOption('n', 3);
  const totalMb = intOption('mb', 200);
  for (const tool of ['skopeo', 'umoci']) {
    if (spawnSync('which', [tool]).status !== 0) throw new Error(`${tool} is not installed (apt-get install ${tool}; scripts/setup.sh lists it)`);
  }
  const br = makeBenchRoot();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-bench-pull-'));
  onCleanup(() => fs.rmSync(dir, { recursive: true, force: true }));
  const reg = await startRegistry();
  onCleanup(() => reg.stop());

  const t0 = Date.now();
  const entries = layers(totalMb);
  const blobs = entries.map((l) => gzipSync(tarOf(l)));
  const unpackedBytes = entries.reduce((s, l) => s + l.reduce((t, e) => t + (e.content ? Buffer.byteLength(e.content) : 0), 0), 0);
  const image = await pushImage(reg.host, 'bench/big', '1', { layers: blobs, runtime: { Cmd: ['/bin/sh'] } });
  const compressed = image.manifest.layers.reduce((s, l) => s + l.size, 0);
  console.log(`image: ${blobs.length} layers, ${(compressed / MB).toFixed(1)} MB compressed, ${(unpackedBytes / MB).toFixed(1)} MB of file data, ` +
    `${entries.reduce((s, l) => s + l.length, 0)} entries; built and pushed in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  const ref = `${reg.host}/bench/big:1`;

  let run = 0;
  const fresh = (tag: string): string => path.join(dir, `${tag}-${run++}`);
  const variants = [
    {
      name: 'hutch pull',
      once: async () => {
        const store = fresh('store');
        try {
          // Through env(1): timeCommand gives children the bench's start-up environment, not ours.
          const r = await timeCommand({ file: 'env', args: [`HUTCH_IMAGE_ROOT=${store}`, process.execPath, HUTCH_CLI, '--root', br.root, 'pull', '-q', ref] });
          if (r.stdout.trim() !== image.manifest.config.digest) throw new Error(`hutch pull printed ${r.stdout.trim()}, not the image id`);
          return r.ms;
        } finally {
          fs.rmSync(store, { recursive: true, force: true });
        }
      },
    },
    {
      name: 'skopeo copy + umoci unpack',
      once: async () => {
        const layout = fresh('oci');
        const bundle = fresh('bundle');
        try {
          const a = await timeCommand({ file: 'skopeo', args: ['copy', '-q', '--src-tls-verify=false', `docker://${ref}`, `oci:${layout}:big`] });
          const b = await timeCommand({ file: 'umoci', args: ['unpack', '--image', `${layout}:big`, bundle] });
          if (!fs.existsSync(path.join(bundle, 'rootfs', 'data', 'big.bin'))) throw new Error('umoci unpack made no rootfs/data/big.bin');
          return a.ms + b.ms;
        } finally {
          fs.rmSync(layout, { recursive: true, force: true });
          fs.rmSync(bundle, { recursive: true, force: true });
        }
      },
    },
  ];
  await interleave(1, variants); // warm-up: page cache, registry
  const samples = await interleave(n, variants);
  console.log(`n=${n} per row after 1 warm-up run each, interleaved; wall time from nothing to unpacked layers\n`);
  const rows = variants.map((v) => {
    const s = summarize(samples.get(v.name)!);
    return { name: v.name, s, mbps: compressed / MB / (s.p50 / 1000) };
  });
  printTable(['pull + unpack', 'n', 'p50 s', 'min s', 'MB/s (compressed)', 'MB/s (file data)'], rows.map((r) => [
    r.name, r.s.n, (r.s.p50 / 1000).toFixed(2), (r.s.min / 1000).toFixed(2), r.mbps.toFixed(1), (unpackedBytes / MB / (r.s.p50 / 1000)).toFixed(1),
  ]));
  console.log(`\nhutch / (skopeo + umoci) throughput: ${(rows[0]!.mbps / rows[1]!.mbps).toFixed(2)}×`);
});
