// What a sandbox's rootfs is made of: the embedded busybox, a rootfs dir, or an image from the store
// (pulled first when missing, as podman's `--pull missing` does).
import fs from 'node:fs';
import path from 'node:path';
import { HutchError } from '../errors.js';
import type { ImageRecord, ImageRuntimeConfig, ProgressEvent } from '../image/index.js';
import type { ImageService } from './images.js';
import { checkRootfsDir } from './options.js';
export { isRootfsPath } from './options.js';

/** When an image is pulled before a sandbox is made from it. */
export type PullPolicy = 'missing' | 'always' | 'never';

/** Where a pull made for a new sandbox reports: each layer's progress, then the end. */
export interface PullProgress { onProgress(e: ProgressEvent): void; finish(): void }

/** A resolved rootfs: the base dir, and for an image its layers and runtime defaults. */
export interface ResolvedRootfs {
  rootfs: string;
  lowerDirs?: string[];
  image?: { ref: string; id: string; config: ImageRuntimeConfig };
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

/** Resolves a rootfs dir given by path. */
export function resolveRootfsDir(spec: string): ResolvedRootfs {
  return { rootfs: checkRootfsDir(spec) };
}

/**
 * The uid and gid of an image's `User` (`name`, `uid`, `uid:gid`, `name:group`), looked up in the
 * image's /etc/passwd and /etc/group. Only regular files in the layer dirs are read: a symlink there
 * could point at the host's files.
 */
export function imageUser(user: string, lowerDirs: string[]): { uid: number; gid: number } {
  const [u, g] = user.split(':', 2) as [string, string | undefined];
  const passwd = u !== '' && !/^\d+$/.test(u) || g === undefined ? readImageFile(lowerDirs, 'etc/passwd') : '';
  let uid: number;
  let gid: number | undefined;
  if (/^\d+$/.test(u)) {
    uid = Number(u);
    const entry = passwd.split('\n').map((l) => l.split(':')).find((f) => f[2] === u);
    if (entry?.[3] && /^\d+$/.test(entry[3])) gid = Number(entry[3]);
  } else {
    const entry = passwd.split('\n').map((l) => l.split(':')).find((f) => f[0] === u);
    if (!entry || !/^\d+$/.test(entry[2] ?? '') || !/^\d+$/.test(entry[3] ?? '')) throw new HutchError('EINVAL', `the image's user "${u}" is not in its /etc/passwd`);
    uid = Number(entry[2]);
    gid = Number(entry[3]);
  }
  if (g !== undefined) {
    if (/^\d+$/.test(g)) gid = Number(g);
    else {
      const entry = readImageFile(lowerDirs, 'etc/group').split('\n').map((l) => l.split(':')).find((f) => f[0] === g);
      if (!entry || !/^\d+$/.test(entry[2] ?? '')) throw new HutchError('EINVAL', `the image's group "${g}" is not in its /etc/group`);
      gid = Number(entry[2]);
    }
  }
  if (uid > 65535 || (gid ?? 0) > 65535) throw new HutchError('EINVAL', `the image's user ${user} is outside the sandbox's id range 0-65535`);
  return { uid, gid: gid ?? uid };
}

/** A small text file of the image: the topmost layer that has it, read only if every component is a real dir or file. */
function readImageFile(lowerDirs: string[], rel: string): string {
  for (const dir of lowerDirs) {
    let p = dir;
    let st: fs.Stats | undefined;
    for (const part of rel.split('/')) {
      p = path.join(p, part);
      try {
        st = fs.lstatSync(p);
      } catch {
        st = undefined;
        break;
      }
      if (!st.isDirectory()) break;
    }
    if (st === undefined) continue;
    if (p !== path.join(dir, rel) || !st.isFile() || st.size > 1024 * 1024) return '';
    return fs.readFileSync(p, 'utf8');
  }
  return '';
}
