// Watching files over WebSocket: {type:'ready', mode} once watching, then {type:'change',kind,path}
// with kind created | modified | removed (a directory is created or removed, never modified).
// `recursive=true` also watches subdirectories (up to 10000). Two ways to watch:
// - inotify (mode 'inotify'): the agent's `watch` call; its events are untrusted, so each path must be
//   the root or under it, and the rate and the client's backlog are capped. When the watched
//   directory is removed, 'removed' is sent and the socket closes normally (1000).
// - polling (mode 'poll'): for an agent that predates `watch`, when inotify cannot be used (limits),
//   when the path does not exist yet, or with `mode=poll`: hutchd lists the directory (or stats the
//   file) every `intervalMs` through the agent and sends the differences.
import path from 'node:path';
import type { WebSocket, WebSocketServer } from 'ws';
import type { AgentClient, WatchChange, WatchHandle } from '../agent/index.js';
import { HutchError, isHutchError } from '../errors.js';
import { errorBody, sandboxPath } from './http.js';
import type { Route, UpgradeContext } from './router.js';
import { servedId, type Services } from './services.js';

const MAX_WATCHED = 10_000;
const MIN_INTERVAL_MS = 100;
/** Longest poll interval: beyond 2^31-1 ms node's timers fire after 1 ms (a hot loop through the agent). */
const MAX_INTERVAL_MS = 86_400_000;
/** Most changes a second an agent may send for one watch (the agent itself sends at most 20000). */
const MAX_CHANGES_PER_SECOND = 40_000;
/** A client this far behind (bytes queued on its socket) is dropped. */
const MAX_CLIENT_BACKLOG = 8 * 1024 * 1024;
/** Most changes held while the WebSocket is being set up. */
const MAX_EARLY_CHANGES = 10_000;

type Snapshot = Map<string, string>;

/**
 * What a change is compared on: type, size and mtime; a directory by its type only (a change in it
 * shows as its entries' changes, not as the directory's own mtime).
 */
function signature(e: { type: string; size: number; mtimeMs: number }): string {
  return e.type === 'dir' ? 'dir' : `${e.type} ${e.size} ${e.mtimeMs}`;
}

/** What is at `root` now: path → "type size mtime" for each entry (and the root itself). The agent's names are untrusted. */
export async function snapshot(files: Pick<AgentClient, 'stat' | 'list'>, root: string, recursive: boolean): Promise<Snapshot> {
  const out: Snapshot = new Map();
  let st;
  try {
    st = await files.stat(root, { follow: true });
  } catch (e) {
    if ((e as HutchError).code === 'ENOTFOUND') return out; // not there (yet): everything shows as created later
    throw e;
  }
  out.set(root, signature(st));
  if (st.type !== 'dir') return out;
  const dirs = [root];
  while (dirs.length > 0) {
    const dir = dirs.shift()!;
    let entries;
    try {
      // Bounded like the snapshot: an agent cannot make one listing hold more.
      entries = await files.list(dir, { maxEntries: MAX_WATCHED });
    } catch (e) {
      if ((e as HutchError).code === 'ENOTFOUND') continue; // removed while we looked
      throw e;
    }
    for (const e of entries) {
      // A name with '/' or a '..' would make a path outside the root (or list there).
      if (e.name === '' || e.name === '.' || e.name === '..' || e.name.includes('/') || e.name.includes('\0')) {
        throw new HutchError('EPROTO', `the agent listed ${dir} with an entry named ${JSON.stringify(e.name.slice(0, 80))}`, { path: root });
      }
      const p = path.posix.join(dir, e.name);
      out.set(p, signature(e));
      if (out.size > MAX_WATCHED) throw new HutchError('EINVAL', `${root} has more than ${MAX_WATCHED} entries to watch`, { path: root });
      if (recursive && e.type === 'dir') dirs.push(p);
    }
  }
  return out;
}

/** The differences between two snapshots, as change messages. */
function changes(before: Snapshot, after: Snapshot): { kind: 'created' | 'modified' | 'removed'; path: string }[] {
  const out: { kind: 'created' | 'modified' | 'removed'; path: string }[] = [];
  for (const [p, v] of after) {
    const old = before.get(p);
    if (old === undefined) out.push({ kind: 'created', path: p });
    else if (old !== v) out.push({ kind: 'modified', path: p });
  }
  for (const p of before.keys()) if (!after.has(p)) out.push({ kind: 'removed', path: p });
  return out;
}

