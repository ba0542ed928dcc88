// hutch as an OCI runtime (runc's contract): records under the caller's root, private bundles, pods.
export { OciRuntime, PLATFORM_ANNOTATION, executorMessage, type OciRuntimeOptions, type CreateRequest, type OciState } from './runtime.js';
export { OciStore, EXECUTOR_DIR, checkContainerId, notFound, type OciRecord, type PodMembership } from './store.js';
// bundle.ts and pod.ts (validation, profiles, pods) are loaded by create alone; import them directly.
export type { OciProfile } from './bundle.js';
