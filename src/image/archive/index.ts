// Importing images without a registry: a docker-archive (`docker save`), an oci-archive, or an OCI
// layout dir; plain or gzip; from a file or stdin (`-`). Every blob is checked against its digest, every
// layer against the config's diff_ids; an image is registered only once all of it is stored.
import fs from 'node:fs';
import { HutchError } from '../../errors.js';
import type { ImageRecord } from '../types.js';
import { exists, lockAsync, removeTree } from '../store/layout.js';
import { checkManifest, parseConfig, storeImage, type StoreParts } from '../store/layers.js';
import { canonicalName, dockerPlans, ociPlans, type LoadPlan } from './formats.js';
import { layoutDir, readTar, type ImportSource } from './source.js';

export { canonicalName } from './formats.js';

/** Loads the images of `file` (`-` = stdin), returned with the names the archive gave them; `name` (one image only) replaces those. */
export async function loadImages(parts: StoreParts, file: string, name?: string): Promise<ImageRecord[]> {
  const { layout } = parts;
  const gc = await lockAsync(layout.lock('gc'), 'shared', 5 * 60_000);
  let work: string | undefined;
  try {
    layout.sweepDeadTemp();
    work = layout.tempDir('load');
    const source = await openSource(file, work, parts);
    const plans = source.has('manifest.json') ? await dockerPlans(source, layout)
      : source.has('index.json') ? await ociPlans(source)
        : fail(`${source.label}: not a docker-archive, oci-archive or OCI layout (no manifest.json, no index.json)`);
    if (plans.length === 0) throw new HutchError('EINVAL', `${source.label}: the archive holds no images`);
    if (name !== undefined) {
      if (plans.length > 1) throw new HutchError('EINVAL', `${source.label}: --name needs an archive with one image; this one has ${plans.length}`);
      plans[0]!.names = [canonicalName(name, '--name')];
    }
    // Check every image before storing any: a bad archive registers nothing.
    for (const p of plans) {
      checkManifest(p.manifest, source.label);
      parseConfig(p.configBytes, p.manifest, source.label);
    }
    const out: ImageRecord[] = [];
    // Each record names what this archive called it (the image may have other names from before).
    for (const p of plans) out.push({ ...(await storeOne(parts, p, source.label)), names: [...p.names].sort() });
    return out;
  } finally {
    if (work !== undefined) removeTree(work);
    gc.release();
  }
}

/** Stores one planned image (its blobs are already in the store). */
function storeOne(parts: StoreParts, p: LoadPlan, label: string): Promise<ImageRecord> {
  return storeImage(parts, {
    manifestBytes: p.manifestBytes, manifest: p.manifest, configBytes: p.configBytes, names: p.names, repoDigests: [],
    fetchLayer: async (i) => {
      const d = p.manifest.layers[i]!;
      if (!exists(parts.layout.blob(d.digest))) throw new HutchError('EINTERNAL', `${label}: layer blob ${d.digest} was not imported`);
    },
  }, label);
}

/** The source of `file`: stdin, a layout dir, or an archive file. */
async function openSource(file: string, work: string, parts: StoreParts): Promise<ImportSource> {
  if (file === '-') return readTar(process.stdin, work, parts.layout, 'stdin');
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new HutchError('ENOTFOUND', `${file}: no such file or directory`, { path: file });
    throw new HutchError('EPERM', `${file}: cannot read it: ${(e as Error).message}`, { path: file, cause: e });
  }
  if (st.isDirectory()) return layoutDir(file, work, parts.layout);
  if (!st.isFile()) throw new HutchError('EINVAL', `${file}: not a regular file or a directory`, { path: file });
  return readTar(fs.createReadStream(file, { highWaterMark: 1 << 20 }), work, parts.layout, file);
}

function fail(message: string): never {
  throw new HutchError('EINVAL', message);
}
