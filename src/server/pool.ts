// The warm pool (Kata calls it a factory): N started, idle sandboxes per image, so that a create is a
// claim. Filled in the background with bounded concurrency; a claimed sandbox is relabelled for its
// claimer and never offered again; a pooled sandbox whose agent died is removed and replaced.
import { HutchError, isHutchError } from '../errors.js';
import { checkLimits, type Engine, type SandboxInfo } from '../engine/index.js';
import { formatReference, parseReference } from '../image/index.js';
import type { Limits } from '../platform/index.js';
import type { EventBus } from './events.js';
import { MANAGED_BY, MANAGED_LABEL, POOL_LABEL } from './lifetime.js';

export { POOL_LABEL } from './lifetime.js';

/** One pool: its image (as `create` takes it: `busybox` or an image reference), size, limits and platform (default: the engine's). */
export interface PoolSpec { image: string; size: number; limits?: Limits; platform?: string }

/**
 * What a claimer asks for; labels, env and cwd are applied to the claimed sandbox. `cmd` and
 * `entrypoint` are the create's: a pooled sandbox has no main command, so it serves only a request
 * that would get none (no cmd, and `entrypoint: []` or an image without Entrypoint and Cmd).
 */
export interface ClaimRequest { limits?: Limits; env?: string[]; cwd?: string; labels?: Record<string, string>; cmd?: string[]; entrypoint?: string[]; platform?: string }

/** How the pool works in the background. */
export interface PoolOptions {
  /** Sandboxes made at once, over all pools (default 2). */
  concurrency?: number;
  /** How often pooled sandboxes are checked for a dead agent (default 5000 ms). */
  checkIntervalMs?: number;
  /** The host id range of pooled sandboxes (default shared; hutchd passes its own). */
  idRange?: 'shared' | 'private';
  /** The network its sandboxes are made on (hutchd's default; absent: none). */
  network?: string;
  /**
   * Runs on each new pooled sandbox once started, before it is offered (hutchd: one exec, which
   * opens the agent connection the claimer will use and runs the agent's exec path once). A
   * failure counts as a failure to make the sandbox.
   */
  prepare?: (id: string) => Promise<void>;
  /**
   * How long after a claim the refill starts (default 0): a refill's create (runc, the agent's
   * node start) competes for the cores with the claimer's first calls.
   */
  refillDelayMs?: number;
}

const FIRST_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 30_000;

/**
 * The key a pool and a claim are matched by: an image reference in its canonical form, so that
 * `alpine`, `alpine:latest` and `docker.io/library/alpine:latest` share one pool. `busybox` (the
 * embedded rootfs, not docker.io's image) and text that is not a reference stay as they are.
 */
export function poolKey(image: string): string {
  if (image === 'busybox' || image.startsWith('/') || image.startsWith('.')) return image;
  try {
    return formatReference(parseReference(image));
  } catch (e) {
    if (isHutchError(e, 'EINVAL') || isHutchError(e, 'EUNSUPPORTED')) return image; // the create will say what is wrong
    throw e;
  }
}

/** The state of one image's pool. */
interface Pool {
  spec: PoolSpec;
  platform: string;
  /** Its name, and the value of its sandboxes' pool label: the image, with `@platform` when not the engine's default. */
  label: string;
  /** The limits as the engine stores them (defaults filled in), for comparing with a claim's. */
  limits: Limits;
  /** Started, unclaimed sandboxes, oldest first. */
  ready: string[];
  /** Sandboxes being made right now. */
  making: number;
  /** Consecutive failures to make one; the pool waits before the next try. */
  failures: number;
  retryAt: number;
  lastError?: string;
  /** Whether the image has an Entrypoint or Cmd (known once a sandbox of it was made). */
  imageCommand?: boolean;
}

/** Limits in the engine's normal form (default pids filled in); undefined when they are invalid. */
function normalLimits(l: Limits | undefined): Limits | undefined {
  try {
    return checkLimits(l ?? {});
  } catch (e) {
    if (isHutchError(e, 'EINVAL')) return undefined;
    throw e;
  }
}

function sameLimits(a: Limits, b: Limits): boolean {
  return a.memoryBytes === b.memoryBytes && a.cpus === b.cpus && a.pids === b.pids && a.diskBytes === b.diskBytes && a.diskInodes === b.diskInodes;
}

