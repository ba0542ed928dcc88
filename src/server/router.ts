// A small router: routes are METHOD + a path template with {params}; WebSocket routes are GETs
// that are answered on the upgrade. A route of method ANY takes every method; a path that ends in
// /{name...} also matches every path below it (and the bare path), the rest given undecoded. The
// route list is also what the OpenAPI test checks.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { ApiError } from './http.js';

/** What an HTTP handler gets. */
export interface HttpContext {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  params: Record<string, string>;
}

/** What a WebSocket handler gets (the upgrade, before it is accepted). */
export interface UpgradeContext {
  req: IncomingMessage;
  socket: Duplex;
  head: Buffer;
  url: URL;
  params: Record<string, string>;
}

/** One route. */
export type Route =
  | { method: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'ANY'; path: string; ws?: false; handle: (c: HttpContext) => Promise<void> }
  | { method: 'GET'; path: string; ws: true; handle: (c: UpgradeContext) => Promise<void> };

interface Compiled { route: Route; re: RegExp; names: string[]; rest: string | undefined }

/** Matches requests to routes; unknown paths are 404, known paths with another method 405. */
export class Router {
  private readonly compiled: Compiled[] = [];

  /** Adds routes. */
  add(...routes: Route[]): this {
    for (const route of routes) {
      const names: string[] = [];
      const restMatch = /\/\{(\w+)\.\.\.\}$/.exec(route.path);
      const fixed = restMatch ? route.path.slice(0, restMatch.index) : route.path;
      const re = new RegExp('^' + fixed.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{(\w+)\}/g, (_m, n: string) => {
        names.push(n);
        return '([^/]+)';
      }) + (restMatch ? '(?:/(.*))?' : '') + '$');
      this.compiled.push({ route, re, names, rest: restMatch?.[1] });
    }
    return this;
  }

  /** Every route (method, path, ws). */
  routes(): { method: string; path: string; ws: boolean }[] {
    return this.compiled.map(({ route }) => ({ method: route.method, path: route.path, ws: route.ws === true }));
  }

  /** The route for a request and its path params; throws 404/405 ApiErrors. */
  match(method: string, pathname: string, ws: boolean): { route: Route; params: Record<string, string> } {
    let pathKnown = false;
    let wsOnly = false;
    for (const c of this.compiled) {
      const m = c.re.exec(pathname);
      if (!m) continue;
      pathKnown = true;
      if (c.route.method === method && c.route.ws === true && !ws) wsOnly = true;
      if ((c.route.method !== method && c.route.method !== 'ANY') || (c.route.ws === true) !== ws) continue;
      const params: Record<string, string> = {};
      c.names.forEach((n, i) => {
        try {
          params[n] = decodeURIComponent(m[i + 1]!);
        } catch {
          throw new ApiError(400, 'EINVAL', `malformed path parameter ${n}`);
        }
      });
      if (c.rest !== undefined) params[c.rest] = m[c.names.length + 1] ?? '';
      return { route: c.route, params };
    }
    if (wsOnly) throw new ApiError(400, 'EINVAL', `${pathname.slice(0, 200)} is a WebSocket endpoint: connect with a WebSocket upgrade`);
    if (pathKnown) {
      throw new ApiError(ws ? 400 : 405, 'EINVAL', ws ? `${pathname} is not a WebSocket endpoint` : `method ${method} is not allowed on ${pathname}`);
    }
    throw new ApiError(404, 'ENOTFOUND', `no such route: ${method} ${pathname.slice(0, 200)}`);
  }
}
