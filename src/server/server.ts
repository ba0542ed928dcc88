// hutchd: the HTTP + WebSocket API over the engine, on a unix socket (mode 0600) and/or TCP
// (TCP only with tokens). One SandboxCalls for the server's life keeps agent connections open.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { checkLimits, Engine, SandboxCalls } from '../engine/index.js';
import { HutchError } from '../errors.js';
import { TokenAuth } from './auth.js';
import { E2bApi, type E2bOptions } from './e2b/index.js';
import { claimRoot } from './instance.js';
import { boundConnections, closeAfterAnswer, DEFAULT_CONNECTION_LIMITS, serverTimeouts, watchBodyIdle, type ConnectionLimits } from './guard.js';
import { errorBody, sendError } from './http.js';
import { openApiDocument } from './openapi.js';
import { EventBus, LifetimeKeeper, Metrics, WarmPool, type PoolSpec } from './parts.js';
import type { RecoveryResult } from './lifetime.js';
import { OutputBudget } from './output-budget.js';
import { ProcessTable } from './processes.js';
import { Router } from './router.js';
import { fileRoutes } from './routes-files.js';
import { PortForwards } from './routes-ports.js';
import { processRoutes } from './routes-processes.js';
import { sandboxRoutes } from './routes-sandboxes.js';
import { snapshotRoutes } from './routes-snapshots.js';
import { networkRoutes } from './routes-network.js';
import { serviceRoutes } from './routes-service.js';
import { forgetServed, type ApiLimits, type NetworkSettings, type Services } from './services.js';
import { processSocketRoutes } from './ws-process.js';
import { watchSocketRoutes } from './ws-watch.js';

/** Where hutchd listens when not told otherwise (with the default state root). */
export const DEFAULT_SOCKET = '/run/hutch/hutchd.sock';

/** hutchd's socket when not told otherwise: in its state root, so hutchd's of two roots never share one. */
export function defaultSocketOf(root: string): string {
  return path.join(root, 'hutchd.sock');
}

/** How hutchd is set up. */
export interface HutchdOptions {
  /** The platform of sandboxes that do not name one (default: $HUTCH_PLATFORM, else container). */
  platform?: string;
  /** State root and executor of the engine (defaults as for the CLI). */
  root?: string;
  executor?: string;
  /** Unix socket to listen on (default `hutchd.sock` in the state root unless `listen` is given alone). */
  socketPath?: string;
  /** TCP address; needs `tokenFile`. */
  listen?: { host: string; port: number };
  /** Bearer tokens, one per line. */
  tokenFile?: string;
  pools?: PoolSpec[];
  /** Pool sandboxes made at once (default 1: the other cores stay free for the clients' calls). */
  poolConcurrency?: number;
  limits?: Partial<ApiLimits>;
  /** Connection counts and timeouts of the listeners (DEFAULT_CONNECTION_LIMITS for what is absent). */
  connections?: Partial<ConnectionLimits>;
  sweepIntervalMs?: number;
  /**
   * The host id range of the sandboxes it makes (cold and pooled): 'private' (default) gives each
   * one a range of its own, so that root in one tenant's sandbox is not the same host uid as root
   * in another's; 'shared' = the one range the CLI's sandboxes use by default.
   */
  idRange?: 'shared' | 'private';
  /** The network of sandboxes whose create names none (default none: loopback only), and whether clients may ask for the host's. */
  network?: Partial<NetworkSettings>;
  /** Serve E2B's API too (docs/e2b.md), on the TCP listener only: E2B's SDK speaks HTTP to a URL. */
  e2b?: E2bOptions;
}

const DEFAULT_LIMITS: ApiLimits = {
  maxJsonBytes: 1024 * 1024, maxUploadBytes: 1024 * 1024 * 1024, defaultTtlMs: 10 * 60_000, maxTtlMs: 24 * 3600_000,
  maxWaitOutputBytes: 16 * 1024 * 1024, maxBufferedOutputBytes: 256 * 1024 * 1024,
  defaultSandboxLimits: {},
};

/** A running hutchd. */
export class Hutchd {
  private readonly servers: http.Server[] = [];
  private releaseRoot: (() => void) | undefined;
  /** The E2B API (hutchd --e2b), served on the TCP listener. */
  private e2b: E2bApi | undefined;
  /** What recovery found at start: sandboxes of an earlier hutchd served again, and leftovers removed. */
  recovered: RecoveryResult = { adopted: [], removed: [], failed: [] };
  /** Where it listens: the socket path and/or the TCP URL. */
  readonly addresses: { socketPath?: string; url?: string } = {};

