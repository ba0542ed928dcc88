// The OCI distribution (registry v2) client. (Stub: the registry helper fills it in.)
import { HutchError } from '../../errors.js';
import type { Descriptor, ImageManifest, ImagePlatform, ImageReference, ProgressEvent } from '../types.js';

/** How the client reaches registries. */
export interface RegistryOptions {
  /** Registries (host[:port]) reached over plain http and without TLS checks; `true` = every registry. */
  insecure?: boolean | string[];
  /** Docker-style auth file; default $REGISTRY_AUTH_FILE, then ~/.docker/config.json. */
  authFile?: string;
  /** Attempts per request on network errors and 5xx/429 (with back-off). */
  retries?: number;
  /** Per-request timeout for headers and between body chunks. */
  timeoutMs?: number;
}

/** A manifest resolved for one platform. */
export interface ResolvedManifest {
  /** Digest of the manifest itself (not of the index). */
  digest: string;
  mediaType: string;
  bytes: Buffer;
  manifest: ImageManifest;
  /** The index it was picked from, when the reference named an index. */
  indexDigest?: string;
}

/** A client for OCI registries: manifests, blobs, auth. */
export class RegistryClient {
  constructor(readonly options: RegistryOptions = {}) {}

  /** Fetches the manifest of `ref`; an index is resolved to the entry for `platform` (default linux/amd64). */
  async resolveManifest(ref: ImageReference, platform?: ImagePlatform): Promise<ResolvedManifest> {
    void platform;
    throw new HutchError('EUNSUPPORTED', `registry client not implemented yet: ${ref.repository}`);
  }

  /** Fetches a small blob (a config) into memory, verified against `desc`; refuses more than `maxBytes`. */
  async fetchBlob(ref: ImageReference, desc: Descriptor, maxBytes = 16 * 1024 * 1024): Promise<Buffer> {
    void maxBytes;
    throw new HutchError('EUNSUPPORTED', `registry client not implemented yet: ${ref.repository} ${desc.digest}`);
  }

  /**
   * Downloads a blob to `dest`: resumes `${dest}.partial` when it exists, verifies size and digest,
   * then renames into place. A mismatch removes the partial file and throws.
   */
  async downloadBlob(ref: ImageReference, desc: Descriptor, dest: string, onProgress?: (e: ProgressEvent) => void): Promise<void> {
    void dest; void onProgress;
    throw new HutchError('EUNSUPPORTED', `registry client not implemented yet: ${ref.repository} ${desc.digest}`);
  }
}
