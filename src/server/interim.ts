// Interim stand-ins for the lifetime helper's events/metrics/lifetime/pool modules, so that the
// server builds before they land. Deleted when they do (parts.ts then re-exports theirs).
import type { Engine, SandboxInfo } from '../engine/index.js';
import type { Limits } from '../platform/index.js';

export type LifecycleEventType = 'created' | 'started' | 'paused' | 'resumed' | 'stopped' | 'removed' | 'expired' | 'ttl-extended' | 'pool-claimed' | 'exec-started' | 'exec-exited';
export interface LifecycleEvent { type: LifecycleEventType; sandboxId: string; at: string; data?: Record<string, unknown> }

/** Stand-in: synchronous fan-out. */
export class EventBus {
  private readonly subs = new Set<{ fn: (e: LifecycleEvent) => void; filter?: { sandboxId?: string } }>();
  /** Publishes. */
  publish(e: Omit<LifecycleEvent, 'at'>): void {
    const ev = { ...e, at: new Date().toISOString() };
    for (const s of [...this.subs]) if (!s.filter?.sandboxId || s.filter.sandboxId === ev.sandboxId) s.fn(ev);
  }
  /** Subscribes. */
  subscribe(fn: (e: LifecycleEvent) => void, filter?: { sandboxId?: string }): () => void {
    const s = { fn, ...(filter ? { filter } : {}) };
    this.subs.add(s);
    return () => { this.subs.delete(s); };
  }
}

/** Stand-in: counts only. */
export class Metrics {
  private creates = 0;
  /** Observes a create. */
  observeCreate(_seconds: number, _source: 'pool' | 'cold'): void { this.creates++; }
  /** Observes an exec. */
  observeExec(_seconds: number): void {}
  /** Observes a request. */
  observeRequest(_method: string, _route: string, _status: number, _seconds: number): void {}
  /** Renders. */
  render(s: { sandboxesByState: Record<string, number>; pools: Record<string, { ready: number; target: number }> }): string {
    return Object.entries(s.sandboxesByState).map(([k, v]) => `hutch_sandboxes{state="${k}"} ${v}\n`).join('') + `hutch_sandbox_creates_total ${this.creates}\n`;
  }
}

export const TTL_LABEL = 'dev.hutch.expires-at';
export const MANAGED_LABEL = 'dev.hutch.managed-by';

/** Stand-in: TTL as a label, no sweeping. */
export class LifetimeKeeper {
  constructor(private readonly engine: Engine, private readonly events: EventBus, private readonly opts: { defaultTtlMs: number; maxTtlMs: number; sweepIntervalMs: number }) {}
  /** Starts. */
  start(): void {}
  /** Stops. */
  async stop(): Promise<void> {}
  /** Sets a TTL. */
  async setTtl(id: string, ttlMs: number): Promise<string> {
    const at = new Date(Date.now() + Math.min(ttlMs, this.opts.maxTtlMs)).toISOString();
    await this.engine.update(id, { labels: { [TTL_LABEL]: at } });
    this.events.publish({ type: 'ttl-extended', sandboxId: id, data: { expiresAt: at } });
    return at;
  }
  /** Sweeps. */
  async sweep(): Promise<string[]> { return []; }
  /** Recovers. */
  async recover(): Promise<{ adopted: string[]; removed: string[] }> { return { adopted: [], removed: [] }; }
}

export interface PoolSpec { image: string; size: number; limits?: Limits }

/** Stand-in: never has a sandbox ready. */
export class WarmPool {
  constructor(_engine: Engine, _events: EventBus, private readonly specs: PoolSpec[], _opts?: { concurrency?: number }) {}
  /** Starts. */
  start(): void {}
  /** Claims. */
  async claim(_image: string, _req: { limits?: Limits; env?: string[]; cwd?: string; labels?: Record<string, string> }): Promise<SandboxInfo | undefined> { return undefined; }
  /** Sizes. */
  sizes(): Record<string, { ready: number; target: number }> {
    return Object.fromEntries(this.specs.map((s) => [s.image, { ready: 0, target: s.size }]));
  }
  /** Stops. */
  async stop(_opts?: { drain?: boolean }): Promise<void> {}
}