function closeWithError(ws: WebSocket, e: unknown): void {
  if (ws.readyState !== ws.OPEN) return;
  const { status, body } = errorBody(e);
  ws.send(JSON.stringify({ type: 'error', status, ...body }));
  ws.close(status >= 500 ? 1011 : 4000 + Math.min(999, status), body.error.code);
}

/** True when the agent cannot watch with inotify but polling can: an old agent, inotify limits, no path yet. */
export function pollInstead(e: unknown): boolean {
  if (!isHutchError(e)) return false;
  if (e.code === 'EINVAL' && e.message.startsWith('unknown method')) return true;
  return e.code === 'EUNSUPPORTED' || e.code === 'ENOTFOUND';
}

/** `p` with . and .. resolved and no trailing slash. */
function normalized(p: string): string {
  const n = path.posix.normalize(p);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

/** Where the changes of an inotify watch go: held until the socket is up, then checked and sent. */
export class ChangeRelay {
  private ws: WebSocket | undefined;
  private early: object[] = [];
  private tokens = MAX_CHANGES_PER_SECOND;
  private lastRefill = performance.now();
  private readonly prefix: string;
  failure: unknown;
  ended = false;

  constructor(private readonly root: string) {
    this.prefix = root === '/' ? '/' : `${root}/`;
  }

  /** Sends what was held, and from now on everything, to `ws`. */
  attach(ws: WebSocket): void {
    this.ws = ws;
    for (const m of this.early.splice(0)) this.send(m);
  }

  private send(m: object): void {
    if (!this.ws) {
      if (this.early.length >= MAX_EARLY_CHANGES) return this.fail(new HutchError('EPROTO', `more than ${MAX_EARLY_CHANGES} changes of ${this.root} before the socket was up`, { path: this.root }));
      this.early.push(m);
      return;
    }
    if (this.ws.readyState !== this.ws.OPEN) return;
    if (this.ws.bufferedAmount > MAX_CLIENT_BACKLOG) return this.fail(new HutchError('ESTATE', `the watch client of ${this.root} is more than ${MAX_CLIENT_BACKLOG} bytes behind`, { path: this.root }));
    this.ws.send(JSON.stringify(m));
  }

  /** Changes from the agent: every path must be the root or under it, at a bounded rate. */
  change(changes: WatchChange[]): void {
    if (this.ended) return;
    const now = performance.now();
    this.tokens = Math.min(MAX_CHANGES_PER_SECOND, this.tokens + ((now - this.lastRefill) / 1000) * MAX_CHANGES_PER_SECOND);
    this.lastRefill = now;
    this.tokens -= changes.length;
    if (this.tokens < 0) return this.fail(new HutchError('EPROTO', `the agent sent more than ${MAX_CHANGES_PER_SECOND} changes a second for ${this.root}`, { path: this.root }));
    for (const c of changes) {
      if ((c.path !== this.root && !c.path.startsWith(this.prefix)) || normalized(c.path) !== c.path) {
        return this.fail(new HutchError('EPROTO', `the agent reported ${c.path.slice(0, 200)}, which is not under ${this.root}`, { path: this.root }));
      }
      this.send({ type: 'change', kind: c.kind, path: c.path });
      if (this.ended) return;
    }
  }

  /** The watch ended by itself: the root is gone (null), or with an error. */
  end(error: HutchError | null): void {
    if (this.ended) return;
    if (error) return this.fail(error);
    this.ended = true;
    if (!this.ws) this.failure = new HutchError('ENOTFOUND', `${this.root} was removed while the watch started`, { path: this.root });
    else if (this.ws.readyState === this.ws.OPEN) this.ws.close(1000, 'the watched path was removed');
  }

  private fail(e: unknown): void {
    this.ended = true;
    this.failure = e;
    if (this.ws) closeWithError(this.ws, e);
  }
}

/** Accepts the WebSocket; resolves null if the client went away first (nothing else would tell). */
function accept(wss: WebSocketServer, c: UpgradeContext): Promise<WebSocket | null> {
  return new Promise((resolve) => {
    const gone = (): void => resolve(null);
    c.socket.once('close', gone);
    wss.handleUpgrade(c.req, c.socket, c.head, (ws) => { c.socket.off('close', gone); resolve(ws); });
  });
}

/** Watches with the agent's inotify watch; false if polling should be used instead. */
async function watchInotify(wss: WebSocketServer, c: UpgradeContext, files: AgentClient, root: string, recursive: boolean, forced: boolean): Promise<boolean> {
  const relay = new ChangeRelay(root);
  let handle: WatchHandle;
  try {
    handle = await files.watch({ path: root, recursive }, relay);
  } catch (e) {
    if (!forced && pollInstead(e)) return false;
    throw e;
  }
  let ws: WebSocket | null;
  try {
    if (relay.failure) throw relay.failure;
    ws = await accept(wss, c);
  } catch (e) {
    await handle.close().catch(() => undefined); // the error that matters is e
    throw e;
  }
  if (!ws) {
    await handle.close().catch(() => undefined); // the client is gone; so may be the agent connection
    return true;
  }
  ws.on('error', () => undefined);
  ws.on('close', () => void handle.close().catch(() => undefined)); // fails only when the agent connection is gone, and the watch with it
  ws.send(JSON.stringify({ type: 'ready', mode: 'inotify', path: root, entries: handle.entries, dirs: handle.dirs }));
  relay.attach(ws);
  if (relay.ended && ws.readyState === ws.OPEN) {
    if (relay.failure) closeWithError(ws, relay.failure);
    else ws.close(1000, 'the watched path was removed');
  }
  return true;
}

/**
 * Sends one poll's changes; false when the client is too far behind (the socket is then closed with
 * ESTATE): a client that does not read must not make hutchd hold every change.
 */
export function sendPolled(ws: Pick<WebSocket, 'readyState' | 'OPEN' | 'bufferedAmount' | 'send' | 'close'>, root: string, found: ReturnType<typeof changes>): boolean {
  for (const ch of found) {
    if (ws.bufferedAmount > MAX_CLIENT_BACKLOG) {
      closeWithError(ws as WebSocket, new HutchError('ESTATE', `the watch client of ${root} is more than ${MAX_CLIENT_BACKLOG} bytes behind`, { path: root }));
      return false;
    }
    ws.send(JSON.stringify({ type: 'change', ...ch }));
  }
  return true;
}

/** Watches by polling through the agent every `interval` ms. */
async function watchPolling(s: Services, wss: WebSocketServer, c: UpgradeContext, id: string, root: string, recursive: boolean, interval: number): Promise<void> {
  let last = await snapshot(await s.calls.files(id), root, recursive);
  const ws = await accept(wss, c);
  if (!ws) return;
  ws.on('error', () => undefined);
  ws.send(JSON.stringify({ type: 'ready', mode: 'poll', path: root, entries: last.size }));
  let timer: NodeJS.Timeout | undefined;
  const tick = async () => {
    try {
      const now = await snapshot(await s.calls.files(id), root, recursive);
      if (ws.readyState !== ws.OPEN) return;
      if (!sendPolled(ws, root, changes(last, now))) return;
      last = now;
      timer = setTimeout(() => void tick(), interval);
    } catch (e) {
      closeWithError(ws, e);
    }
  };
  timer = setTimeout(() => void tick(), interval);
  ws.on('close', () => clearTimeout(timer));
}

/** The poll interval a request asks for (`intervalMs`, default 500), within MIN_INTERVAL_MS..MAX_INTERVAL_MS. */
export function pollInterval(asked: string | null): number {
  return Math.min(MAX_INTERVAL_MS, Math.max(MIN_INTERVAL_MS, Number(asked ?? 500) || 500));
}

/** The watch route. */
export function watchSocketRoutes(s: Services, wss: WebSocketServer): Route[] {
  return [
    {
      method: 'GET', path: '/v1/sandboxes/{id}/files/watch', ws: true, handle: async (c) => {
        const root = normalized(sandboxPath(c.url));
        const recursive = c.url.searchParams.get('recursive') === 'true';
        const interval = pollInterval(c.url.searchParams.get('intervalMs'));
        const mode = c.url.searchParams.get('mode') ?? 'auto';
        if (mode !== 'auto' && mode !== 'inotify' && mode !== 'poll') throw new HutchError('EINVAL', `mode must be auto, inotify or poll, not ${mode.slice(0, 40)}`);
        const id = await servedId(s, c.params['id']!);
        if (mode !== 'poll' && await watchInotify(wss, c, await s.calls.files(id), root, recursive, mode === 'inotify')) return;
        await watchPolling(s, wss, c, id, root, recursive, interval);
      },
    },
  ];
}
