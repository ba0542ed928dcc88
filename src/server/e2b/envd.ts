// envd's RPCs and plain paths, by path: what the dispatcher (index.ts) calls for a request that
// names a sandbox. Filled by the envd service modules.
import type { EnvdHandler } from './types.js';

/** Handlers by path ('/process.Process/Start', '/filesystem.Filesystem/Stat', '/files', '/health'). */
export const envdHandlers: Record<string, EnvdHandler> = {};
