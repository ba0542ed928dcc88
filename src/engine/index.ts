// The engine: sandbox model, state store, lifecycle.
export { Engine, DEFAULT_ROOT, DEFAULT_DATA_ROOT } from './engine.js';
export type { EngineOptions, CreateOptions, SandboxInfo, SandboxUpdate } from './types.js';
export { ImageService } from './images.js';
export { type PullPolicy } from './rootfs.js';
export { sandboxLogs, type LogOptions } from './logs.js';
export { SandboxCalls, type ExecRequest, type SignalTarget } from './calls.js';
export { SandboxStore } from './store.js';
export { checkTransition, checkName, checkLabels, type SandboxRecord, type SandboxStatus, type SandboxPhase } from './state.js';
export { parseSize, checkUser, checkLimits, isRootfsPath, DEFAULT_PIDS_LIMIT } from './options.js';
export { Snapshots, type CheckpointOptions, type RestoreOptions } from './checkpoints.js';
export { SnapshotStore, type SnapshotInfo, type SnapshotMeta } from './snapshot-store.js';
