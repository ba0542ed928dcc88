// Images: for M1, the embedded busybox rootfs; registries and archives come with M3.
export { buildBusyboxRootfs, busyboxRootfsReady, HOST_BUSYBOX, type RootfsOwner } from './busybox.js';
