// The container platform (OCI executor) and its pieces.
export { ContainerPlatform, CONTAINER_VARIANT, type ContainerVariant } from './platform.js';
export { OciExecutor, makeExecutor, lastErrorLine, readPidFile, type ExecutorState, type ExecutorConfig } from './executor.js';
export { ensureAgentRuntime, installDir, SANDBOX_HUTCH_DIR, SANDBOX_RUN_DIR } from './runtime.js';
export { killAndForgetRuncContainer } from './teardown.js';
export { openHandle, type ContainerState } from './handle.js';
