// The image store. (Stub: the store helper fills it in.)
import { HutchError } from '../../errors.js';
import type { IdMapping, ImageRecord, ImagePlatform, ImageRuntimeConfig, ProgressEvent } from '../types.js';
import type { RegistryOptions } from '../registry/index.js';

/** What a sandbox made from an image gets: its layer dirs and runtime defaults. */
export interface ImageRootfs {
  image: ImageRecord;
  /** Unpacked layer dirs, topmost first (overlayfs lowerdir order). */
  lowerDirs: string[];
  config: ImageRuntimeConfig;
}

/** Options of a pull. */
export interface PullOptions extends RegistryOptions {
  platform?: ImagePlatform;
  onProgress?: (e: ProgressEvent) => void;
}

/** Content-addressed blobs, shared unpacked layers and image records under one root dir. */
export class ImageStore {
  constructor(readonly root: string, readonly ids: IdMapping) {}

  /** Pulls `ref` from its registry (work already done is not repeated). */
  async pull(ref: string, opts: PullOptions = {}): Promise<ImageRecord> {
    void opts;
    throw new HutchError('EUNSUPPORTED', `pull not implemented yet: ${ref}`);
  }

  /** Imports a docker-archive, an oci-archive or an OCI layout dir; returns the images it held. */
  async load(file: string, name?: string): Promise<ImageRecord[]> {
    void name;
    throw new HutchError('EUNSUPPORTED', `load not implemented yet: ${file}`);
  }

  /** The image a name, a short or full id or a digest points at; undefined when none. */
  find(nameOrId: string): ImageRecord | undefined {
    void nameOrId;
    return undefined;
  }

  /** Every stored image. */
  list(): ImageRecord[] {
    return [];
  }

  /** The layer dirs and config of an image, for a sandbox's rootfs. */
  rootfsOf(nameOrId: string): ImageRootfs {
    throw new HutchError('ENOTFOUND', `image ${nameOrId} not found`);
  }

  /** Removes a name, or the image with all its names; its layers go unless `keepLayers` holds them. */
  remove(nameOrId: string, keepLayers: Set<string> = new Set()): string[] {
    void keepLayers;
    throw new HutchError('ENOTFOUND', `image ${nameOrId} not found`);
  }

  /** Removes blobs and layer dirs no image uses, except the layer dirs in `inUse`; returns what went. */
  prune(inUse: Set<string> = new Set()): string[] {
    void inUse;
    return [];
  }
}
