// Image records (images/<id hex>.json) and the names index (names.json: canonical name → image id).
// Records and the index are replaced atomically; writers hold the names lock, readers take none.
import fs from 'node:fs';
import { HutchError } from '../../errors.js';
import { formatReference, parseReference } from '../reference.js';
import type { ImageRecord } from '../types.js';
import { hexOf, isDigest, readJson, removeTree, writeFileAtomic, type StoreLayout } from './layout.js';

interface NamesFile { version: 1; names: Record<string, string> }

/** The records and names of a store. */
export class ImageRecords {
  constructor(private readonly layout: StoreLayout) {}

  /** Canonical name → image id. */
  names(): Record<string, string> {
    const f = readJson<NamesFile>(this.layout.namesFile);
    return f?.names ?? {};
  }

  /** The names that point at `id`, sorted. */
  namesOf(id: string, index = this.names()): string[] {
    return Object.keys(index).filter((n) => index[n] === id).sort();
  }

  /** The record of image `id` with its current names; undefined when not stored. */
  read(id: string, index = this.names()): ImageRecord | undefined {
    const r = readJson<ImageRecord>(this.layout.image(id));
    if (!r) return undefined;
    return { ...r, names: this.namesOf(r.id, index) };
  }

  /** Every record, newest first. */
  all(): ImageRecord[] {
    let files: string[];
    try {
      files = fs.readdirSync(this.layout.images);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const index = this.names();
    const out: ImageRecord[] = [];
    for (const f of files) {
      const m = /^([0-9a-f]{64})\.json$/.exec(f);
      if (!m) continue;
      const r = this.read(`sha256:${m[1]}`, index);
      if (r) out.push(r);
    }
    return out.sort((a, b) => b.storedAt.localeCompare(a.storedAt) || a.id.localeCompare(b.id));
  }

  /**
   * The image `text` names: a name (short forms canonicalised: `busybox` → docker.io/library/busybox:latest),
   * `name@sha256:<manifest digest>`, an id (`sha256:<hex>`, full hex, or a unique hex prefix of ≥ 12).
   */
  find(text: string): ImageRecord | undefined {
    const t = text.trim();
    if (t === '') throw new HutchError('EINVAL', 'empty image name');
    if (isDigest(t)) return this.read(t);
    if (/^[0-9a-f]{64}$/.test(t)) return this.read(`sha256:${t}`);
    const index = this.names();
    if (index[t]) return this.read(index[t], index);
    if (/^[0-9a-f]{12,63}$/.test(t)) {
      const hits = this.all().filter((r) => hexOf(r.id).startsWith(t));
      if (hits.length > 1) throw new HutchError('EINVAL', `image id prefix ${t} is ambiguous: it matches ${hits.length} images`);
      if (hits.length === 1) return hits[0];
    }
    const ref = parseReference(t);
    if (ref.digest) {
      const pinned = formatReference({ registry: ref.registry, repository: ref.repository, digest: ref.digest });
      if (index[pinned]) return this.read(index[pinned], index);
      return this.all().find((r) => r.repoDigests.includes(pinned));
    }
    const id = index[formatReference(ref)];
    return id ? this.read(id, index) : undefined;
  }

  /**
   * Writes `record` (merging the repo digests of a record already there) and points `names` at it.
   * The caller holds the names lock. The names go last: an image is listed under a name only once complete.
   */
  register(record: ImageRecord, names: string[]): ImageRecord {
    const old = readJson<ImageRecord>(this.layout.image(record.id));
    const repoDigests = [...new Set([...(old?.repoDigests ?? []), ...record.repoDigests])].sort();
    const next: ImageRecord = { ...record, storedAt: old?.storedAt ?? record.storedAt, repoDigests };
    const index = this.names();
    for (const n of names) index[n] = record.id;
    next.names = this.namesOf(record.id, index);
    writeFileAtomic(this.layout.image(record.id), JSON.stringify(next, null, 2) + '\n');
    if (names.length) this.writeNames(index);
    return next;
  }

  /** Drops one name (the caller holds the names lock). */
  dropName(name: string): void {
    const index = this.names();
    if (!(name in index)) return;
    delete index[name];
    this.writeNames(index);
  }

  /** Deletes a record and every name pointing at it (the caller holds the names lock). */
  deleteImage(id: string): void {
    const index = this.names();
    const names = this.namesOf(id, index);
    for (const n of names) delete index[n];
    if (names.length) this.writeNames(index);
    removeTree(this.layout.image(id));
  }

  private writeNames(index: Record<string, string>): void {
    const sorted = Object.fromEntries(Object.entries(index).sort(([a], [b]) => a.localeCompare(b)));
    writeFileAtomic(this.layout.namesFile, JSON.stringify({ version: 1, names: sorted } satisfies NamesFile, null, 2) + '\n');
  }
}

/** The name of `image` that `text` spells (exactly, or as a short form), if `text` is a name. */
export function nameIn(image: ImageRecord, text: string): string | undefined {
  if (image.names.includes(text)) return text;
  if (/^(sha256:)?[0-9a-f]{12,64}$/.test(text)) return undefined;
  const ref = parseReference(text);
  const canonical = ref.digest ? formatReference({ registry: ref.registry, repository: ref.repository, digest: ref.digest }) : formatReference(ref);
  return image.names.includes(canonical) ? canonical : undefined;
}
