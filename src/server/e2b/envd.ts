// envd's RPCs and plain paths, by path: what the dispatcher (index.ts) calls for a request that
// names a sandbox. Designed for envd version ENVD_VERSION (the newest feature gate of the e2b SDK
// that hutch serves: octet-stream uploads, closeStdin).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { servedId, type Services } from '../services.js';
import type { EnvdHandler } from './types.js';
import { fileHandlers } from './files.js';
import { filesystemHandlers } from './filesystem.js';
import { processHandlers } from './process.js';
import { ConnectFault, sendUnaryError } from './connect.js';

/** The envd version the control plane reports (`envdVersion`): what these handlers implement. */
export const ENVD_VERSION = '0.5.7';

/** Handlers by path ('/process.Process/Start', '/filesystem.Filesystem/Stat', '/files', '/health'). */
export const envdHandlers: Record<string, EnvdHandler> = { ...processHandlers, ...filesystemHandlers, ...fileHandlers };

/** The user of `Authorization: Basic base64(user:)`, as the SDK sends it; undefined without one. */
export function basicUser(req: IncomingMessage): string | undefined {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(String(req.headers['authorization'] ?? ''));
  if (!m) return undefined;
  const text = Buffer.from(m[1]!, 'base64').toString('utf8');
  const user = text.includes(':') ? text.slice(0, text.indexOf(':')) : text;
  return user === '' ? undefined : user;
}

/** Serves one envd request for a sandbox (by id or name) of this hutchd; not_found for an unknown path. */
export async function handleEnvdRequest(s: Services, sandboxRef: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://envd');
  const handler = envdHandlers[url.pathname];
  try {
    if (!handler) throw new ConnectFault('not_found', `no envd path ${url.pathname.slice(0, 100)}`);
    const sandboxId = await servedId(s, sandboxRef);
    await handler({ s, sandboxId, user: basicUser(req), req, res, url });
  } catch (e) {
    sendUnaryError(res, e);
  }
}