  private constructor(readonly services: Services, private readonly router: Router, private readonly auth: TokenAuth | undefined,
    private readonly wss: WebSocketServer, private readonly connections: ConnectionLimits, private readonly ports: PortForwards) {}

  /** Checks the options, recovers the sandboxes of an earlier hutchd, and starts listening. */
  static async start(opts: HutchdOptions): Promise<Hutchd> {
    if (opts.listen && !opts.tokenFile) {
      throw new HutchError('EINVAL', `refusing to listen on TCP ${opts.listen.host}:${opts.listen.port} without a token file: give --token-file FILE`);
    }
    if (opts.e2b && !opts.listen) throw new HutchError('EINVAL', '--e2b serves E2B\'s API on TCP: give --listen HOST:PORT and --token-file FILE');
    const auth = opts.tokenFile ? TokenAuth.fromFile(opts.tokenFile) : undefined;
    const limits = { ...DEFAULT_LIMITS, ...(opts.limits ?? {}) };
    if (!(limits.defaultTtlMs > 0) || limits.defaultTtlMs > limits.maxTtlMs) {
      throw new HutchError('EINVAL', `the default TTL (${limits.defaultTtlMs} ms) must be positive and at most the maximum TTL (${limits.maxTtlMs} ms)`);
    }
    if (!(limits.maxBufferedOutputBytes > 0) || !(limits.maxWaitOutputBytes > 0)) {
      throw new HutchError('EINVAL', `the output limits (${limits.maxWaitOutputBytes} per command, ${limits.maxBufferedOutputBytes} in total) must be positive`);
    }
    checkLimits(limits.defaultSandboxLimits); // EINVAL for a bad --default-memory, --default-cpus, --default-disk
    const engine = new Engine({
      offloadBlockingWork: true, ...(opts.root ? { root: opts.root } : {}), ...(opts.executor ? { executor: opts.executor } : {}), ...(opts.platform ? { platform: opts.platform } : {}),
    });
    // Probed on the container platform: a platform without private ranges gets the shared one per sandbox.
    const { idRange, warning } = await chooseIdRange(opts.idRange, () => engine.privateIdsProblem('container'));
    if (warning) process.stderr.write(`hutchd: ${warning}\n`);
    const events = new EventBus();
    const calls = new SandboxCalls(engine);
    const services: Services = {
      engine, calls, events, metrics: new Metrics(), processes: new ProcessTable(), limits, outputBudget: new OutputBudget(limits.maxBufferedOutputBytes), servedIds: new Map(), idRange, network: { defaultMode: opts.network?.defaultMode ?? 'none', allowHost: opts.network?.allowHost === true },
      lifetime: new LifetimeKeeper(engine, events, { defaultTtlMs: limits.defaultTtlMs, maxTtlMs: limits.maxTtlMs, sweepIntervalMs: opts.sweepIntervalMs ?? 5000 }),
      pool: new WarmPool(engine, events, (opts.pools ?? []).map((p) => ({ ...p, limits: { ...limits.defaultSandboxLimits, ...p.limits } })), {
        concurrency: opts.poolConcurrency ?? 1, idRange, network: opts.network?.defaultMode ?? 'none', prepare: (id) => warmUp(calls, id), refillDelayMs: POOL_REFILL_DELAY_MS,
      }),
    };
    events.subscribe((e) => {
      if (e.type !== 'removed' && e.type !== 'expired') return;
      services.processes.dropSandbox(e.sandboxId);
      forgetServed(services, e.sandboxId);
    });
    const wss = new WebSocketServer({ noServer: true, maxPayload: limits.maxJsonBytes });
    const router = new Router();
    const ports = new PortForwards(services);
    router.add(...sandboxRoutes(services), ...snapshotRoutes(services), ...networkRoutes(services), ...processRoutes(services), ...fileRoutes(services),
      ...processSocketRoutes(services, wss), ...watchSocketRoutes(services, wss), ...ports.routes(), ...serviceRoutes(services, () => openApiDocument(router.routes())));
    const d = new Hutchd(services, router, auth, wss, { ...DEFAULT_CONNECTION_LIMITS, ...(opts.connections ?? {}) }, ports);
    if (opts.e2b && auth) d.e2b = new E2bApi(services, auth, opts.e2b);
    d.releaseRoot = claimRoot(engine.store.root);
    const socketPath = opts.socketPath ?? (opts.listen ? undefined : defaultSocketOf(engine.store.root));
    try {
      d.recovered = await services.lifetime.recover();
      await collectNetworkLeftovers(engine);
      services.lifetime.start();
      services.pool.start();
      if (socketPath) await d.listenUnix(socketPath);
      if (opts.listen) await d.listenTcp(opts.listen.host, opts.listen.port);
    } catch (e) {
      await d.close();
      throw e;
    }
    return d;
  }

