// envd's RPCs and plain paths, by path: what the dispatcher (index.ts) calls for a request that
// names a sandbox and carries its access token. Designed for envd version ENVD_VERSION (the newest
// feature gate of the e2b SDK that hutch serves: octet-stream uploads, closeStdin).
import type { EnvdHandler } from './types.js';
import { fileHandlers } from './files.js';
import { filesystemHandlers } from './filesystem.js';
import { processHandlers } from './process.js';

/** The envd version the control plane reports (`envdVersion`): what these handlers implement. */
export const ENVD_VERSION = '0.5.7';

/** Handlers by path ('/process.Process/Start', '/filesystem.Filesystem/Stat', '/files', '/health'). */
export const envdHandlers: Record<string, EnvdHandler> = { ...processHandlers, ...filesystemHandlers, ...fileHandlers };
