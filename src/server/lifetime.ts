// Sandbox lifetimes for hutchd: a TTL per sandbox kept as a label (so it survives restarts), a sweeper
// that removes expired sandboxes, and recovery at start: what a previous hutchd left is adopted or removed.
import { HutchError, isHutchError } from '../errors.js';
import type { Engine, SandboxInfo } from '../engine/index.js';
import type { EventBus } from './events.js';
import { endOf } from './sandbox-end.js';

/** The label holding a sandbox's expiry (ISO time). */
export const TTL_LABEL = 'dev.hutch.expires-at';
/** The label marking hutchd's sandboxes (value `hutchd`); sandboxes without it (the CLI's) are never touched. */
export const MANAGED_LABEL = 'dev.hutch.managed-by';
/** The value of MANAGED_LABEL on hutchd's sandboxes. */
export const MANAGED_BY = 'hutchd';
/** The label marking an unclaimed warm-pool sandbox (value: its image). Defined here so lifetime and pool agree. */
export const POOL_LABEL = 'dev.hutch.pool';

/** How the keeper treats lifetimes. */
export interface LifetimeOptions { defaultTtlMs: number; maxTtlMs: number; sweepIntervalMs: number }

/** What recovery did: sandboxes kept, removed, and those whose removal failed (reported on stderr too). */
export interface RecoveryResult { adopted: string[]; removed: string[]; failed: { id: string; error: string }[] }

/** True when the sandbox is hutchd's. */
export function isManaged(s: Pick<SandboxInfo, 'labels'>): boolean {
  return s.labels?.[MANAGED_LABEL] === MANAGED_BY;
}

/** The expiry of a sandbox in ms since the epoch; undefined when it has none (or an unreadable one). */
export function expiryOf(s: Pick<SandboxInfo, 'labels'>): number | undefined {
  const v = s.labels?.[TTL_LABEL];
  if (v === undefined) return undefined;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : t;
}

/**
 * Keeps hutchd's sandboxes within their lifetimes. Only sandboxes labelled managed-by=hutchd are
 * touched; a CLI user's sandboxes in the same state root are left alone.
 */
export class LifetimeKeeper {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private inFlight: Promise<string[]> | undefined;
  /** Per-sandbox serialisation of setTtl and the sweeper's removal, so an extension never races a removal. */
  private readonly busy = new Map<string, Promise<unknown>>();
  /** Sandboxes whose failed removal was already reported (reported once, until it succeeds). */
  private readonly reported = new Set<string>();
  /**
   * Managed sandboxes known alive (seen by a sweep, or started, resumed or claimed since), with when
   * they were noted: one found stopped later gets a 'stopped' event, also before a sweep saw it run.
   */
  private readonly alive = new Map<string, number>();

  constructor(private readonly engine: Engine, private readonly events: EventBus, readonly opts: LifetimeOptions) {
    for (const k of ['defaultTtlMs', 'maxTtlMs', 'sweepIntervalMs'] as const) {
      if (!Number.isFinite(opts[k]) || opts[k] <= 0) throw new HutchError('EINVAL', `lifetime option ${k} must be a positive number of milliseconds, not ${opts[k]}`);
    }
    if (opts.defaultTtlMs > opts.maxTtlMs) throw new HutchError('EINVAL', `default TTL ${opts.defaultTtlMs} ms is beyond the maximum TTL ${opts.maxTtlMs} ms`);
    events.subscribe((e) => {
      if (e.type === 'started' || e.type === 'resumed' || e.type === 'pool-claimed') this.alive.set(e.sandboxId, Date.now());
      else if (e.type === 'removed') this.alive.delete(e.sandboxId);
    });
  }

  /** Runs a sweep every sweepIntervalMs (never two at once); the timer does not keep the process alive. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule();
  }

  private schedule(): void {
    if (!this.running) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      // sweep() reports its own failures; a failure of list() itself is reported here and the next sweep tries again.
      this.sweep().then(
        () => this.reported.delete('sweep'),
        (e) => this.report('sweep', `sweep failed: ${e instanceof Error ? e.message : String(e)}`),
      ).finally(() => this.schedule());
    }, this.opts.sweepIntervalMs);
    this.timer.unref();
  }

  /** Stops the sweeper and waits for a sweep under way. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.inFlight?.catch(() => undefined);
  }

  /** Checks a TTL: a positive number of ms up to maxTtlMs (EINVAL otherwise). */
  checkTtl(ttlMs: number): number {
    if (typeof ttlMs !== 'number' || !Number.isFinite(ttlMs) || ttlMs <= 0) {
      throw new HutchError('EINVAL', `invalid TTL ${String(ttlMs)}: give a positive number of milliseconds`);
    }
    if (ttlMs > this.opts.maxTtlMs) throw new HutchError('EINVAL', `TTL ${ttlMs} ms is beyond the maximum of ${this.opts.maxTtlMs} ms`);
    return Math.ceil(ttlMs);
  }