/**
 * Keeps `size` started sandboxes ready per image. Nothing runs inside a pooled sandbox before it is
 * claimed. Claims are exclusive within this process (an id is taken off the ready list before any
 * await); across processes the claim re-reads the pool label just before relabelling and skips a
 * sandbox that lost it (one hutchd per state root is the expected setup).
 */
export class WarmPool {
  private readonly pools = new Map<string, Pool>();
  private readonly concurrency: number;
  private readonly checkIntervalMs: number;
  private readonly idRange: 'shared' | 'private';
  private readonly network: string;
  private readonly prepare: ((id: string) => Promise<void>) | undefined;
  private readonly refillDelayMs: number;
  private refillTimer: NodeJS.Timeout | undefined;
  private active = 0;
  private running = false;
  private checking = false;
  private stopping = false;
  private readonly work = new Set<Promise<unknown>>();
  private retryTimer: NodeJS.Timeout | undefined;
  private checkTimer: NodeJS.Timeout | undefined;

  constructor(private readonly engine: Engine, private readonly events: EventBus, specs: PoolSpec[], opts: PoolOptions = {}) {
    this.concurrency = opts.concurrency ?? 2;
    this.checkIntervalMs = opts.checkIntervalMs ?? 5000;
    this.idRange = opts.idRange ?? 'shared';
    this.network = opts.network ?? 'none';
    this.prepare = opts.prepare;
    this.refillDelayMs = opts.refillDelayMs ?? 0;
    if (!Number.isFinite(this.refillDelayMs) || this.refillDelayMs < 0) throw new HutchError('EINVAL', `pool refill delay must be ≥ 0, not ${this.refillDelayMs}`);
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1) throw new HutchError('EINVAL', `pool concurrency must be a positive integer, not ${this.concurrency}`);
    if (!Number.isFinite(this.checkIntervalMs) || this.checkIntervalMs <= 0) throw new HutchError('EINVAL', `pool check interval must be positive, not ${this.checkIntervalMs}`);
    for (const spec of specs) {
      if (typeof spec.image !== 'string' || spec.image === '') throw new HutchError('EINVAL', 'a pool needs an image');
      if (!Number.isInteger(spec.size) || spec.size < 0) throw new HutchError('EINVAL', `pool size of ${spec.image} must be a whole number ≥ 0, not ${spec.size}`);
      const platform = spec.platform ?? engine.platformName;
      const key = `${poolKey(spec.image)}@${platform}`;
      const twin = this.pools.get(key);
      if (twin) {
        const same = twin.spec.image === spec.image ? spec.image : `${twin.spec.image} and ${spec.image} (both ${poolKey(spec.image)})`;
        const on = platform === engine.platformName ? '' : ` on ${platform}`;
        throw new HutchError('EINVAL', `two pools for image ${same}${on}: give each image one pool per platform`);
      }
      const limits = checkLimits(spec.limits ?? {}); // EINVAL for bad limits, at configuration time
      const label = platform === engine.platformName ? spec.image : `${spec.image}@${platform}`;
      this.pools.set(key, { spec: { ...spec }, platform, label, limits, ready: [], making: 0, failures: 0, retryAt: 0 });
    }
  }

  /** Starts filling every pool in the background and checking its sandboxes. */
  start(): void {
    if (this.running || this.stopping) return;
    this.running = true;
    this.checkTimer = setInterval(() => {
      if (this.checking) return; // the last check is still going: never two at once
      this.checking = true;
      this.track(this.check().finally(() => { this.checking = false; }));
    }, this.checkIntervalMs);
    this.checkTimer.unref();
    this.fill();
  }

  /** Ready and target counts per pool (its image, with `@platform` when not the default one). */
  sizes(): Record<string, { ready: number; target: number }> {
    return Object.fromEntries([...this.pools.values()].map((p) => [p.label, { ready: p.ready.length, target: p.spec.size }]));
  }

  /**
   * Takes a started sandbox of `image` and makes it the claimer's: pool label removed, the request's
   * labels (plus managed-by) set, env and cwd applied for later execs. Undefined when there is no
   * pool for the image, its limits differ from the request's (limits are fixed at create), or none
   * is ready: the caller then creates one cold. A claim starts a refill.
   */
  async claim(image: string, req: ClaimRequest = {}): Promise<SandboxInfo | undefined> {
    const pool = this.pools.get(`${poolKey(image)}@${req.platform ?? this.engine.platformName}`);
    if (!pool || this.stopping) return undefined;
    const wanted = normalLimits(req.limits);
    if (!wanted || !sameLimits(wanted, pool.limits)) return undefined;
    if (req.cmd?.length || (req.entrypoint ? req.entrypoint.length > 0 : pool.imageCommand !== false)) return undefined; // would have a main command
    if (req.labels && POOL_LABEL in req.labels) throw new HutchError('EINVAL', `label ${POOL_LABEL} is hutchd's own: a claim cannot set it`);
    try {
      for (let id = pool.ready.shift(); id !== undefined; id = pool.ready.shift()) {
        const claimed = await this.take(pool, id, req);
        if (claimed) {
          this.events.publish({ type: 'pool-claimed', sandboxId: claimed.id, data: { image, platform: pool.platform } });
          return claimed;
        }
      }
      return undefined;
    } finally {
      this.refillSoon();
    }
  }

  /** Starts the refill after a claim: at once, or after the refill delay (one timer for a burst of claims). */
  private refillSoon(): void {
    if (this.refillDelayMs === 0) return this.fill();
    if (this.refillTimer || !this.running) return;
    this.refillTimer = setTimeout(() => { this.refillTimer = undefined; this.fill(); }, this.refillDelayMs);
    this.refillTimer.unref();
  }

  /** Relabels one pooled sandbox for its claimer if it is still pooled and alive; else discards it. */
  private async take(pool: Pool, id: string, req: ClaimRequest): Promise<SandboxInfo | undefined> {
    let info: SandboxInfo;
    try {
      info = await this.engine.inspect(id);
    } catch (e) {
      if (isHutchError(e, 'ENOTFOUND')) return undefined;
      throw e;
    }
    if (info.labels?.[POOL_LABEL] !== pool.label) return undefined; // claimed by another process
    if (info.status !== 'running') {
      this.discard(id, `its agent is gone (${info.status}${info.note ? `: ${info.note}` : ''})`);
      return undefined;
    }
    // The request's labels are checked by the engine; a bad one fails the claim and the sandbox is not lost.
    try {
      return await this.engine.update(id, {
        labels: { ...(req.labels ?? {}), [POOL_LABEL]: null, [MANAGED_LABEL]: MANAGED_BY },
        ...(req.env ? { env: req.env } : {}), ...(req.cwd !== undefined ? { cwd: req.cwd } : {}),
        ifLabels: { [POOL_LABEL]: pool.label },
      });
    } catch (e) {
      if (isHutchError(e, 'ESTATE')) return undefined; // another process claimed it between inspect and update
      if (isHutchError(e, 'EINVAL')) pool.ready.unshift(id);
      else if (!isHutchError(e, 'ENOTFOUND')) this.discard(id, `claiming it failed: ${e instanceof Error ? e.message : String(e)}`);
      throw e;
    }
  }

  /**
   * Stops refilling and checking. With `drain`, unclaimed pooled sandboxes (and those being made)
   * are removed; without, they stay for the next hutchd's recovery to remove.
   */
  async stop(opts: { drain?: boolean } = {}): Promise<void> {
    this.stopping = true;
    this.running = false;
    if (this.checkTimer) clearInterval(this.checkTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.refillTimer) clearTimeout(this.refillTimer);
    while (this.work.size) await Promise.allSettled([...this.work]);
    if (!opts.drain) return;
    const failures: string[] = [];
    for (const pool of this.pools.values()) {
      for (const id of pool.ready.splice(0)) {
        try {
          await this.engine.remove(id, true);
        } catch (e) {
          if (!isHutchError(e, 'ENOTFOUND')) failures.push(`${id}: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
    }
    if (failures.length) throw new HutchError('EINTERNAL', `draining the warm pool left ${failures.length} sandbox(es): ${failures.join('; ')}`);
  }

  /** Starts making sandboxes for pools below their size, up to the concurrency. */
  private fill(): void {
    if (!this.running) return;
    const now = Date.now();
    while (this.active < this.concurrency) {
      // The pool furthest below its size goes first, so that one image cannot starve another.
      let best: Pool | undefined;
      let bestDeficit = 0;
      for (const p of this.pools.values()) {
        const deficit = p.spec.size - p.ready.length - p.making;
        if (deficit > bestDeficit && p.retryAt <= now) { best = p; bestDeficit = deficit; }
      }
      if (!best) break;
      const pool = best;
      this.active++;
      pool.making++;
      this.track(this.makeOne(pool).finally(() => {
        this.active--;
        pool.making--;
        this.fill();
      }));
    }
    this.scheduleRetry();
  }

  /** Wakes the filler when the earliest backoff of a pool that needs sandboxes ends. */
  private scheduleRetry(): void {
    if (this.retryTimer || !this.running) return;
    const waiting = [...this.pools.values()].filter((p) => p.retryAt > Date.now() && p.spec.size > p.ready.length + p.making);
    if (!waiting.length) return;
    const at = Math.min(...waiting.map((p) => p.retryAt));
    this.retryTimer = setTimeout(() => { this.retryTimer = undefined; this.fill(); }, Math.max(0, at - Date.now()));
    this.retryTimer.unref();
  }

  /** Makes and starts one pooled sandbox; a failure is reported (once per distinct error) and backed off. */
  private async makeOne(pool: Pool): Promise<void> {
    let id: string | undefined;
    try {
      // Nothing runs in a pooled sandbox before its claim: the image's Entrypoint and Cmd neither.
      const made = await this.engine.create({
        rootfs: pool.spec.image, labels: { [POOL_LABEL]: pool.label, [MANAGED_LABEL]: MANAGED_BY }, platform: pool.platform, network: this.network,
        ...(pool.spec.limits ? { limits: pool.spec.limits } : {}), entrypoint: [],
        hardening: { idRange: (await this.engine.capabilities(pool.platform)).privateIds ? this.idRange : 'shared' },
      });
      id = made.id;
      if (pool.imageCommand === undefined) {
        const config = (await this.engine.resolveSandboxRootfs({ rootfs: pool.spec.image, pull: 'never' })).image?.config;
        pool.imageCommand = Boolean(config?.Entrypoint?.length || config?.Cmd?.length);
      }
      const started = await this.engine.start(id);
      if (started.status !== 'running') throw new HutchError('ESTATE', `pooled sandbox ${id} is ${started.status} right after start`, { id });
      if (this.prepare) await this.prepare(id);
      // Also when stop() came meanwhile: claims are refused then, and a drain (or the next recovery) removes it.
      pool.ready.push(id);
      pool.failures = 0;
      pool.retryAt = 0;
      pool.lastError = undefined;
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      pool.failures++;
      pool.retryAt = Date.now() + Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** (pool.failures - 1));
      if (message !== pool.lastError) process.stderr.write(`hutchd: warm pool of ${pool.label} cannot make a sandbox (retrying with back-off): ${message}\n`);
      pool.lastError = message;
      if (id !== undefined) await this.removeQuietly(id, 'a failed start');
    }
  }

  /** Finds pooled sandboxes whose agent died; they are removed and the pool refilled. */
  private async check(): Promise<void> {
    for (const pool of this.pools.values()) {
      for (const id of [...pool.ready]) {
        let status: string;
        try {
          status = (await this.engine.inspect(id)).status;
        } catch (e) {
          if (!isHutchError(e, 'ENOTFOUND')) throw e;
          status = 'gone';
        }
        if (status === 'running') continue;
        const i = pool.ready.indexOf(id);
        if (i < 0) continue; // claimed meanwhile (the claim checks again)
        pool.ready.splice(i, 1);
        if (status !== 'gone') this.discard(id, `its agent is gone (${status})`);
      }
    }
    this.fill();
  }

  /** Removes a pooled sandbox that must not be handed out, in the background. */
  private discard(id: string, why: string): void {
    this.track(this.removeQuietly(id, why));
  }

  /** Removes a sandbox; a failure is reported on stderr (the next hutchd's recovery retries it). */
  private async removeQuietly(id: string, why: string): Promise<void> {
    try {
      await this.engine.remove(id, true);
    } catch (e) {
      if (isHutchError(e, 'ENOTFOUND')) return;
      process.stderr.write(`hutchd: cannot remove pooled sandbox ${id} (${why}): ${e instanceof Error ? e.message : String(e)}\n`);
    }
  }

  /** Keeps background work visible to stop(); a failure of it is reported, not lost. */
  private track(p: Promise<unknown>): void {
    const t = p.catch((e) => { process.stderr.write(`hutchd: warm pool: ${e instanceof Error ? e.message : String(e)}\n`); });
    this.work.add(t);
    void t.finally(() => this.work.delete(t));
  }
}