  private newServer(e2b?: E2bApi): http.Server {
    const server = http.createServer(serverTimeouts(this.connections), (req, res) => void this.onRequest(req, res, e2b));
    boundConnections(server, this.connections);
    server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void this.onUpgrade(req, socket, head, e2b));
    server.on('clientError', (_e, socket: Duplex) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-type: application/json\r\n\r\n{"error":{"code":"EINVAL","message":"malformed HTTP request"}}');
      else socket.destroy();
    });
    this.servers.push(server);
    return server;
  }

  private async listenUnix(socketPath: string): Promise<void> {
    fs.mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o755 });
    const existing = fs.lstatSync(socketPath, { throwIfNoEntry: false });
    if (existing) {
      if (!existing.isSocket()) throw new HutchError('EEXIST', `${socketPath} exists and is not a socket: refusing to replace it`, { path: socketPath });
      if (await answers(socketPath)) throw new HutchError('EEXIST', `another hutchd is already serving on ${socketPath}`, { path: socketPath });
      fs.rmSync(socketPath, { force: true }); // a stale socket of a hutchd that died
    }
    // Made in a private dir (0700), set to 0600, then renamed into place: nobody else can ever connect
    // to it, and no process-wide umask is changed while other work (the pool) makes files.
    const staging = fs.mkdtempSync(path.join(path.dirname(socketPath), '.hutchd-'));
    try {
      const tmp = path.join(staging, 'sock');
      const server = this.newServer();
      await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(tmp, () => resolve()); });
      fs.chmodSync(tmp, 0o600);
      fs.renameSync(tmp, socketPath);
    } finally {
      fs.rmSync(staging, { recursive: true, force: true });
    }
    this.addresses.socketPath = socketPath;
  }

  private async listenTcp(host: string, port: number): Promise<void> {
    const server = this.newServer(this.e2b);
    await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(port, host, () => resolve()); });
    const a = server.address() as net.AddressInfo;
    this.addresses.url = `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  }

  private async onRequest(req: http.IncomingMessage, res: http.ServerResponse, e2b?: E2bApi): Promise<void> {
    const t0 = performance.now();
    let route = 'unmatched';
    res.once('finish', () => this.services.metrics.observeRequest(req.method ?? '?', route, res.statusCode, (performance.now() - t0) / 1000));
    let refused = false;
    try {
      const url = new URL(req.url ?? '/', 'http://hutchd');
      const byHost = e2b?.portHost(req);
      if (byHost) {
        // E2B's sandbox hosts (PORT-ID.DOMAIN): public, as E2B's are (docs/e2b.md).
        route = 'e2b-port';
        if (!(await e2b!.isE2bSandbox(byHost.id))) throw new HutchError('ENOTFOUND', `sandbox ${byHost.id} not found`, { id: byHost.id });
        return await this.ports.forwardByHost({ req, res, url, params: {} }, byHost.id, byHost.port);
      }
      const kind = e2b?.kindOf(req, url);
      if (kind) {
        // E2B's requests carry E2B's credentials (X-API-KEY, X-Access-Token), checked by its dispatcher.
        route = `e2b-${kind}`;
        watchBodyIdle(req, this.connections.bodyIdleTimeoutMs);
        return await e2b!.handle(kind, req, res, url);
      }
      if (url.pathname !== '/healthz') {
        refused = true;
        this.auth?.check(req);
        refused = false;
      }
      watchBodyIdle(req, this.connections.bodyIdleTimeoutMs);
      const m = this.router.match(req.method ?? '', url.pathname, false);
      route = m.route.path;
      if (m.route.ws) throw new HutchError('EINVAL', 'WebSocket route');
      await m.route.handle({ req, res, url, params: m.params });
    } catch (e) {
      // A client without a valid token gets its answer and the door: its body is never read.
      if (refused) closeAfterAnswer(req, res);
      sendError(res, e);
      if (!refused && !req.complete) drainRequest(req);
    }
  }

  private async onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer, e2b?: E2bApi): Promise<void> {
    socket.on('error', () => undefined); // a client that vanishes mid-handshake is not an error of ours
    try {
      const url = new URL(req.url ?? '/', 'http://hutchd');
      const byHost = e2b?.portHost(req);
      if (byHost) {
        if (!(await e2b!.isE2bSandbox(byHost.id))) throw new HutchError('ENOTFOUND', `sandbox ${byHost.id} not found`, { id: byHost.id });
        return await this.ports.forwardByHost({ req, socket, head, url, params: {} }, byHost.id, byHost.port);
      }
      this.auth?.check(req);
      const m = this.router.match(req.method ?? '', url.pathname, true);
      if (!m.route.ws) throw new HutchError('EINVAL', 'not a WebSocket route');
      await m.route.handle({ req, socket, head, url, params: m.params });
    } catch (e) {
      const { status, body } = errorBody(e);
      const text = JSON.stringify(body);
      if (socket.writable) {
        socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`);
      }
    }
  }

  /** Stops listening, closes streams and agent connections; sandboxes stay (a later hutchd serves them). */
  async close(): Promise<void> {
    for (const c of this.wss.clients) c.terminate();
    this.ports.closeAll();
    await Promise.all(this.servers.map((s) => new Promise<void>((resolve) => {
      if (!s.listening) return resolve();
      s.close(() => resolve());
      s.closeAllConnections();
    })));
    try {
      await this.services.lifetime.stop();
      await this.services.pool.stop({ drain: true });
    } finally {
      // Whatever the pool's drain said (a failure is thrown on), the socket and the root are let go.
      this.services.calls.closeAll();
      if (this.addresses.socketPath) fs.rmSync(this.addresses.socketPath, { force: true });
      this.releaseRoot?.();
    }
  }
}


