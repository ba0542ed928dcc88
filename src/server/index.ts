// hutchd: the HTTP + WebSocket API over the engine.
export { Hutchd, DEFAULT_SOCKET, defaultSocketOf, type HutchdOptions } from './server.js';
export type { ApiLimits } from './services.js';
export type { PoolSpec } from './parts.js';
export { documentedOperations } from './openapi.js';
