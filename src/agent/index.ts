// The agent layer's public face for the host: the client, the protocol's types and limits, and the
// fixed names of the agent's files in a sandbox's run dir.
export { AgentClient, DEFAULT_CALL_TIMEOUT_MS, DEFAULT_CONNECT_TIMEOUT_MS, type CallOptions } from './client.js';
export { DEFAULT_LIST_MAX_ENTRIES, DEFAULT_READ_MAX_BYTES, type ReadRange } from './client-files.js';
export { MAX_TREE_DEPTH, MAX_TREE_ENTRIES, notCopyable, replacing, walkTree, type TreeEntry } from './client-tree.js';
export { fileKind } from './file-kind.js';
export type { ProcessHandle } from './process-handle.js';
export type { WatchHandle, WatchListener } from './client-watch.js';
export { AGENT_SOCKET_NAME, EXIT_FILE_NAME, MAX_EXIT_FILE_BYTES, openSandboxWritten, readExitFile } from './exit-file.js';
export { MAIN_LOG_NAME, MAIN_LOG_CAP_BYTES } from './main-log.js';
export {
  FILE_CHUNK, MAX_FRAME_BYTES, MAX_WATCH_DIRS, MAX_LIST_ENTRIES, MAX_PS_ENTRIES, OUTPUT_WINDOW, PROTOCOL_VERSION, STDIN_WINDOW,
  LOOPBACK_HOSTS, type ConnectParams, type LoopbackHost, type DirEntry, type ExecParams, type ExitStatus, type FileStat, type FileType, type PingResult, type ProcessInfo,
  type SignalTarget, type StatsResult, type TtySize, type WatchChange,
} from './protocol.js';