/** What a refused request may still send (read and dropped, so that its client reads our answer). */
const DRAIN_MAX_BYTES = 64 * 1024 * 1024;

/** Reads and drops the rest of a refused request's body; a client that keeps sending past the cap is cut off. */
function drainRequest(req: http.IncomingMessage): void {
  let n = 0;
  req.on('data', (c: Buffer) => {
    n += c.length;
    if (n > DRAIN_MAX_BYTES) req.socket.destroy();
  });
  req.resume();
}

/** True when something accepts connections on the unix socket. */
function answers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(socketPath);
    c.once('connect', () => { c.destroy(); resolve(true); });
    c.once('error', () => resolve(false));
  });
}

/**
 * The id range hutchd gives its sandboxes: private unless asked for shared. When the host cannot
 * make private ones (`problem` says why), an explicit `private` is refused at start, and the
 * default falls back to shared with a warning, rather than every create failing later.
 */
export async function chooseIdRange(asked: 'shared' | 'private' | undefined, problem: () => Promise<string | null>): Promise<{ idRange: 'shared' | 'private'; warning?: string }> {
  if (asked !== undefined && asked !== 'shared' && asked !== 'private') throw new HutchError('EINVAL', `invalid id range "${String(asked).slice(0, 80)}": use shared or private`);
  if (asked === 'shared') return { idRange: 'shared' };
  const why = await problem();
  if (why === null) return { idRange: 'private' };
  if (asked === 'private') throw new HutchError('EUNSUPPORTED', `--userns private: this host cannot give sandboxes id ranges of their own: ${why}`);
  return { idRange: 'shared', warning: `sandboxes get the shared id range: this host cannot give them ranges of their own (${why})` };
}

/** How long after a claim hutchd's pool waits before refilling (see PoolOptions.refillDelayMs). */
const POOL_REFILL_DELAY_MS = 250;

/** One `true` in a new pooled sandbox: its agent connection is then open and its exec path run once. */
async function warmUp(calls: SandboxCalls, id: string): Promise<void> {
  const p = await calls.exec(id, { argv: ['true'] });
  p.stdout.resume();
  p.stderr.resume();
  const exit = await p.wait();
  if (exit.exitCode !== 0) throw new HutchError('EEXEC', `warming up pooled sandbox ${id}: true exited ${exit.exitCode ?? exit.signal}`, { id });
}

/** Detaches what a crash left on hutch's networks: leases whose sandbox's dir is gone (any state root's). */
async function collectNetworkLeftovers(engine: Engine): Promise<void> {
  await (await engine.networks()).collectGarbage((l) => !fs.existsSync(path.join(l.root, 'sandboxes', l.id)));
}
