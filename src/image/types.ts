// OCI image types (image-spec v1.1 and Docker schema 2), and the contracts between the image
// module's parts: the registry client, the layer unpacker and the content-addressed store.

/** Media types hutch reads. */
export const MEDIA = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
} as const;

/** An OS/architecture pair as in an index entry (`linux/amd64`, `linux/arm64/v8`). */
export interface ImagePlatform { os: string; architecture: string; variant?: string; 'os.version'?: string }

/** A content descriptor: what a blob is, its digest (`sha256:<hex>`) and size in bytes. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  platform?: ImagePlatform;
}

/** An image manifest (OCI or Docker schema 2: the same shape). */
export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

/** An image index / Docker manifest list. */
export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

/** The runtime defaults an image's config carries. */
export interface ImageRuntimeConfig {
  Env?: string[];
  Cmd?: string[];
  Entrypoint?: string[];
  WorkingDir?: string;
  User?: string;
  ExposedPorts?: Record<string, object>;
  Labels?: Record<string, string>;
  StopSignal?: string;
}

/** An image config blob. */
export interface ImageConfigFile {
  architecture: string;
  os: string;
  variant?: string;
  created?: string;
  config?: ImageRuntimeConfig;
  rootfs: { type: 'layers'; diff_ids: string[] };
  history?: { created?: string; created_by?: string; empty_layer?: boolean; comment?: string }[];
}

/** A parsed image reference: `busybox` → docker.io/library/busybox:latest. */
export interface ImageReference {
  /** Registry host[:port], e.g. `docker.io`, `localhost:5000`. */
  registry: string;
  /** Repository path, e.g. `library/busybox`. */
  repository: string;
  tag?: string;
  /** `sha256:<hex>` when pinned. */
  digest?: string;
}

/** Where a blob download or an unpack is: reported to a progress display. */
export interface ProgressEvent {
  /** The layer's (or config's) digest. */
  digest: string;
  phase: 'waiting' | 'downloading' | 'verifying' | 'unpacking' | 'done' | 'exists';
  /** Bytes done and total (total = descriptor size) for downloading. */
  done: number;
  total: number;
}

/** Maps the ids of unpacked files to host ids: inside id n → base + n for n < size; others → base + 65534. */
export interface IdMapping { uidBase: number; gidBase: number; size: number }

/** One layer of a stored image. */
export interface StoredLayer {
  /** The compressed blob's digest (what the manifest names). */
  digest: string;
  mediaType: string;
  size: number;
  /** Digest of the uncompressed tar (the config's diff_id). */
  diffId: string;
  /** Chain id: identifies the layer with all layers below it; the unpacked dir's name. */
  chainId: string;
}

/** An image registered in the store. */
export interface ImageRecord {
  /** The config blob's digest: the image id. */
  id: string;
  /** Names that point at it (`docker.io/library/busybox:latest`). */
  names: string[];
  /** Manifest digest, and `repo@digest` names it was pulled by. */
  manifestDigest: string;
  repoDigests: string[];
  architecture: string;
  os: string;
  created?: string;
  /** When hutch stored it. */
  storedAt: string;
  /** Sum of the compressed layer sizes. */
  size: number;
  layers: StoredLayer[];
  config: ImageRuntimeConfig;
}

/** What the store records about one unpacked layer: `layer-records/<chain id hex>.json`. */
export interface LayerRecord {
  version: 1;
  chainId: string;
  diffId?: string;
  /** Size on disk in bytes: st_size of every non-dir entry, hard links once (what `docker images` counts). */
  size: number;
}

/** A layer of an image with its sizes, as `hutch images --json` and `hutch image inspect` show it. */
export interface LayerWithSizes {
  digest: string;
  mediaType: string;
  diffId: string;
  chainId: string;
  /** Size on disk unpacked; null when the layer dir is missing. */
  size: number | null;
  /** Size of the compressed blob. */
  compressedSize: number;
  /** True when another stored image uses this layer dir too. */
  shared: boolean;
}

/** An image record with its sizes: `size` is unpacked on disk, as `docker images` shows it. */
export interface ImageWithSizes extends Omit<ImageRecord, 'size' | 'layers'> {
  /** Sum of the layers' sizes on disk (missing layers count 0). */
  size: number;
  /** Sum of the compressed layer blobs. */
  compressedSize: number;
  /** Of `size`: layers other images use too, and layers only this image uses (docker's `system df -v`). */
  sharedSize: number;
  uniqueSize: number;
  /** Layers whose dir is missing (a damaged store); none normally. */
  missingLayers?: number;
  layers: LayerWithSizes[];
}
