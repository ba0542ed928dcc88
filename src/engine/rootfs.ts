// What a sandbox's rootfs is made of: the embedded busybox, a rootfs dir, or an image from the store
// (pulled first when missing, as podman's `--pull missing` does).
import path from 'node:path';
import { HutchError } from '../errors.js';
import type { ImageRecord, ImageRuntimeConfig, ProgressEvent } from '../image/index.js';
import type { ImageService } from './images.js';
import { readFileInRoot } from '../linux/in-root.js';
import { lookupUser, MAX_USER_FILE_BYTES, type ResolvedUser, type RootfsFileReader } from '../linux/users.js';

/** When an image is pulled before a sandbox is made from it. */
export type PullPolicy = 'missing' | 'always' | 'never';

/** Where a pull made for a new sandbox reports: each layer's progress, then the end. */
export interface PullProgress { onProgress(e: ProgressEvent): void; finish(): void }

/** A resolved rootfs: the base dir, and for an image its layers and runtime defaults. */
export interface ResolvedRootfs {
  rootfs: string;
  lowerDirs?: string[];
  /** For an image: its runtime defaults. */
  image?: { ref: string; id: string; config: ImageRuntimeConfig };
}

/** Reads /etc/passwd and /etc/group of a rootfs dir from the host, never leaving it (see readFileInRoot). */
export function rootDirFileReader(root: string): RootfsFileReader {
  return (rel) => readFileInRoot(root, rel, MAX_USER_FILE_BYTES)?.toString('utf8') ?? '';
}

/**
 * The ids of a user spec (`-u`: NAME, UID, NAME:GROUP, UID:GID…) in the rootfs a sandbox is made
 * from: an image's layers, or the rootfs dir. A spec of numbers only reads nothing.
 */
export async function userIn(resolved: ResolvedRootfs, spec: string): Promise<ResolvedUser> {
  if (!resolved.lowerDirs) return lookupUser(spec, rootDirFileReader(resolved.rootfs));
  const { layersFileReader } = await import('../image/index.js'); // loaded already: it made the store
  return lookupUser(spec, layersFileReader(resolved.lowerDirs));
}

/** The embedded busybox rootfs under `dataRoot`, built on first use. */
export async function busyboxRootfs(dataRoot: string): Promise<string> {
  const dir = path.join(dataRoot, 'rootfs', 'busybox');
  // busybox.js directly, not the image module's index: that one (registry, unpack, store) is a bundle
  // of its own that a busybox sandbox should never load (~10 ms of a one-shot run).
  const { busyboxRootfsReady, buildBusyboxRootfs } = await import('../image/busybox.js');
  if (!busyboxRootfsReady(dir)) {
    const { hostIdRange } = await import('../linux/index.js');
    const r = hostIdRange();
    buildBusyboxRootfs(dir, { uid: r.hostUid, gid: r.hostGid });
  }
  return dir;
}

/** Finds (or pulls, by `policy`) the image `ref` and returns its layers. */
export async function resolveImage(images: ImageService, ref: string, policy: PullPolicy, progress?: PullProgress): Promise<ResolvedRootfs> {
  let image: ImageRecord | undefined = policy === 'always' ? undefined : images.store.find(ref);
  if (!image) {
    if (policy === 'never') throw new HutchError('ENOTFOUND', `image ${ref} is not in the store (pull it first: hutch pull ${ref})`);
    try {
      image = await images.store.pull(ref, progress ? { onProgress: progress.onProgress } : {});
    } finally {
      progress?.finish();
    }
  }
  const r = images.store.rootfsOf(image.id);
  if (r.lowerDirs.length === 0) throw new HutchError('EINVAL', `image ${ref} has no layers`, { id: image.id });
  return { rootfs: r.lowerDirs[0]!, lowerDirs: r.lowerDirs, image: { ref, id: image.id, config: r.config } };
}
