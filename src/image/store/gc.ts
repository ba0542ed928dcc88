// Removing images and collecting what no image references. Deleting layers and blobs needs the gc lock
// exclusive: pulls and loads hold it shared while they work, so nothing a pull is about to register goes.
import fs from 'node:fs';
import path from 'node:path';
import { HutchError } from '../../errors.js';
import type { ImageRecord } from '../types.js';
import { processAlive } from '../../linux/index.js';
import { hexOf, lockSync, removeTree, type StoreLayout } from './layout.js';
import { nameIn, type ImageRecords } from './records.js';

/** How long remove and prune wait for the names and gc locks. */
const NAMES_WAIT_MS = 10_000;
const PRUNE_WAIT_MS = 30_000;
/** rmi does not wait long for a running pull: the layers it leaves go at the next prune or rmi. */
const RMI_GC_WAIT_MS = 2_000;

/** Removes a name, or an image; returns lines saying what went (`Untagged: NAME`, `Deleted: ID`, layers). */
export function removeImage(layout: StoreLayout, records: ImageRecords, text: string, keepLayers: Set<string>): string[] {
  const names = lockSync(layout.lock('names'), 'exclusive', NAMES_WAIT_MS);
  if (!names) throw new HutchError('ELOCKED', `the image store ${layout.root} is busy (names lock); try again`, { path: layout.root });
  const out: string[] = [];
  let removed: ImageRecord;
  try {
    const image = records.find(text);
    if (!image) throw new HutchError('ENOTFOUND', `image ${text} not found`);
    const name = nameIn(image, text);
    if (name !== undefined && image.names.length > 1) {
      records.dropName(name);
      return [`Untagged: ${name}`];
    }
    for (const n of image.names) out.push(`Untagged: ${n}`);
    records.deleteImage(image.id);
    out.push(`Deleted: ${image.id}`);
    removed = image;
  } finally {
    names.release();
  }
  const gc = lockSync(layout.lock('gc'), 'exclusive', RMI_GC_WAIT_MS);
  if (!gc) return out; // a pull is running: the unreferenced layers go at the next prune
  try {
    const used = referenced(records.all());
    const keep = new Set([...keepLayers].map((p) => path.resolve(p)));
    for (const l of removed.layers) {
      const dir = layout.layer(l.chainId);
      if (used.layers.has(hexOf(l.chainId)) || keep.has(path.resolve(dir)) || !fs.existsSync(dir)) continue;
      removeTree(dir);
      removeTree(layout.layerRecord(l.chainId));
      out.push(`Deleted layer: ${l.chainId}`);
    }
    for (const digest of [removed.id, removed.manifestDigest, ...removed.layers.map((l) => l.digest)]) {
      if (!used.blobs.has(hexOf(digest))) removeTree(layout.blob(digest));
    }
  } finally {
    gc.release();
  }
  return out;
}

/** Chain-id hexes and blob hexes the given images use. */
function referenced(images: ImageRecord[]): { layers: Set<string>; blobs: Set<string> } {
  const layers = new Set<string>();
  const blobs = new Set<string>();
  for (const r of images) {
    blobs.add(hexOf(r.id));
    blobs.add(hexOf(r.manifestDigest));
    for (const l of r.layers) { layers.add(hexOf(l.chainId)); blobs.add(hexOf(l.digest)); }
  }
  return { layers, blobs };
}

/**
 * Removes dangling images (no names: an unnamed load, or a tag that moved to another image) that no sandbox uses, then every layer dir and
 * blob no image references (partial downloads and crash leftovers too), never a layer dir in `inUse`.
 */
export function pruneStore(layout: StoreLayout, records: ImageRecords, inUse: Set<string>): string[] {
  if (!fs.existsSync(layout.root)) return [];
  layout.ensure();
  const gc = lockSync(layout.lock('gc'), 'exclusive', PRUNE_WAIT_MS);
  if (!gc) throw new HutchError('ELOCKED', `a pull or load is running in ${layout.root}; prune when it is done`, { path: layout.root });
  const keep = new Set([...inUse].map((p) => path.resolve(p)));
  const out: string[] = [];
  try {
    const names = lockSync(layout.lock('names'), 'exclusive', NAMES_WAIT_MS);
    if (!names) throw new HutchError('ELOCKED', `the image store ${layout.root} is busy (names lock); try again`, { path: layout.root });
    try {
      for (const r of records.all()) {
        const used = r.layers.some((l) => keep.has(path.resolve(layout.layer(l.chainId))));
        if (r.names.length === 0 && !used) {
          records.deleteImage(r.id);
          out.push(`Deleted: ${r.id}`);
        }
      }
    } finally {
      names.release();
    }
    const used = referenced(records.all());
    for (const e of fs.readdirSync(layout.layers)) {
      const dir = path.join(layout.layers, e);
      if (used.layers.has(e) || keep.has(path.resolve(dir))) continue;
      removeTree(dir);
      out.push(/^[0-9a-f]{64}$/.test(e) ? `Deleted layer: sha256:${e}` : `Deleted leftover: ${dir}`);
    }
    // Layer records whose layer dir is gone, and temp files of record writes that died (a listing
    // writes records without the gc lock: its live temp files stay).
    for (const e of fs.readdirSync(layout.layerRecords)) {
      const m = /^([0-9a-f]{64})\.json(?:\.tmp-(\d+)-[0-9a-f]+)?$/.exec(e);
      const gone = !m || (m[2] !== undefined ? !processAlive(Number(m[2])) : !fs.existsSync(path.join(layout.layers, m[1]!)));
      if (gone) removeTree(path.join(layout.layerRecords, e));
    }
    let blobs = 0;
    for (const e of fs.readdirSync(layout.blobs)) {
      if (used.blobs.has(e)) continue;
      removeTree(path.join(layout.blobs, e));
      if (/^[0-9a-f]{64}$/.test(e)) blobs++;
    }
    if (blobs) out.push(`Deleted ${blobs} unused blob${blobs === 1 ? '' : 's'}`);
    for (const e of fs.readdirSync(layout.tmp)) removeTree(path.join(layout.tmp, e));
    for (const e of fs.readdirSync(layout.images)) if (e.includes('.tmp-')) removeTree(path.join(layout.images, e));
    // Per-blob and per-layer lock files: nobody holds them while gc is held exclusive (pulls take gc first).
    for (const e of fs.readdirSync(layout.locks)) if (/^(blob|layer)-[0-9a-f]{64}\.lock$/.test(e)) removeTree(path.join(layout.locks, e));
  } finally {
    gc.release();
  }
  return out;
}
