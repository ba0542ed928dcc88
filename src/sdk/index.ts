// The TypeScript SDK of hutchd (import from 'hutch/sdk'). It talks HTTP and WebSocket only.
export { Sandbox, type SandboxInfo, type SandboxStats, type SandboxLimits, type CreateOptions, type ExecOptions, type ExecResult, type ConnectOptions, type SnapshotInfo } from './sandbox.js';
export { SandboxProcess, type SpawnOptions, type AttachOptions, type ExitInfo, type OutputChunk } from './process.js';
export { SandboxProcesses, type StartedProcess, type ProcessInfo } from './processes.js';
export { SandboxFiles, FileWatch, type FileInfo, type DirEntry, type UploadResult, type FileChange } from './files.js';
export { SandboxNetwork, type EgressPolicy, type EgressRule, type PortMapping, type PortSpec, type SandboxNetworkInfo, type NetworkInfo } from './network.js';
export { PortResponse, type PortFetchInit } from './ports.js';
export { Transport, type ConnectionOptions, type CallOptions } from './transport.js';
export { HutchApiError, NotFoundError, AuthError, TimeoutError, AbortError } from './errors.js';
export { events, type LifecycleEvent } from './events.js';
