// E2B compatibility (docs/e2b.md): what its control plane (control.ts) and its envd services
// (process, filesystem, files: envd.ts) share.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Services } from '../services.js';

/**
 * One envd call, already routed and authenticated by the dispatcher: the hutch sandbox it is for
 * (from the `E2b-Sandbox-Id` header), the user the SDK asked for (`Authorization: Basic`, absent
 * when none), the request, its response and its URL.
 */
export interface EnvdCall {
  s: Services;
  sandboxId: string;
  user: string | undefined;
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
}

/** The handler of one envd path ('/process.Process/Start', '/files', ...). */
export type EnvdHandler = (call: EnvdCall) => Promise<void>;
