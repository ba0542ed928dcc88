// Ports of a sandbox through hutchd, with nothing published: an HTTP request (any method, body
// streamed both ways) or a WebSocket upgrade on /v1/sandboxes/{id}/ports/{port}/PATH goes to
// http://127.0.0.1:PORT/PATH inside the sandbox, over a dedicated agent connection (the agent's
// `connect`), so it works in every network mode, none included. hutchd's token is not passed on.
import http from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { HutchError } from '../errors.js';
import type { HttpContext, Route, UpgradeContext } from './router.js';
import { servedId, type Services } from './services.js';

/** The path of the forward routes; `path` is the rest, undecoded, passed on as it came. */
export const PORT_ROUTE = '/v1/sandboxes/{id}/ports/{port}/{path...}';

/** Headers of one hop only (RFC 9110 7.6.1), never passed on; plus hutchd's own credentials and the host. */
const NOT_FORWARDED = new Set([
  'connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer',
  'transfer-encoding', 'upgrade', 'host', 'authorization',
]);

/** The port of a path: an integer from 1 to 65535 written plainly; EINVAL otherwise. */
export function portOf(text: string): number {
  if (!/^[1-9][0-9]{0,4}$/.test(text) || Number(text) > 65535) {
    throw new HutchError('EINVAL', `port must be an integer from 1 to 65535: ${JSON.stringify(text.slice(0, 20))}`);
  }
  return Number(text);
}

/** The headers of `headers` that go to the next hop: without hop-by-hop ones and those `connection` names. */
function endToEnd(headers: http.IncomingHttpHeaders): Record<string, string | string[]> {
  const named = new Set(String(headers.connection ?? '').split(',').map((t) => t.trim().toLowerCase()).filter((t) => t !== ''));
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined || NOT_FORWARDED.has(k) || named.has(k)) continue;
    out[k] = v;
  }
  return out;
}

/** The forward routes, and the connections they hold open (closed with hutchd). */
export class PortForwards {
  private readonly open = new Set<Duplex>();

  constructor(private readonly s: Services) {}

  /** The routes: the WebSocket one first, so that an upgrade finds it. */
  routes(): Route[] {
    return [
      { method: 'GET', path: PORT_ROUTE, ws: true, handle: (c) => this.upgrade(c) },
      { method: 'ANY', path: PORT_ROUTE, handle: (c) => this.request(c) },
    ];
  }

  /**
   * Forwards a request that names its sandbox and port by host (E2B's `PORT-ID.DOMAIN`) rather than
   * by path: the whole path is the sandbox server's.
   */
  async forwardByHost(c: HttpContext | UpgradeContext, id: string, port: number): Promise<void> {
    const params = { id, port: String(port), path: c.url.pathname.slice(1), prefix: '' };
    if ('socket' in c) return this.upgrade({ ...c, params });
    return this.request({ ...c, params });
  }

  /** Cuts every forwarded connection. */
  closeAll(): void {
    for (const d of this.open) d.destroy();
    this.open.clear();
  }

  private track(d: Duplex): void {
    this.open.add(d);
    d.once('close', () => this.open.delete(d));
  }

  /** A new pipe to the port of the path's sandbox: 404 unknown sandbox, 409 not running, 502 nothing listens. */
  private async pipeTo(params: Record<string, string>): Promise<{ pipe: Socket; port: number; prefix: string }> {
    const port = portOf(params['port']!);
    const id = await servedId(this.s, params['id']!);
    const pipe = await this.s.calls.forwardPort(id, port);
    this.track(pipe);
    return { pipe, port, prefix: params['prefix'] ?? `/v1/sandboxes/${encodeURIComponent(params['id']!)}/ports/${port}` };
  }

  private async request({ req, res, url, params }: HttpContext): Promise<void> {
    if (params['prefix'] === undefined && params['path'] === '' && !url.pathname.endsWith('/')) {
      // …/ports/8080 → …/ports/8080/: relative links of the page then resolve under the forward (308 keeps method and body).
      portOf(params['port']!);
      res.writeHead(308, { location: `${url.pathname}/${url.search}`, 'content-length': 0 });
      return void res.end();
    }
    const { pipe, port, prefix } = await this.pipeTo(params);
    const headers = { ...endToEnd(req.headers), host: `localhost:${port}`, 'x-forwarded-prefix': prefix, connection: 'close' };
    await new Promise<void>((resolve, reject) => {
      const upstream = http.request({ createConnection: () => pipe, method: req.method!, path: `/${params['path']!}${url.search}`, headers }, (answer) => {
        const out = endToEnd(answer.headers);
        out['via'] = `${answer.httpVersion} hutchd`;
        try {
          res.writeHead(answer.statusCode ?? 502, answer.statusMessage, out);
        } catch (e) {
          // The sandbox's answer is untrusted: one node will not pass on is refused, not a crash.
          pipe.destroy();
          return reject(new HutchError('EPROTO', `port ${port} of sandbox ${params['id']!.slice(0, 80)} gave an answer that cannot be passed on: ${(e as Error).message}`, { cause: e }));
        }
        // A cut on either side after the answer began can only cut the other: there is no status left to give.
        pipeline(answer, res).then(resolve, () => { pipe.destroy(); res.destroy(); resolve(); });
      });
      upstream.on('error', (e) => {
        pipe.destroy();
        reject(new HutchError('ENETWORK', `port ${port} of sandbox ${params['id']!.slice(0, 80)} did not answer: ${e.message}`, { cause: e }));
      });
      res.once('close', () => { if (!res.writableFinished) { upstream.destroy(); pipe.destroy(); } });
      req.pipe(upstream);
    });
  }

  private async upgrade({ req, socket, head, url, params }: UpgradeContext): Promise<void> {
    const { pipe, port, prefix } = await this.pipeTo(params);
    this.track(socket);
    const lines = [`${req.method} /${params['path']!}${url.search} HTTP/1.1`, `host: localhost:${port}`, `x-forwarded-prefix: ${prefix}`, 'connection: Upgrade'];
    for (const [k, v] of Object.entries(endToEnd(req.headers))) {
      if (k !== 'x-forwarded-prefix') for (const one of Array.isArray(v) ? v : [v]) lines.push(`${k}: ${one}`);
    }
    lines.push(`upgrade: ${String(req.headers.upgrade ?? 'websocket')}`);
    pipe.write(lines.join('\r\n') + '\r\n\r\n');
    if (head.length > 0) pipe.write(head);
    // From here the sandbox's server answers the upgrade itself: bytes go both ways untouched.
    const cut = (): void => { pipe.destroy(); socket.destroy(); };
    pipe.on('error', cut);
    socket.on('error', cut);
    pipe.on('close', cut);
    socket.on('close', cut);
    pipe.pipe(socket);
    socket.pipe(pipe);
  }
}
