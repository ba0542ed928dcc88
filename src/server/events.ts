// Lifecycle events of hutchd's sandboxes: published by the server, the lifetime keeper and the warm
// pool, fanned out synchronously to subscribers (the events stream of the API, tests, logs).

/** What happened to a sandbox. */
export type LifecycleEventType = 'created' | 'started' | 'paused' | 'resumed' | 'snapshotted' | 'restored' | 'stopped' | 'removed' | 'expired' | 'ttl-extended' | 'policy-changed' | 'pool-claimed' | 'exec-started' | 'exec-exited';

/** One event: its type, the sandbox it is about, when (ISO time), and details. */
export interface LifecycleEvent { type: LifecycleEventType; sandboxId: string; at: string; data?: Record<string, unknown> }

/** Which events a subscriber gets. */
export interface EventFilter { sandboxId?: string }

/** How many past events the bus keeps for `recent()`; older ones are dropped. */
export const DEFAULT_HISTORY = 256;

type Subscriber = { fn: (e: LifecycleEvent) => void; filter: EventFilter | undefined };

/**
 * Synchronous fan-out of lifecycle events. A subscriber that throws is removed (and reported once on
 * stderr) so that it cannot break the others or the publisher. Memory is bounded: the bus queues
 * nothing for subscribers (they get each event during `publish`) and keeps only the last
 * `historySize` events.
 */
export class EventBus {
  private readonly subscribers = new Set<Subscriber>();
  private readonly history: LifecycleEvent[] = [];
  private readonly historySize: number;

  constructor(opts: { historySize?: number } = {}) {
    this.historySize = Math.max(0, opts.historySize ?? DEFAULT_HISTORY);
  }

  /** Stamps the event with the current time and hands it to every matching subscriber. */
  publish(e: Omit<LifecycleEvent, 'at'>): void {
    const event: LifecycleEvent = { ...e, at: new Date().toISOString() };
    if (this.historySize > 0) {
      this.history.push(event);
      if (this.history.length > this.historySize) this.history.splice(0, this.history.length - this.historySize);
    }
    // A snapshot: subscribers added or removed while this event is delivered do not change who gets it.
    for (const s of [...this.subscribers]) {
      if (!this.subscribers.has(s)) continue;
      if (s.filter?.sandboxId !== undefined && s.filter.sandboxId !== event.sandboxId) continue;
      try {
        s.fn(event);
      } catch (err) {
        this.subscribers.delete(s);
        process.stderr.write(`hutchd: an event subscriber failed on ${event.type} of ${event.sandboxId} and was removed: ${err instanceof Error ? err.message : String(err)}\n`);
      }
    }
  }

  /** Calls `fn` for every later event (matching `filter`); returns the function that unsubscribes. */
  subscribe(fn: (e: LifecycleEvent) => void, filter?: EventFilter): () => void {
    const s: Subscriber = { fn, filter: filter ? { ...filter } : undefined };
    this.subscribers.add(s);
    return () => { this.subscribers.delete(s); };
  }

  /** The last events (at most the history size), oldest first, optionally for one sandbox. */
  recent(filter?: EventFilter): LifecycleEvent[] {
    return this.history.filter((e) => filter?.sandboxId === undefined || e.sandboxId === filter.sandboxId);
  }

  /** How many subscribers there are now. */
  get subscriberCount(): number {
    return this.subscribers.size;
  }
}
