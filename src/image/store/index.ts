// The image store: content-addressed blobs, unpacked layers shared by every sandbox, image records and
// a names index under one root dir. Layout (see docs/images.md):
//   blobs/sha256/<hex>      verified blobs (configs, manifests, layer blobs; `.partial` while downloading)
//   layers/<chain id hex>   unpacked layers (complete iff present: renamed into place after checking)
//   layer-records/<chain id hex>.json  a layer's size on disk (written after unpacking, or computed once)
//   images/<id hex>.json    image records;  names.json: canonical name → image id
//   locks/                  gc (pulls shared, prune exclusive), names, per-blob and per-layer locks
//   tmp/                    work dirs of loads and unpacks
import fs from 'node:fs';
import { HutchError } from '../../errors.js';
import type { IdMapping, ImageRecord, ImagePlatform, ImageRuntimeConfig, ImageWithSizes, ProgressEvent } from '../types.js';
import type { RegistryOptions } from '../registry/index.js';
import { StoreLayout } from './layout.js';
import { ImageRecords, nameIn } from './records.js';
import { pruneStore, removeImage } from './gc.js';
import type { StoreParts } from './layers.js';
import { imagesWithSizes } from './sizes.js';

export { StoreLayout, chainIds, hexOf, sha256Of } from './layout.js';
export { storeImage, type ImageToStore, type StoreParts } from './layers.js';

/** What a sandbox made from an image gets: its layer dirs and runtime defaults. */
export interface ImageRootfs {
  image: ImageRecord;
  /** Unpacked layer dirs, topmost first (overlayfs lowerdir order). */
  lowerDirs: string[];
  config: ImageRuntimeConfig;
}

/** Options of a pull. */
export interface PullOptions extends RegistryOptions {
  /** The platform to pick from an index: a platform, or its text (`linux/arm64/v8`, `aarch64`). */
  platform?: ImagePlatform | string;
  onProgress?: (e: ProgressEvent) => void;
}

/** Content-addressed blobs, shared unpacked layers and image records under one root dir. */
export class ImageStore {
  readonly layout: StoreLayout;
  readonly records: ImageRecords;

  constructor(readonly root: string, readonly ids: IdMapping) {
    this.layout = new StoreLayout(root);
    this.records = new ImageRecords(this.layout);
  }

  /** The parts pulls and loads work with (the store's dirs made on first use). */
  parts(): StoreParts {
    this.layout.ensure();
    return { layout: this.layout, records: this.records, ids: this.ids };
  }

  /** Pulls `ref` from its registry (work already done is not repeated). */
  async pull(ref: string, opts: PullOptions = {}): Promise<ImageRecord> {
    const { pullImage } = await import('./pull.js');
    return pullImage(this.parts(), ref, opts);
  }

  /** Imports a docker-archive, an oci-archive or an OCI layout dir (`-` = stdin); returns the images it held. */
  async load(file: string, name?: string): Promise<ImageRecord[]> {
    const { loadImages } = await import('../archive/index.js');
    return loadImages(this.parts(), file, name);
  }

  /** The image a name, a short or full id or a digest points at; undefined when none. */
  find(nameOrId: string): ImageRecord | undefined {
    return this.records.find(nameOrId);
  }

  /**
   * The canonical name `nameOrId` spells when it is one of its image's names (`busybox` →
   * docker.io/library/busybox:latest); undefined for an id or digest. remove() of such a name on an
   * image with other names only untags it.
   */
  nameOf(nameOrId: string): string | undefined {
    const image = this.find(nameOrId);
    return image ? nameIn(image, nameOrId) : undefined;
  }

  /** Every stored image, newest first. */
  list(): ImageRecord[] {
    return this.records.all();
  }

  /**
   * `images` (default: every stored image, newest first) with their sizes on disk, unpacked, and
   * which layers other images share. A layer without a recorded size is measured once and recorded.
   */
  withSizes(images?: ImageRecord[]): ImageWithSizes[] {
    const all = this.list();
    return imagesWithSizes(this.layout, images ?? all, all);
  }

  /** The layer dirs and config of an image, for a sandbox's rootfs. */
  rootfsOf(nameOrId: string): ImageRootfs {
    const image = this.find(nameOrId);
    if (!image) throw new HutchError('ENOTFOUND', `image ${nameOrId} not found`);
    const lowerDirs = image.layers.map((l) => this.layout.layer(l.chainId)).reverse();
    for (const d of lowerDirs) {
      if (!fs.existsSync(d)) throw new HutchError('EINTEGRITY', `image ${nameOrId}: layer dir ${d} is missing; remove the image and pull or load it again`, { id: image.id, path: d });
    }
    return { image, lowerDirs, config: image.config };
  }

  /** Removes a name, or the image with all its names; its layers go unless `keepLayers` holds them. */
  remove(nameOrId: string, keepLayers: Set<string> = new Set()): string[] {
    if (!fs.existsSync(this.layout.images)) throw new HutchError('ENOTFOUND', `image ${nameOrId} not found`);
    return removeImage(this.layout, this.records, nameOrId, keepLayers);
  }

  /** Removes dangling images no sandbox uses, then blobs and layer dirs no image uses, except the layer dirs in `inUse`; returns what went. */
  prune(inUse: Set<string> = new Set()): string[] {
    return pruneStore(this.layout, this.records, inUse);
  }
}