  /** The labels a new hutchd sandbox gets: managed-by and its expiry (default TTL unless given). */
  labelsFor(ttlMs: number = this.opts.defaultTtlMs): Record<string, string> {
    return { [MANAGED_LABEL]: MANAGED_BY, [TTL_LABEL]: new Date(Date.now() + this.checkTtl(ttlMs)).toISOString() };
  }

  /**
   * Sets a hutchd sandbox to expire ttlMs from now (extending or shortening it); returns the new
   * expiry. EINVAL for a TTL ≤ 0 or beyond the maximum, EPERM for a sandbox that is not hutchd's.
   */
  async setTtl(ref: string, ttlMs: number): Promise<string> {
    const ms = this.checkTtl(ttlMs);
    return this.exclusive(this.engine.store.resolve(ref), async (id) => {
      const info = await this.engine.inspect(id);
      if (!isManaged(info)) throw new HutchError('EPERM', `sandbox ${info.id} is not managed by hutchd: its lifetime is not hutchd's to set`, { id: info.id });
      if (info.labels?.[POOL_LABEL] !== undefined) throw new HutchError('ESTATE', `sandbox ${info.id} is in the warm pool: claim it first`, { id: info.id });
      const expiresAt = new Date(Date.now() + ms).toISOString();
      await this.engine.update(info.id, { labels: { [TTL_LABEL]: expiresAt } });
      this.events.publish({ type: 'ttl-extended', sandboxId: info.id, data: { expiresAt, ttlMs: ms } });
      return expiresAt;
    });
  }

  /**
   * Removes (force) every hutchd sandbox whose expiry has passed, publishing `expired` then `removed`;
   * returns the ids removed. A removal that fails is reported on stderr (once per sandbox) and
   * retried by the next sweep. Concurrent calls share one sweep.
   */
  sweep(): Promise<string[]> {
    this.inFlight ??= this.sweepOnce().finally(() => { this.inFlight = undefined; });
    return this.inFlight;
  }

  private async sweepOnce(): Promise<string[]> {
    const now = Date.now();
    const removed: string[] = [];
    const listed = await this.engine.list();
    this.noticeStopped(listed, now);
    for (const s of listed) {
      if (!isManaged(s) || s.labels?.[POOL_LABEL] !== undefined) continue;
      const expiry = expiryOf(s);
      if (expiry === undefined || expiry > now) continue;
      if (await this.removeExpired(s.id, now)) removed.push(s.id);
    }
    return removed;
  }

  /** Publishes 'stopped' for managed sandboxes whose init ended on its own since they were known alive. */
  private noticeStopped(listed: SandboxInfo[], listedAt: number): void {
    const seen = new Set<string>();
    for (const s of listed) {
      if (!isManaged(s)) continue;
      seen.add(s.id);
      if (s.status === 'running' || s.status === 'paused') this.alive.set(s.id, listedAt);
      else if (s.status === 'stopped' && this.alive.has(s.id)) {
        this.alive.delete(s.id);
        this.events.publish({ type: 'stopped', sandboxId: s.id, data: { ...endOf(s), ...(s.note ? { note: s.note } : {}) } });
      } else this.alive.delete(s.id);
    }
    // Gone from the list: removed. One noted after the list began may simply not be in it yet.
    for (const [id, at] of this.alive) if (!seen.has(id) && at < listedAt) this.alive.delete(id);
  }

