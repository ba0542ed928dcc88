// Images as the engine sees them: the image store, plus what sandboxes hold (a layer in use by a
// sandbox is never removed; an image in use is removed only when forced, its layers kept).
import path from 'node:path';
import { HutchError } from '../errors.js';
import type { ImageRecord, ImageStore } from '../image/index.js';
import type { SandboxRecord } from './state.js';

/** What holds an image's layers: a sandbox (its record), or a snapshot (`snapshot ID`). */
export type LayerHolder = Pick<SandboxRecord, 'id' | 'image' | 'lowerDirs'>;

/** The image store with the engine's view of which sandboxes and snapshots use which layers. */
export class ImageService {
  constructor(readonly store: ImageStore, private readonly records: () => LayerHolder[]) {}

  /** Layer dirs that some sandbox's rootfs is made of. */
  layersInUse(): Set<string> {
    const used = new Set<string>();
    for (const r of this.records()) for (const d of r.lowerDirs ?? []) used.add(d);
    return used;
  }

  /** Sandboxes (ids) made from `image`. */
  usersOf(image: ImageRecord): string[] {
    return this.records().filter((r) => r.image?.id === image.id).map((r) => r.id);
  }

  /** Removes an image (or one of its names); refuses an image that sandboxes use unless `force`. */
  remove(nameOrId: string, force = false): string[] {
    const image = this.store.find(nameOrId);
    if (!image) throw new HutchError('ENOTFOUND', `image ${nameOrId} not found`);
    const users = this.usersOf(image);
    const removesImage = image.names.length <= 1 || this.store.nameOf(nameOrId) === undefined;
    if (users.length > 0 && removesImage && !force) {
      throw new HutchError('ESTATE', `image ${nameOrId} is used by sandbox${users.length > 1 ? 'es' : ''} ${users.join(', ')}: remove ${users.length > 1 ? 'them' : 'it'} first or use rmi -f`, { id: image.id });
    }
    return this.store.remove(nameOrId, this.layersInUse());
  }

  /** Removes what no image uses and no sandbox holds. */
  prune(): string[] {
    return this.store.prune(this.layersInUse());
  }
}

/** The image store under `$HUTCH_IMAGE_ROOT` or `<dataRoot>/images`, with the sandboxes' records for what is in use. */
export async function openImageService(dataRoot: string, records: () => LayerHolder[]): Promise<ImageService> {
  const [{ ImageStore }, { hostIdRange }] = await Promise.all([import('../image/index.js'), import('../linux/index.js')]);
  const r = hostIdRange();
  const root = process.env.HUTCH_IMAGE_ROOT ?? path.join(dataRoot, 'images');
  return new ImageService(new ImageStore(root, { uidBase: r.hostUid, gidBase: r.hostGid, size: r.size }), records);
}
