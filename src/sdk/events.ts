// hutchd's lifecycle events (server-sent events) as an async iterator.
import { Transport, type CallOptions, type ConnectionOptions } from './transport.js';

/** One lifecycle event. */
export interface LifecycleEvent { type: string; sandboxId: string; at: string; data?: Record<string, unknown> }

/** Yields lifecycle events (of one sandbox with `sandboxId`) until the signal aborts or the loop ends. */
export async function* events(opts: ConnectionOptions & CallOptions & { sandboxId?: string; transport?: Transport } = {}): AsyncGenerator<LifecycleEvent> {
  const t = opts.transport ?? new Transport(opts);
  const res = await t.request({ method: 'GET', path: '/v1/events', query: { sandbox: opts.sandboxId }, timeoutMs: opts.timeoutMs ?? 0, ...(opts.signal ? { signal: opts.signal } : {}) });
  let buf = '';
  try {
    for await (const chunk of res) {
      buf += (chunk as Buffer).toString('utf8');
      let end;
      while ((end = buf.indexOf('\n\n')) !== -1) {
        const block = buf.slice(0, end);
        buf = buf.slice(end + 2);
        const data = block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
        if (data) yield JSON.parse(data) as LifecycleEvent;
      }
    }
  } catch (e) {
    if (opts.signal?.aborted) return; // the caller stopped listening
    throw e;
  } finally {
    res.destroy();
  }
}
