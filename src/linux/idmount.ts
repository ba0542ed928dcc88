// Idmapped bind mounts: a dir whose files are owned by one host id range, seen through a mount as
// owned by another (the kernel shifts ids on the fly; nothing on disk changes). The mapping comes
// from a user namespace, made for the purpose by a short-lived `unshare -U` process.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { HutchError, errnoCode } from '../errors.js';
import * as ffi from './ffi.js';
import type { IdRange } from './idmap.js';
import { assertCleanAbsolute } from './paths.js';
import { processVanished } from './procs.js';

/** One idmapped bind mount to make: `source` seen at `target` (an existing empty dir). */
export interface IdmappedBind { source: string; target: string }

/** How long the helper process gets to enter its new user namespace. */
const USERNS_TIMEOUT_MS = 5000;

/**
 * Bind-mounts every `source` on its `target` with ids `from.hostUid + n` shown as `to.hostUid + n`
 * (likewise gids) for n below the ranges' size; ids outside `from` show as the overflow id (nobody).
 * With `readonly`, the mounts are read-only too. On error, mounts made so far stay for the caller's
 * cleanup (unmountTree) to remove.
 */
export async function idmappedBindMounts(binds: IdmappedBind[], from: IdRange, to: IdRange, opts: { readonly?: boolean } = {}): Promise<void> {
  for (const b of binds) {
    assertCleanAbsolute(b.source, 'idmapped bind source');
    assertCleanAbsolute(b.target, 'idmapped bind target');
  }
  if (binds.length === 0) return;
  const usernsFd = await mappingUserns(from, to);
  try {
    const attrs = ffi.MOUNT_ATTR_IDMAP | (opts.readonly ? ffi.MOUNT_ATTR_RDONLY : 0);
    for (const b of binds) {
      const tree = ffi.openTreeClone(b.source);
      try {
        ffi.mountSetattr(tree, attrs, usernsFd, b.source);
        ffi.moveMountTo(tree, b.target);
      } finally {
        fs.closeSync(tree);
      }
    }
  } finally {
    fs.closeSync(usernsFd);
  }
}

/**
 * An fd of a new user namespace whose ids `from` are host ids `to`. Made by `unshare --user sleep`; the
 * process is killed (and waited for) before this returns, always: the open fd keeps the namespace.
 */
async function mappingUserns(from: IdRange, to: IdRange): Promise<number> {
  if (from.size !== to.size) throw new HutchError('EINVAL', `id ranges of different sizes (${from.size} and ${to.size}) cannot be mapped`);
  // It is killed at once; the sleep only bounds its life should this hutch be killed meanwhile.
  const child = spawn('unshare', ['--user', 'sleep', '10'], { stdio: 'ignore' });
  const exited = new Promise<Error | null>((resolve) => {
    child.once('error', (e) => resolve(e));
    child.once('exit', () => resolve(null));
  });
  try {
    const pid = child.pid;
    if (pid === undefined) throw await spawnError(exited);
    await untilOwnUserns(pid, exited);
    const proc = `/proc/${pid}`;
    writeProcFile(`${proc}/uid_map`, `${from.hostUid} ${to.hostUid} ${to.size}\n`);
    writeProcFile(`${proc}/gid_map`, `${from.hostGid} ${to.hostGid} ${to.size}\n`);
    try {
      return fs.openSync(`${proc}/ns/user`, 'r');
    } catch (e) {
      throw new HutchError('EINTERNAL', `cannot open the user namespace of process ${pid}: ${(e as Error).message}`, { path: `${proc}/ns/user`, cause: e });
    }
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  }
}

/** The error of a helper that did not start: unshare missing is EUNSUPPORTED. */
async function spawnError(exited: Promise<Error | null>): Promise<HutchError> {
  const e = await exited;
  if (e && errnoCode(e) === 'ENOENT') return new HutchError('EUNSUPPORTED', 'private id ranges need the unshare command (util-linux), which is not installed', { cause: e });
  return new HutchError('EINTERNAL', `cannot start unshare: ${e?.message ?? 'no process'}`, { cause: e });
}

/** Waits until process `pid` is in a user namespace other than ours (unshare has run), or fails if it exits first. */
async function untilOwnUserns(pid: number, exited: Promise<Error | null>): Promise<void> {
  const ours = fs.readlinkSync('/proc/self/ns/user');
  let gone = false;
  void exited.then(() => { gone = true; });
  const deadline = Date.now() + USERNS_TIMEOUT_MS;
  while (!gone && Date.now() < deadline) {
    let theirs: string | null = null;
    try {
      theirs = fs.readlinkSync(`/proc/${pid}/ns/user`);
    } catch (e) {
      if (!processVanished(e)) throw new HutchError('EINTERNAL', `cannot read the user namespace of process ${pid}: ${(e as Error).message}`, { cause: e });
    }
    if (theirs !== null && theirs !== ours) return;
    await new Promise((r) => setTimeout(r, 1));
  }
  if (gone) throw new HutchError('EUNSUPPORTED', 'unshare --user failed: this host does not let hutch make a user namespace');
  throw new HutchError('ETIMEDOUT', `unshare --user did not make its user namespace within ${USERNS_TIMEOUT_MS} ms`);
}

/** Writes an id map of a process; names the file in the error. */
function writeProcFile(file: string, text: string): void {
  try {
    fs.writeFileSync(file, text);
  } catch (e) {
    throw new HutchError('EINTERNAL', `cannot write ${file}: ${(e as Error).message}`, { path: file, cause: e });
  }
}
