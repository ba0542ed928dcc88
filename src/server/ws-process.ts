// Process streams over WebSocket: `exec` starts a process and attaches in one go (the first client
// message is the start request); `attach` joins a process started with POST .../processes.
// Frames, server → client: binary [tag, ...bytes] with tag 1 = stdout, 2 = stderr; text JSON
// {type:'started',pid,tty} first and {type:'exit',exitCode,signal} last (or {type:'error',error}).
// Client → server: binary = stdin bytes; text JSON {type:'stdin',data} | {type:'resize',cols,rows}
// | {type:'signal',signal} | {type:'close-stdin'} (and {type:'start',...} first on exec).
import type { WebSocket, WebSocketServer } from 'ws';
import type { ExitStatus } from '../agent/index.js';
import { HutchError } from '../errors.js';
import { errorBody } from './http.js';
import type { OutputSink, ProcessEntry } from './processes.js';
import { startProcess, startRequestOf } from './routes-processes.js';
import type { Route, UpgradeContext } from './router.js';
import { servedId, type Services } from './services.js';

/** Output queued in a socket before the process is paused (bytes), and where it resumes. */
const HIGH_WATER = 512 * 1024;
const LOW_WATER = 128 * 1024;
/** How long exec waits for its start message. */
const START_TIMEOUT_MS = 10_000;

/** A WebSocket as an output sink, with backpressure by bytes not yet written to the socket. */
class SocketSink implements OutputSink {
  private pending = 0;
  private paused = false;
  entry: ProcessEntry | undefined;

  constructor(private readonly ws: WebSocket) {}

  write(fd: 1 | 2, data: Buffer): boolean {
    if (this.ws.readyState !== this.ws.OPEN) return true; // closing: the detach follows
    const frame = Buffer.allocUnsafe(data.length + 1);
    frame[0] = fd;
    data.copy(frame, 1);
    this.pending += frame.length;
    this.ws.send(frame, { binary: true }, () => {
      this.pending -= frame.length;
      if (this.paused && this.pending <= LOW_WATER) {
        this.paused = false;
        this.entry?.drained();
      }
    });
    if (this.pending > HIGH_WATER) this.paused = true;
    return !this.paused;
  }

  exit(status: ExitStatus): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    this.ws.send(JSON.stringify({ type: 'exit', exitCode: status.exitCode, signal: status.signal }));
    this.ws.close(1000, 'exited');
  }
}

/** Sends an error message and closes. */
function closeWithError(ws: WebSocket, e: unknown): void {
  if (ws.readyState !== ws.OPEN) return;
  const { status, body } = errorBody(e);
  ws.send(JSON.stringify({ type: 'error', status, ...body }));
  ws.close(status >= 500 ? 1011 : 4000 + Math.min(999, status), body.error.code);
}

/** Client messages once attached: stdin, resize, signal, close-stdin. */
function handleControl(entry: ProcessEntry, ws: WebSocket, data: Buffer, isBinary: boolean): void {
  const stdin = entry.handle.stdin;
  const write = (b: Buffer) => {
    if (!stdin.write(b)) {
      ws.pause();
      // A stdin that is ending never emits 'drain' (close-stdin may follow at once): then 'finish'
      // resumes the socket. Left paused, the socket could not read the client's close frame, and
      // every such exec would end only at ws's 30-second close timeout.
      const resume = () => {
        for (const ev of ['drain', 'finish', 'close', 'error'] as const) stdin.off(ev, resume);
        ws.resume();
      };
      for (const ev of ['drain', 'finish', 'close', 'error'] as const) stdin.once(ev, resume);
    }
  };
  if (isBinary) return write(data);
  let m: Record<string, unknown>;
  try {
    m = JSON.parse(data.toString('utf8')) as Record<string, unknown>;
    if (typeof m !== 'object' || m === null) throw new Error('not an object');
  } catch {
    throw new HutchError('EINVAL', 'a text message must be a JSON object with a type');
  }
  switch (m['type']) {
    case 'stdin':
      if (typeof m['data'] !== 'string') throw new HutchError('EINVAL', 'stdin message needs data (a string)');
      return write(Buffer.from(m['data']));
    case 'close-stdin':
      stdin.end();
      return;
    case 'resize': {
      const cols = m['cols'], rows = m['rows'];
      if (!Number.isInteger(cols) || !Number.isInteger(rows) || (cols as number) < 1 || (rows as number) < 1 || (cols as number) > 10000 || (rows as number) > 10000) {
        throw new HutchError('EINVAL', 'resize needs integer cols and rows from 1 to 10000');
      }
      entry.handle.resize(cols as number, rows as number).catch((e: unknown) => closeWithError(ws, e));
      return;
    }
    case 'signal':
      if (typeof m['signal'] !== 'string' && typeof m['signal'] !== 'number') throw new HutchError('EINVAL', 'signal message needs signal (a name or number)');
      entry.handle.kill(m['signal'] as string | number).catch((e: unknown) => closeWithError(ws, e));
      return;
    default:
      throw new HutchError('EINVAL', `unknown message type ${String(m['type']).slice(0, 40)}`);
  }
}

