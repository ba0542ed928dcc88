// The E2B API of hutchd (hutchd --e2b, docs/e2b.md): takes E2B's requests before hutch's own router.
// A request naming a sandbox (E2b-Sandbox-Id) or an envd path is an envd call: the sandbox must be
// this hutchd's and X-Access-Token its envd token; it then goes to envdHandlers. Everything else of
// E2B's (X-API-KEY, its paths) is the control plane, checked against hutchd's bearer tokens.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HutchError, isHutchError } from '../../errors.js';
import type { TokenAuth } from '../auth.js';
import { closeAfterAnswer } from '../guard.js';
import { ApiError } from '../http.js';
import { Router } from '../router.js';
import { isServed, servedSandbox, type Services } from '../services.js';
import { sendConnectError, sendE2bError } from './answer.js';
import { controlRoutes, ENVD_TOKEN_LABEL, type E2bOptions } from './control.js';
import { envdHandlers } from './envd.js';

export { ENVD_VERSION, type E2bOptions } from './control.js';

/** envd's plain paths (its RPCs are /package.Service/Method). */
const ENVD_PATHS = new Set(['/health', '/files', '/envs', '/init']);
const RPC_PATH = /^\/[a-z][\w]*\.[A-Z]\w*\/[A-Z]\w*$/;
/** Paths of E2B's control plane (hutch's own are under /v1/ and never these). */
const CONTROL_PATH = /^\/(?:v[2-9]\/)?(?:sandboxes|templates|snapshots|volumes|secrets|teams|nodes|api-keys|access-tokens)(?:\/|$)/;
/** The port E2B's SDK names for envd (E2b-Sandbox-Port). */
const ENVD_PORT = 49983;
/** Envd tokens remembered by sandbox id (bounded; forgotten when the sandbox goes). */
const MAX_REMEMBERED = 10_000;

/** The E2B API: which requests are its, and their answers. */
export class E2bApi {
  private readonly router = new Router();
  private readonly tokens = new Map<string, Buffer>();

  private readonly domain: string | undefined;

  constructor(private readonly s: Services, private readonly auth: TokenAuth, opts: E2bOptions) {
    this.domain = opts.domain?.toLowerCase();
    this.router.add(...controlRoutes(s, opts));
    s.events.subscribe((e) => {
      if (e.type === 'removed' || e.type === 'expired') this.tokens.delete(e.sandboxId);
    });
  }

  /**
   * The sandbox and port a request names by its host (`PORT-ID.DOMAIN`, the SDK's getHost) when
   * hutchd has an E2B domain; null otherwise. Only sandboxes made through E2B's API are reachable
   * so: like E2B's, such a URL is public, its sandbox id the only secret (docs/e2b.md).
   */
  portHost(req: IncomingMessage): { id: string; port: number } | null {
    if (!this.domain) return null;
    const host = (req.headers.host ?? '').toLowerCase().replace(/:\d+$/, '');
    const m = /^(\d{1,5})-([0-9a-f]{16})\.(.+)$/.exec(host);
    if (!m || m[3] !== this.domain) return null;
    return { id: m[2]!, port: Number(m[1]) };
  }

  /** True when the sandbox was made through E2B's API (it has an envd token). */
  async isE2bSandbox(id: string): Promise<boolean> {
    try {
      return (await this.s.engine.inspect(id)).labels?.[ENVD_TOKEN_LABEL] !== undefined;
    } catch (e) {
      if (isHutchError(e, 'ENOTFOUND')) return false; // gone or never there (the caller answers 404)
      throw e;
    }
  }

  /** Which side of the E2B API a request is for; undefined when it is hutch's own. */
  kindOf(req: IncomingMessage, url: URL): 'envd' | 'control' | undefined {
    if (req.headers['e2b-sandbox-id'] !== undefined || ENVD_PATHS.has(url.pathname) || RPC_PATH.test(url.pathname)) return 'envd';
    if (req.headers['x-api-key'] !== undefined || CONTROL_PATH.test(url.pathname)) return 'control';
    return undefined;
  }

  /** Answers a request of the E2B API (errors included: it never throws). */
  async handle(kind: 'envd' | 'control', req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    if (kind === 'envd') return this.envd(req, res, url);
    try {
      const key = req.headers['x-api-key'];
      if (typeof key !== 'string' || key === '') throw new HutchError('EAUTH', 'missing API key: send X-API-KEY (one of hutchd\'s tokens)');
      if (!this.auth.accepts(key)) throw new HutchError('EAUTH', 'invalid API key: it is not one of hutchd\'s tokens');
    } catch (e) {
      closeAfterAnswer(req, res); // a client without a valid key gets its answer and the door
      return sendE2bError(res, e);
    }
    try {
      let m: ReturnType<Router['match']>;
      try {
        m = this.router.match(req.method ?? '', url.pathname, false);
      } catch (e) {
        if (e instanceof ApiError && e.status === 404) throw new HutchError('EUNSUPPORTED', `hutchd's E2B API has no ${req.method} ${url.pathname.slice(0, 200)} (docs/e2b.md says what it has)`);
        throw e;
      }
      if (m.route.ws) throw new HutchError('EINVAL', 'not a WebSocket route');
      await m.route.handle({ req, res, url, params: m.params });
    } catch (e) {
      sendE2bError(res, e);
      if (!req.complete) req.resume();
    }
  }

