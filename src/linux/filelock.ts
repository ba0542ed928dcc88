// flock(2) locks on a file, polled with LOCK_NB: a blocking flock would freeze the whole event loop.
import * as fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { HutchError, errnoCode } from '../errors.js';
import * as ffi from './ffi.js';

export type LockMode = 'shared' | 'exclusive';

/** Options for FileLock.acquire: how long to wait, and the id (sandbox) the lock is about, for the error. */
export interface AcquireOptions { timeoutMs: number; id?: string }

const FIRST_RETRY_MS = 1, MAX_RETRY_MS = 50;

/** Opens (creating) the lock file without following a symlink planted in its place. */
function openLockFile(path: string, id: string | undefined): number {
  const flags = fs.constants.O_RDONLY | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW; // libuv adds O_CLOEXEC itself
  try {
    return fs.openSync(path, flags, 0o600);
  } catch (e) {
    const code = errnoCode(e);
    const about = id === undefined ? { path, cause: e } : { id, path, cause: e };
    if (code === 'ENOENT') throw new HutchError('ENOTFOUND', `cannot open lock file ${path}: its directory does not exist`, about);
    if (code === 'ELOOP') throw new HutchError('EPERM', `lock file ${path} is a symlink; refusing`, about);
    throw new HutchError('EINTERNAL', `cannot open lock file ${path}: ${(e as Error).message}`, about);
  }
}

/** Tries once; on success the fd now holds the lock. Throws (closing the fd) on errors other than "held". */
function tryLockFd(fd: number, mode: LockMode): boolean {
  try {
    return ffi.flock(fd, (mode === 'shared' ? ffi.LOCK_SH : ffi.LOCK_EX) | ffi.LOCK_NB);
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

/**
 * A held flock(2) lock. The lock belongs to the open file description, so two FileLocks on the same file in
 * one process conflict just as two processes do; the kernel drops it when the process dies.
 */
export class FileLock implements Disposable {
  readonly path: string;
  readonly mode: LockMode;
  #fd: number | null;

  private constructor(path: string, mode: LockMode, fd: number) {
    this.path = path;
    this.mode = mode;
    this.#fd = fd;
  }

  /** Takes the lock, retrying with a short back-off (1 ms doubling to 50 ms); ELOCKED after timeoutMs. */
  static async acquire(path: string, mode: LockMode, opts: AcquireOptions): Promise<FileLock> {
    const fd = openLockFile(path, opts.id);
    const deadline = Date.now() + opts.timeoutMs;
    for (let delay = FIRST_RETRY_MS; ; delay = Math.min(delay * 2, MAX_RETRY_MS)) {
      if (tryLockFd(fd, mode)) return new FileLock(path, mode, fd);
      const left = deadline - Date.now();
      if (left <= 0) {
        fs.closeSync(fd);
        const what = opts.id === undefined ? path : `${opts.id} (${path})`;
        throw new HutchError('ELOCKED', `${what} is locked by someone else; gave up after ${opts.timeoutMs} ms`,
          opts.id === undefined ? { path } : { id: opts.id, path });
      }
      await sleep(Math.min(delay, left));
    }
  }

  /** Takes the lock if it is free right now; null when someone else holds it. */
  static tryAcquire(path: string, mode: LockMode, opts: { id?: string } = {}): FileLock | null {
    const fd = openLockFile(path, opts.id);
    if (tryLockFd(fd, mode)) return new FileLock(path, mode, fd);
    fs.closeSync(fd);
    return null;
  }

  /** True while the file at its path is the one locked: not removed, nor replaced (its dir deleted and made again). */
  isAtPath(): boolean {
    if (this.#fd === null) return false;
    const held = fs.fstatSync(this.#fd);
    const now = fs.lstatSync(this.path, { throwIfNoEntry: false });
    return now !== undefined && now.ino === held.ino && now.dev === held.dev;
  }

  /** True until release(). */
  get held(): boolean {
    return this.#fd !== null;
  }

  /** Releases the lock (closing the file drops it); calling it again does nothing. */
  release(): void {
    if (this.#fd === null) return;
    const fd = this.#fd;
    this.#fd = null;
    fs.closeSync(fd);
  }

  /** `using lock = await FileLock.acquire(...)` releases at the end of the block. */
  [Symbol.dispose](): void {
    this.release();
  }
}