  /** Removes one expired sandbox unless its TTL was extended meanwhile; true when it was removed here. */
  private removeExpired(id: string, now: number): Promise<boolean> {
    return this.exclusive(id, async () => {
      try {
        const info = await this.engine.inspect(id); // again: an extension may have come in since the list
        const expiry = expiryOf(info);
        if (!isManaged(info) || expiry === undefined || expiry > now) return false;
        this.events.publish({ type: 'expired', sandboxId: id, data: { expiresAt: info.labels![TTL_LABEL] } });
        await this.engine.remove(id, true);
        this.reported.delete(id);
        this.events.publish({ type: 'removed', sandboxId: id, data: { reason: 'expired' } });
        return true;
      } catch (e) {
        if (isHutchError(e, 'ENOTFOUND')) return false; // removed meanwhile by someone else
        this.report(id, `cannot remove expired sandbox ${id}: ${e instanceof Error ? e.message : String(e)}`);
        return false;
      }
    });
  }

  /**
   * At hutchd start: hutchd's running, paused and ready sandboxes are adopted (kept and returned; one
   * without an expiry gets the default TTL). Removed: stopped ones, half-made ones (an interrupted
   * create or delete shows as stopped), expired ones, and unclaimed warm-pool sandboxes of a previous
   * hutchd — those are never re-offered, because one may have been handed to a client just before a
   * crash, before its pool label was removed. Sandboxes without the managed label are not touched;
   * one that another live hutch is creating or deleting right now is left to it.
   */
  async recover(): Promise<RecoveryResult> {
    const out: RecoveryResult = { adopted: [], removed: [], failed: [] };
    const now = Date.now();
    // What a removal killed midway left (renamed aside, so no longer a sandbox): finished in the
    // background, since a big writable layer takes seconds and hutchd serves meanwhile.
    this.engine.store.emptyTrash().then(
      () => this.reported.delete('trash'),
      (e) => this.report('trash', `cannot finish the removals an earlier hutchd left: ${e instanceof Error ? e.message : String(e)}`),
    );
    for (const s of await this.engine.list()) {
      if (!isManaged(s) || s.status === 'creating' || s.status === 'deleting') continue;
      const expiry = expiryOf(s);
      let reason: string | undefined;
      if (s.labels?.[POOL_LABEL] !== undefined) reason = 'pool-leftover';
      // A delete a crash cut short (also one that died before killing the init) is finished.
      else if (s.note?.startsWith('interrupted delete')) reason = 'half-made';
      else if (s.status === 'stopped') reason = s.note?.startsWith('interrupted') ? 'half-made' : 'stopped';
      // hutchd starts what it creates at once: a managed sandbox still `ready` lost its hutchd in between.
      else if (s.status === 'ready') reason = 'half-made';
      else if (expiry !== undefined && expiry <= now) reason = 'expired';
      if (reason === undefined) {
        out.adopted.push(s.id);
        if (expiry !== undefined) continue;
        try {
          await this.engine.update(s.id, { labels: { [TTL_LABEL]: new Date(now + this.opts.defaultTtlMs).toISOString() } });
        } catch (e) {
          this.report(s.id, `recovery cannot give sandbox ${s.id} the default TTL: ${e instanceof Error ? e.message : String(e)}`);
        }
        continue;
      }
      try {
        if (reason === 'expired') this.events.publish({ type: 'expired', sandboxId: s.id, data: { expiresAt: s.labels![TTL_LABEL] } });
        await this.engine.remove(s.id, true);
        out.removed.push(s.id);
        this.events.publish({ type: 'removed', sandboxId: s.id, data: { reason } });
      } catch (e) {
        if (isHutchError(e, 'ENOTFOUND')) continue;
        const error = e instanceof Error ? e.message : String(e);
        out.failed.push({ id: s.id, error });
        this.report(s.id, `recovery cannot remove sandbox ${s.id} (${reason}): ${error}`);
      }
    }
    return out;
  }

  /** Runs fn with no other keeper operation on the same sandbox under way in this process. */
  private exclusive<T>(id: string, fn: (id: string) => Promise<T>): Promise<T> {
    const prev = this.busy.get(id) ?? Promise.resolve();
    const next = prev.then(() => fn(id), () => fn(id));
    const tail = next.catch(() => undefined);
    this.busy.set(id, tail);
    void tail.then(() => { if (this.busy.get(id) === tail) this.busy.delete(id); });
    return next;
  }

  /** Reports a problem on stderr once per subject (a sandbox id) until it clears. */
  private report(subject: string, message: string): void {
    if (this.reported.has(subject)) return;
    this.reported.add(subject);
    process.stderr.write(`hutchd: ${message}\n`);
  }
}
