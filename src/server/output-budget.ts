// The memory hutchd may spend on output it holds for `wait: true` commands, shared by all requests:
// without a shared bound, many concurrent chatty commands took hutchd to gigabytes of RSS.
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { mallocTrim } from '../linux/ffi.js';

/** After the budget has been used and stays idle this long, freed memory is given back to the kernel. */
const TRIM_AFTER_IDLE_MS = 2000;
/** Below this peak there is too little to give back to be worth a malloc_trim. */
const TRIM_WORTH_BYTES = 8 * 1024 * 1024;

/** One request's share of a budget: what it holds, and how to make it drop everything. */
export interface BudgetHolder {
  readonly held: number;
  /** Drops all it holds (giving it back) and ends its request with EBUSY. */
  evict(): void;
}

/**
 * A byte budget that requests take from and give back to. When a take would pass the total, the
 * holder of the most is evicted (which may be the taker): one request fails, not every one that
 * happened to write at that moment. Frees memory once it falls idle after a peak.
 */
export class OutputBudget {
  private usedBytes = 0;
  private peakSinceTrim = 0;
  private trimTimer: NodeJS.Timeout | undefined;
  private readonly holders = new Set<BudgetHolder>();

  constructor(readonly totalBytes: number) {}

  get used(): number {
    return this.usedBytes;
  }

  /** Registers a holder (before its first take). */
  join(h: BudgetHolder): void {
    this.holders.add(h);
  }

  /** Unregisters a holder (after it gave back what it held). */
  leave(h: BudgetHolder): void {
    this.holders.delete(h);
  }

  /** Takes `n` bytes for `h`, evicting the largest holders until they fit; false when `h` itself was evicted. */
  take(h: BudgetHolder, n: number): boolean {
    while (this.usedBytes + n > this.totalBytes) {
      let largest: BudgetHolder = h;
      for (const o of this.holders) if (o.held > largest.held) largest = o;
      this.holders.delete(largest);
      largest.evict();
      if (largest === h) return false;
    }
    this.usedBytes += n;
    if (this.usedBytes > this.peakSinceTrim) this.peakSinceTrim = this.usedBytes;
    return true;
  }

  /** Gives back `n` bytes taken earlier. */
  give(n: number): void {
    this.usedBytes = Math.max(0, this.usedBytes - n);
    if (this.usedBytes === 0 && this.peakSinceTrim >= TRIM_WORTH_BYTES) this.scheduleTrim();
  }

  private scheduleTrim(): void {
    if (this.trimTimer) return void this.trimTimer.refresh();
    this.trimTimer = setTimeout(() => {
      this.trimTimer = undefined;
      if (this.usedBytes > 0) return;
      this.peakSinceTrim = 0;
      // The buffers are garbage by now; a collection frees them, and malloc_trim returns the pages.
      collectGarbage();
      mallocTrim();
    }, TRIM_AFTER_IDLE_MS);
    this.trimTimer.unref();
  }
}

let gcFn: (() => void) | undefined;

/** A full garbage collection: hutchd runs without --expose-gc, so the flag is set for one new context. */
function collectGarbage(): void {
  if (!gcFn) {
    const global = (globalThis as { gc?: () => void }).gc;
    if (global) gcFn = global;
    else {
      setFlagsFromString('--expose-gc');
      gcFn = runInNewContext('gc') as () => void;
      setFlagsFromString('--no-expose-gc');
    }
  }
  gcFn();
}
