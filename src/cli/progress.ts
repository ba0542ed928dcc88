// Pull progress: on a terminal one redrawn line per layer with a bar; otherwise one plain line each
// time a layer changes phase (logs and CI output stay readable).
import type { ProgressEvent } from '../image/types.js';

/** A progress display fed with a pull's events. */
export interface ProgressDisplay {
  onProgress(e: ProgressEvent): void;
  /** Draws the final state (on a terminal) and stops. */
  finish(): void;
}

const WORDS: Record<ProgressEvent['phase'], string> = {
  waiting: 'Waiting', downloading: 'Downloading', verifying: 'Verifying', unpacking: 'Unpacking', done: 'Done', exists: 'Already exists',
};
const BAR = 24;
const REDRAW_MS = 100;

/** `12.3 MB`. */
export function formatBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n / 1000;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) { v /= 1000; u++; }
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${units[u]}`;
}

/** The short form of a digest shown per layer. */
function short(digest: string): string {
  return digest.replace(/^sha256:/, '').slice(0, 12);
}

/** A display writing to `stream`: bars when it is a terminal, plain lines otherwise. */
export function progressDisplay(stream: NodeJS.WriteStream): ProgressDisplay {
  return stream.isTTY ? new BarDisplay(stream) : new LineDisplay(stream);
}

/** One line per phase change: `Copying blob 0123456789ab: Downloading (4.2 MB)`. */
class LineDisplay implements ProgressDisplay {
  private readonly phases = new Map<string, ProgressEvent['phase']>();
  constructor(private readonly stream: NodeJS.WritableStream) {}

  onProgress(e: ProgressEvent): void {
    if (this.phases.get(e.digest) === e.phase) return;
    this.phases.set(e.digest, e.phase);
    const size = e.phase === 'downloading' || e.phase === 'done' || e.phase === 'exists' ? ` (${formatBytes(e.total)})` : '';
    this.stream.write(`Layer ${short(e.digest)}: ${WORDS[e.phase]}${size}\n`);
  }

  finish(): void { /* every line is already out */ }
}

/** A block of lines, one per layer, redrawn in place at most every 100 ms (and on each phase change). */
class BarDisplay implements ProgressDisplay {
  private readonly layers = new Map<string, ProgressEvent>();
  private drawn = 0;
  private last = 0;
  private timer: NodeJS.Timeout | undefined;
  private finished = false;

  constructor(private readonly stream: NodeJS.WriteStream) {}

  onProgress(e: ProgressEvent): void {
    if (this.finished) return;
    const before = this.layers.get(e.digest);
    this.layers.set(e.digest, e);
    if (before?.phase !== e.phase || Date.now() - this.last >= REDRAW_MS) this.draw();
    else this.timer ??= setTimeout(() => { this.timer = undefined; this.draw(); }, REDRAW_MS);
  }

  finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.layers.size) this.draw();
  }

  private draw(): void {
    this.last = Date.now();
    const width = Math.max(40, (this.stream.columns || 80) - 1);
    let out = this.drawn ? `\x1b[${this.drawn}A` : '';
    for (const e of this.layers.values()) out += `\r\x1b[2K${this.line(e).slice(0, width)}\n`;
    this.drawn = this.layers.size;
    this.stream.write(out);
  }

  private line(e: ProgressEvent): string {
    const head = `${short(e.digest)}  ${WORDS[e.phase].padEnd(14)}`;
    if (e.phase !== 'downloading') return e.phase === 'done' || e.phase === 'exists' ? `${head} ${formatBytes(e.total)}` : head;
    const frac = e.total > 0 ? Math.min(1, e.done / e.total) : 0;
    const fill = Math.round(frac * BAR);
    return `${head} [${'='.repeat(Math.max(0, fill - 1))}${fill ? '>' : ''}${' '.repeat(BAR - fill)}] ${formatBytes(e.done)} / ${formatBytes(e.total)}`;
  }
}
