// The client's side of file watches: routes each watch's events to its listener. Events were already
// schema-checked (size, path form); an event for a watch never started is a protocol error, one for a
// watch this side already stopped is late and ignored.
import { HutchError } from '../errors.js';
import type { WatchChange, WatchEndEvent, WatchEvent, WatchResult } from './protocol.js';

/** Receives one watch's events. */
export interface WatchListener {
  /** Changes, in the order the agent saw them. */
  change(changes: WatchChange[]): void;
  /** The watch ended by itself: null when the watched path is gone, else why it failed. */
  end(error: HutchError | null): void;
}

/** A started watch (from AgentClient.watch). */
export interface WatchHandle extends WatchResult {
  /** Stops the watch in the agent; its listener hears nothing more. */
  close(): Promise<void>;
}

/** How many stopped watch ids are remembered so that their late events are recognised. */
const STOPPED_IDS = 1024;

/** The watches of one connection. */
export class WatchChannels {
  private readonly live = new Map<number, WatchListener>();
  private readonly stopped = new Set<number>();

  /** Number of watches running. */
  get size(): number {
    return this.live.size;
  }

  /** Registers a started watch (before any later frame is read). */
  add(watchId: number, listener: WatchListener): void {
    if (this.live.has(watchId)) throw new HutchError('EPROTO', `agent reported watch ${watchId} twice`, { id: String(watchId) });
    this.stopped.delete(watchId);
    this.live.set(watchId, listener);
  }

  /** Forgets a watch; false if it was not running. */
  forget(watchId: number): boolean {
    if (!this.live.delete(watchId)) return false;
    this.remember(watchId);
    return true;
  }

  /**
   * Marks the id of a watch nobody will read (its call timed out) as stopped. EPROTO when the agent
   * gives the id of a running watch: that watch's listener must not be silently cut off.
   */
  orphaned(watchId: number): void {
    if (this.live.has(watchId)) throw new HutchError('EPROTO', `agent reported watch ${watchId} twice`, { id: String(watchId) });
    this.remember(watchId);
  }

  private remember(watchId: number): void {
    this.stopped.delete(watchId);
    this.stopped.add(watchId);
    if (this.stopped.size > STOPPED_IDS) this.stopped.delete(this.stopped.values().next().value!);
  }

  /** Routes a watch event; EPROTO for an id the agent never gave. */
  event(ev: WatchEvent | WatchEndEvent): void {
    const l = this.live.get(ev.watchId);
    if (!l) {
      if (this.stopped.has(ev.watchId)) return;
      throw new HutchError('EPROTO', `agent sent an event for unknown watch ${ev.watchId}`, { id: String(ev.watchId) });
    }
    if (ev.event === 'watch') return l.change(ev.changes);
    this.forget(ev.watchId);
    l.end(ev.error && new HutchError(ev.error.code, ev.error.message, ev.error.path !== undefined ? { path: ev.error.path } : {}));
  }

  /** The connection is gone: every watch ends with `err`. */
  lost(err: HutchError): void {
    const all = [...this.live.values()];
    this.live.clear();
    for (const l of all) l.end(err);
  }
}
