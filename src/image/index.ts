// Images: the embedded busybox rootfs, registries, archives, safe unpack, the content-addressed store.
export { buildBusyboxRootfs, busyboxRootfsReady, HOST_BUSYBOX, type RootfsOwner } from './busybox.js';
export * from './types.js';
export { parseReference, formatReference } from './reference.js';
export { RegistryClient, type RegistryOptions, type ResolvedManifest } from './registry/index.js';
export { unpackLayer, type UnpackOptions, type UnpackResult } from './unpack/index.js';
export { ImageStore, type ImageRootfs, type PullOptions } from './store/index.js';
export { layersFileReader } from './user.js';
