// Service routes: lifecycle events (server-sent events), Prometheus metrics, health, OpenAPI.
import { isServed, type Services } from './services.js';
import { sendJson } from './http.js';
import { METRICS_CONTENT_TYPE } from './parts.js';
import type { Route } from './router.js';

/** Seconds between SSE comments that keep idle proxies from closing the stream. */
const HEARTBEAT_MS = 15_000;

/** The routes; `openapi` gives the document (built from the router, so it is known after all routes). */
export function serviceRoutes(s: Services, openapi: () => unknown): Route[] {
  return [
    {
      method: 'GET', path: '/v1/events', handle: async ({ req, res, url }) => {
        const sandboxId = url.searchParams.get('sandbox') ?? undefined;
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
        res.write(': hutchd events\n\n');
        const off = s.events.subscribe((e) => {
          res.write(`event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
        }, sandboxId ? { sandboxId } : undefined);
        const beat = setInterval(() => res.write(': keep-alive\n\n'), HEARTBEAT_MS);
        await new Promise<void>((resolve) => req.socket.once('close', () => resolve()));
        clearInterval(beat);
        off();
      },
    },
    {
      method: 'GET', path: '/metrics', handle: async ({ res }) => {
        const byState: Record<string, number> = { ready: 0, running: 0, paused: 0, stopped: 0 };
        const served = (await s.engine.list()).filter(isServed);
        for (const i of served) byState[i.status] = (byState[i.status] ?? 0) + 1;
        const networked = served.filter((i) => i.network);
        const dropped = networked.length ? await (await s.engine.networks()).droppedPacketsAll() : new Map<string, number>();
        const networkDropped = Object.fromEntries(networked.filter((i) => dropped.has(i.id)).map((i) => [i.id, dropped.get(i.id)!]));
        const text = s.metrics.render({ sandboxesByState: byState, pools: s.pool.sizes(), networkDropped });
        res.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE, 'content-length': Buffer.byteLength(text) });
        res.end(text);
      },
    },
    {
      method: 'GET', path: '/healthz', handle: async ({ res }) => sendJson(res, 200, { ok: true }),
    },
    {
      method: 'GET', path: '/openapi.json', handle: async ({ res }) => sendJson(res, 200, openapi()),
    },
  ];
}
