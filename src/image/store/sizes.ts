// Sizes on disk: each unpacked layer's size is recorded in layer-records/<chain id hex>.json when it
// is unpacked. A layer stored before sizes were recorded (or whose record is damaged) is walked once
// and its record written, so listing stays fast. Records are a cache of what a walk gives: writing
// one needs no lock (atomic rename; two writers write the same value).
import fs from 'node:fs';
import { HutchError, isHutchError } from '../../errors.js';
import type { ImageRecord, ImageWithSizes, LayerRecord, LayerWithSizes, StoredLayer } from '../types.js';
import { layerDiskSize } from '../unpack/size.js';
import { exists, isDigest, writeFileAtomic, type StoreLayout } from './layout.js';

/** Writes the record of layer `chainId` (atomically). */
export function writeLayerRecord(layout: StoreLayout, chainId: string, diffId: string | undefined, size: number): void {
  const record: LayerRecord = { version: 1, chainId, ...(diffId ? { diffId } : {}), size };
  fs.mkdirSync(layout.layerRecords, { recursive: true, mode: 0o700 });
  const file = layout.layerRecord(chainId);
  try {
    writeFileAtomic(file, JSON.stringify(record, null, 2) + '\n');
  } catch (e) {
    throw new HutchError('EINTERNAL', `cannot write layer record ${file}: ${(e as Error).message}`, { path: file, cause: e });
  }
}

/** The record of layer `chainId`; undefined when there is none or it is unusable (not JSON, no valid size, another layer's). */
function readLayerRecord(layout: StoreLayout, chainId: string): LayerRecord | undefined {
  const file = layout.layerRecord(chainId);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'EISDIR') throw new HutchError('EINTEGRITY', `layer record ${file} is a directory, not a file: remove it and hutch measures the layer again`, { path: file });
    throw new HutchError('EINTERNAL', `cannot read layer record ${file}: ${(e as Error).message}`, { path: file, cause: e });
  }
  let r: Partial<LayerRecord> | null;
  try {
    r = JSON.parse(text) as Partial<LayerRecord> | null;
  } catch {
    return undefined; // damaged (e.g. a torn write on a filesystem without atomic rename): measured again
  }
  if (r === null || typeof r !== 'object' || r.chainId !== chainId || !Number.isSafeInteger(r.size) || r.size! < 0) return undefined;
  return r as LayerRecord;
}

/**
 * The size on disk of layer `chainId`: from its record, else measured by a walk of its dir and
 * recorded. null when the layer dir is missing.
 */
export function layerSize(layout: StoreLayout, chainId: string, diffId?: string): number | null {
  const dir = layout.layer(chainId);
  if (!exists(dir)) return null;
  const recorded = readLayerRecord(layout, chainId);
  if (recorded) return recorded.size;
  let size: number;
  try {
    size = layerDiskSize(dir);
  } catch (e) {
    if (isHutchError(e, 'ENOTFOUND')) return null; // removed (rmi, prune) while we looked
    throw e;
  }
  writeLayerRecord(layout, chainId, diffId, size);
  return size;
}

/**
 * `images` with their sizes on disk; a layer is shared when another image of `all` (every stored
 * image) uses it too. Each layer is measured at most once per call.
 */
export function imagesWithSizes(layout: StoreLayout, images: ImageRecord[], all: ImageRecord[]): ImageWithSizes[] {
  const users = new Map<string, number>();
  for (const r of all) for (const l of checkedLayers(layout, r)) users.set(l.chainId, (users.get(l.chainId) ?? 0) + 1);
  const sizes = new Map<string, number | null>();
  const sizeOf = (l: StoredLayer): number | null => {
    if (!sizes.has(l.chainId)) sizes.set(l.chainId, layerSize(layout, l.chainId, l.diffId));
    return sizes.get(l.chainId)!;
  };
  const sum = (ls: LayerWithSizes[]): number => ls.reduce((s, l) => s + (l.size ?? 0), 0);
  return images.map((image) => {
    const layers: LayerWithSizes[] = checkedLayers(layout, image).map((l) => ({
      digest: l.digest, mediaType: l.mediaType, diffId: l.diffId, chainId: l.chainId,
      size: sizeOf(l), compressedSize: l.size, shared: (users.get(l.chainId) ?? 0) > 1,
    }));
    const missing = layers.filter((l) => l.size === null).length;
    const size = sum(layers);
    const sharedSize = sum(layers.filter((l) => l.shared));
    return {
      ...image, size, compressedSize: layers.reduce((s, l) => s + l.compressedSize, 0), sharedSize, uniqueSize: size - sharedSize,
      ...(missing ? { missingLayers: missing } : {}), layers,
    };
  });
}

/** The layers of an image record, checked enough to measure them; EINTEGRITY naming the record when damaged. */
function checkedLayers(layout: StoreLayout, r: ImageRecord): StoredLayer[] {
  const where = isDigest(r.id) ? layout.image(r.id) : `image record ${JSON.stringify(r.id)}`;
  if (!Array.isArray(r.layers)) throw new HutchError('EINTEGRITY', `${where} is damaged: it has no layer list; remove the image and pull or load it again`, { path: where });
  r.layers.forEach((l, i) => {
    if (l === null || typeof l !== 'object' || !isDigest(l.chainId) || !Number.isSafeInteger(l.size) || l.size < 0) {
      throw new HutchError('EINTEGRITY', `${where} is damaged: layer ${i + 1} has no valid chain id or size; remove the image and pull or load it again`, { path: where });
    }
  });
  return r.layers;
}
