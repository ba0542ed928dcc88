// Watching files over WebSocket. The agent has no change notification call, so hutchd polls: it
// lists the directory (or stats the file) every `intervalMs` through the agent and sends the
// differences: {type:'ready'} after the first look, then {type:'change',kind,path} with kind
// created | modified | removed (directories by their entries: a directory itself is created or
// removed, never modified). `recursive=true` also watches subdirectories (up to 10000 entries).
import path from 'node:path';
import type { WebSocket, WebSocketServer } from 'ws';
import type { AgentClient } from '../agent/index.js';
import { HutchError } from '../errors.js';
import { errorBody, sandboxPath } from './http.js';
import type { Route } from './router.js';
import { servedId, type Services } from './services.js';

const MAX_WATCHED = 10_000;
const MIN_INTERVAL_MS = 100;

type Snapshot = Map<string, string>;

/**
 * What a change is compared on: type, size and mtime; a directory by its type only (a change in it
 * shows as its entries' changes, not as the directory's own mtime).
 */
function signature(e: { type: string; size: number; mtimeMs: number }): string {
  return e.type === 'dir' ? 'dir' : `${e.type} ${e.size} ${e.mtimeMs}`;
}

/** What is at `root` now: path → "type size mtime" for each entry (and the root itself). */
async function snapshot(files: AgentClient, root: string, recursive: boolean): Promise<Snapshot> {
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
      entries = await files.list(dir);
    } catch (e) {
      if ((e as HutchError).code === 'ENOTFOUND') continue; // removed while we looked
      throw e;
    }
    for (const e of entries) {
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

/** The watch route. */
export function watchSocketRoutes(s: Services, wss: WebSocketServer): Route[] {
  return [
    {
      method: 'GET', path: '/v1/sandboxes/{id}/files/watch', ws: true, handle: async (c) => {
        const root = sandboxPath(c.url);
        const recursive = c.url.searchParams.get('recursive') === 'true';
        const interval = Math.max(MIN_INTERVAL_MS, Number(c.url.searchParams.get('intervalMs') ?? 500) || 500);
        const info = { id: await servedId(s, c.params['id']!) };
        const files = await s.calls.files(info.id);
        let last = await snapshot(files, root, recursive);
        const ws = await new Promise<WebSocket>((resolve) => wss.handleUpgrade(c.req, c.socket, c.head, resolve));
        ws.on('error', () => undefined);
        ws.send(JSON.stringify({ type: 'ready', path: root, entries: last.size }));
        let timer: NodeJS.Timeout | undefined;
        const tick = async () => {
          try {
            const now = await snapshot(await s.calls.files(info.id), root, recursive);
            if (ws.readyState !== ws.OPEN) return;
            for (const ch of changes(last, now)) ws.send(JSON.stringify({ type: 'change', ...ch }));
            last = now;
            timer = setTimeout(() => void tick(), interval);
          } catch (e) {
            closeWithError(ws, e);
          }
        };
        timer = setTimeout(() => void tick(), interval);
        ws.on('close', () => clearTimeout(timer));
      },
    },
  ];
}
