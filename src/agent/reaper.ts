// Reaps orphaned zombies that are re-parented to the agent (as pid 1, or as a child subreaper).
// libuv and node-pty each reap only the children they spawned, by pid; this reaps every other exited
// child, also by pid, so it never takes an exit status that libuv or node-pty is waiting for.
import { peekExitedChild, waitpidNoHang } from '../linux/ffi.js';
import { zombieChildren } from './procfs.js';

const FALLBACK_SCAN_MS = 2000;

/** Reaps exited children that are not in `spawned` (the pids libuv/node-pty own). */
export class Reaper {
  private timer: NodeJS.Timeout | undefined;
  private reaped = 0;
  private readonly onSigchld = (): void => this.reap();

  constructor(private readonly spawned: ReadonlySet<number>, private readonly log: (msg: string) => void) {}

  /** Starts reaping on SIGCHLD, with a slow timer as a fallback for coalesced or missed signals. */
  start(): void {
    process.on('SIGCHLD', this.onSigchld);
    this.timer = setInterval(() => this.reap(), FALLBACK_SCAN_MS);
    this.timer.unref();
  }

  /** Stops listening; used at shutdown. */
  stop(): void {
    process.off('SIGCHLD', this.onSigchld);
    if (this.timer) clearInterval(this.timer);
  }

  /** How many orphans have been reaped so far. */
  get count(): number {
    return this.reaped;
  }

  /** Reaps every exited orphan now. */
  reap(): void {
    try {
      for (;;) {
        const pid = peekExitedChild();
        if (pid === null) return;
        if (this.spawned.has(pid)) {
          // waitid(P_ALL) shows one zombie at a time; ours is waiting for libuv, so the ones behind
          // it are found through /proc instead.
          this.reapListed(zombieChildren());
          return;
        }
        // A pid that waitid showed but waitpid cannot reap: stop rather than spin.
        if (!this.reapOne(pid)) return;
      }
    } catch (e) {
      this.log(`reaper: ${(e as Error).message}`);
    }
  }

  private reapListed(pids: number[]): void {
    for (const pid of pids) if (!this.spawned.has(pid)) this.reapOne(pid);
  }

  private reapOne(pid: number): boolean {
    if (!waitpidNoHang(pid)) return false;
    this.reaped++;
    return true;
  }
}