  private async envd(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const rpc = RPC_PATH.test(url.pathname);
    let sandboxId: string;
    try {
      sandboxId = await this.authorize(req);
    } catch (e) {
      // As E2B's proxy: 502 for a sandbox that is not there (the SDK's "not running anymore"), 401 for a bad token.
      closeAfterAnswer(req, res);
      return sendE2bError(res, isHutchError(e) && e.code === 'ENOTFOUND' ? new ApiError(502, 'ENOTFOUND', e.message) : e);
    }
    const port = req.headers['e2b-sandbox-port'];
    if (port !== undefined && port !== String(ENVD_PORT)) {
      sendE2bError(res, new HutchError('EUNSUPPORTED', `port ${String(port).slice(0, 10)}: hutchd's E2B API reaches envd (port ${ENVD_PORT}) only; reach a sandbox's own ports with hutch's port forwards (docs/api.md)`));
      req.resume();
      return;
    }
    const handler = Object.hasOwn(envdHandlers, url.pathname) ? envdHandlers[url.pathname] : undefined;
    try {
      if (handler) {
        await handler({ s: this.s, sandboxId, user: userOf(req), req, res, url });
      } else if (url.pathname === '/health' && req.method === 'GET') {
        res.writeHead(204).end();
      } else {
        throw new HutchError('EUNSUPPORTED', `hutchd's envd does not implement ${url.pathname.slice(0, 200)} yet (docs/e2b.md)`);
      }
    } catch (e) {
      if (rpc) sendConnectError(req, res, e);
      else sendE2bError(res, e);
      if (!req.complete) req.resume();
    }
  }

  /**
   * The hutch id of the sandbox an envd call is for, once its X-Access-Token is checked. Without
   * E2b-Sandbox-Id (SDKs before 2.14.1 send it on RPCs only, not on /files and /health) the token
   * names the sandbox: each sandbox's is its own.
   */
  private async authorize(req: IncomingMessage): Promise<string> {
    const ref = req.headers['e2b-sandbox-id'];
    const given = req.headers['x-access-token'];
    if (typeof ref !== 'string' || ref === '') {
      if (typeof given !== 'string' || given === '') throw new HutchError('EINVAL', 'missing E2b-Sandbox-Id and X-Access-Token headers: which sandbox is this call for?');
      return this.byToken(given);
    }
    let want = this.tokens.get(ref);
    let id = ref;
    if (want === undefined) {
      const info = await servedSandbox(this.s, ref);
      const token = info.labels?.[ENVD_TOKEN_LABEL];
      if (token === undefined) throw new HutchError('EAUTH', `sandbox ${info.id} was not made through the E2B API: it has no envd access token`);
      id = info.id;
      want = sha256(token);
      this.remember(id, want);
    }
    if (typeof given !== 'string' || !timingSafeEqual(sha256(given), want)) throw new HutchError('EAUTH', 'missing or invalid X-Access-Token for this sandbox');
    return id;
  }

  /** The sandbox whose envd token `token` is (ENOTFOUND when none: it is gone, or never was). */
  private async byToken(token: string): Promise<string> {
    const hash = sha256(token);
    const find = () => [...this.tokens].find(([, h]) => h.equals(hash))?.[0];
    let id = find();
    if (id === undefined) {
      for (const info of (await this.s.engine.list()).filter(isServed)) {
        const t = info.labels?.[ENVD_TOKEN_LABEL];
        if (t !== undefined) this.remember(info.id, sha256(t));
      }
      id = find();
    }
    if (id === undefined) throw new HutchError('ENOTFOUND', 'no sandbox of this hutchd has this X-Access-Token: it is gone, or the token is wrong');
    return id;
  }

  private remember(id: string, hash: Buffer): void {
    if (this.tokens.size >= MAX_REMEMBERED) this.tokens.clear();
    this.tokens.set(id, hash);
  }
}

/** The user of `Authorization: Basic base64(user:)`; undefined when none. */
function userOf(req: IncomingMessage): string | undefined {
  const m = /^Basic\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  if (!m) return undefined;
  const text = Buffer.from(m[1]!, 'base64').toString('utf8');
  const user = text.slice(0, text.includes(':') ? text.indexOf(':') : undefined);
  return user === '' ? undefined : user;
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}