/** The socket bound to each attached process (to tell a client that is leaving from one that stays). */
const boundSockets = new WeakMap<ProcessEntry, WebSocket>();

/** Resolves once the socket attached to `entry`, if it is already closing, has closed (at most 2 s). */
async function leaving(entry: ProcessEntry): Promise<void> {
  const ws = boundSockets.get(entry);
  if (!ws || ws.readyState === ws.OPEN || ws.readyState === ws.CLOSED) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 2000);
    ws.once('close', () => { clearTimeout(timer); resolve(); });
  });
}

/**
 * Binds a socket to a process until one of them ends. `early` holds client messages that came
 * while the process was being started (a client may send stdin right after its start message).
 */
function bind(ws: WebSocket, entry: ProcessEntry, early: [Buffer, boolean][] = []): void {
  const sink = new SocketSink(ws);
  sink.entry = entry;
  ws.send(JSON.stringify({ type: 'started', pid: entry.pid, tty: entry.handle.tty }));
  const onMessage = (data: Buffer, isBinary: boolean) => {
    try {
      handleControl(entry, ws, data, isBinary);
    } catch (e) {
      closeWithError(ws, e);
    }
  };
  for (const [data, isBinary] of early) onMessage(data, isBinary);
  ws.on('message', onMessage);
  ws.on('close', () => {
    if (boundSockets.get(entry) === ws) boundSockets.delete(entry);
    entry.detach(sink);
  });
  entry.attach(sink);
  boundSockets.set(entry, ws);
  entry.done.catch((e: unknown) => closeWithError(ws, e));
}

/** Parses the start message of exec. */
function startMessage(data: Buffer, isBinary: boolean): Record<string, unknown> {
  if (isBinary) throw new HutchError('EINVAL', 'the first message must be the JSON start request');
  let m: unknown;
  try {
    m = JSON.parse(data.toString('utf8'));
  } catch {
    throw new HutchError('EINVAL', 'the start message is not valid JSON');
  }
  if (typeof m !== 'object' || m === null || (m as Record<string, unknown>)['type'] !== 'start') {
    throw new HutchError('EINVAL', 'the first message must be {"type":"start","cmd":...}');
  }
  return m as Record<string, unknown>;
}

/** The WebSocket routes. `accept` finishes an upgrade (auth was checked before). */
export function processSocketRoutes(s: Services, wss: WebSocketServer): Route[] {
  const accept = (c: UpgradeContext) => new Promise<WebSocket>((resolve) => wss.handleUpgrade(c.req, c.socket, c.head, resolve));
  return [
    {
      method: 'GET', path: '/v1/sandboxes/{id}/exec', ws: true, handle: async (c) => {
        const info = { id: await servedId(s, c.params['id']!) };
        const ws = await accept(c);
        ws.on('error', () => undefined); // a broken socket shows as close
        const timer = setTimeout(() => closeWithError(ws, new HutchError('ETIMEDOUT', `no start message within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
        ws.once('close', () => clearTimeout(timer));
        let early: [Buffer, boolean][] | undefined;
        const onFirst = (data: Buffer, isBinary: boolean) => {
          if (early) return void early.push([data, isBinary]); // still starting: kept for bind
          early = [];
          clearTimeout(timer);
          void (async () => {
            const r = startRequestOf(startMessage(data, isBinary));
            const entry = await startProcess(s, info.id, r, r.detached ? 'keep-tail' : 'kill');
            ws.off('message', onFirst);
            if (ws.readyState !== ws.OPEN) {
              // The client left while it started: attach and detach at once (which kills it unless detached).
              const sink = new SocketSink(ws);
              entry.attach(sink);
              return entry.detach(sink);
            }
            bind(ws, entry, early);
          })().catch((e: unknown) => closeWithError(ws, e));
        };
        ws.on('message', onFirst);
      },
    },
    {
      method: 'GET', path: '/v1/sandboxes/{id}/processes/{pid}/attach', ws: true, handle: async (c) => {
        const info = { id: await servedId(s, c.params['id']!) };
        const entry = s.processes.must(info.id, Number(c.params['pid']));
        await leaving(entry); // a client that just disconnected is not in the way of the next
        if (entry.attached) throw new HutchError('ESTATE', `process ${entry.pid} of sandbox ${info.id} already has a client attached`, { id: info.id });
        const ws = await accept(c);
        ws.on('error', () => undefined);
        bind(ws, entry);
      },
    },
  ];
}
