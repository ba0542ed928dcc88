// What keeps one client from stalling hutchd: bounded connections (in total and per client
// address), a time limit on headers, on a request body that stops arriving and on the whole
// request, and refused requests closed rather than read.
import type http from 'node:http';
import type net from 'node:net';

/** Connection and timing bounds of hutchd's listeners. */
export interface ConnectionLimits {
  /** Open connections at once, over all clients (a unix socket counts as one client). */
  maxConnections: number;
  /** Open connections at once from one TCP address. */
  maxConnectionsPerClient: number;
  /** Time for a request's headers to arrive (ms). */
  headersTimeoutMs: number;
  /** Longest pause while a request body is arriving (ms). */
  bodyIdleTimeoutMs: number;
  /** Longest time for a whole request to arrive, body included (ms). */
  requestTimeoutMs: number;
  /** Idle time of a kept-alive connection between requests (ms). */
  keepAliveTimeoutMs: number;
}

/** The defaults: room for many clients within a default fd limit of 1024. */
export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  maxConnections: 512, maxConnectionsPerClient: 64, headersTimeoutMs: 30_000, bodyIdleTimeoutMs: 30_000,
  requestTimeoutMs: 15 * 60_000, keepAliveTimeoutMs: 60_000,
};

/** The options for http.createServer that carry `limits`. */
export function serverTimeouts(limits: ConnectionLimits): http.ServerOptions {
  return { keepAliveTimeout: limits.keepAliveTimeoutMs, headersTimeout: limits.headersTimeoutMs, requestTimeout: limits.requestTimeoutMs };
}

const BUSY = (what: string) => {
  const body = JSON.stringify({ error: { code: 'EBUSY', message: `too many connections ${what}: try again later` } });
  return `HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`;
};

/** Counts the connections of `server` and turns away those over `limits` with a 503. */
export function boundConnections(server: http.Server, limits: ConnectionLimits): void {
  let total = 0;
  const perClient = new Map<string, number>();
  server.on('connection', (socket: net.Socket) => {
    const client = socket.remoteAddress; // undefined on a unix socket: no per-client count there
    const mine = client === undefined ? 0 : perClient.get(client) ?? 0;
    const over = total >= limits.maxConnections ? 'in total' : mine >= limits.maxConnectionsPerClient ? `from ${client}` : null;
    if (over) {
      socket.on('error', () => undefined);
      socket.end(BUSY(over));
      socket.destroySoon();
      return;
    }
    total++;
    if (client !== undefined) perClient.set(client, mine + 1);
    socket.once('close', () => {
      total--;
      if (client === undefined) return;
      const n = (perClient.get(client) ?? 1) - 1;
      if (n > 0) perClient.set(client, n);
      else perClient.delete(client);
    });
  });
}

/**
 * Cuts off a request whose body stops arriving for longer than `idleMs` (a socket timeout, so
 * the body's stream is left to the handler); off once the body is in.
 */
export function watchBodyIdle(req: http.IncomingMessage, idleMs: number): void {
  if (req.complete) return;
  const socket = req.socket;
  const cut = () => socket.destroy();
  socket.setTimeout(idleMs);
  socket.once('timeout', cut);
  req.once('end', () => {
    socket.removeListener('timeout', cut);
    socket.setTimeout(0);
  });
}

/** How long a refused client has to read its answer before its connection is cut. */
const REFUSED_LINGER_MS = 2000;

/**
 * Ends a refused request's connection once its answer is sent, without reading the body: a FIN
 * after the answer (so the client can read it), then the connection is cut.
 */
export function closeAfterAnswer(req: http.IncomingMessage, res: http.ServerResponse): void {
  if (!res.headersSent) res.setHeader('connection', 'close');
  const socket = req.socket;
  res.once('finish', () => {
    socket.end();
    setTimeout(() => socket.destroy(), REFUSED_LINGER_MS).unref();
  });
}
