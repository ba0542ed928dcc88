// Removing a big tree (a sandbox's writable layer: a million files is a sandbox's afternoon)
// without holding the event loop: a few calls in flight at a time, each answered on the thread
// pool, so that a daemon keeps answering while it removes. Links are removed, never followed.
import fs from 'node:fs';
import path from 'node:path';
import { errnoCode } from '../errors.js';

/** Calls in flight per dir: enough to keep the thread pool busy, few enough to leave it to others. */
const IN_FLIGHT = 8;
/** Passes over a dir whose rmdir still finds entries (a listing may miss ones removed meanwhile). */
const MAX_PASSES = 5;

/** Removes `target` and everything under it, like `rm -rf`; a missing target is not an error. */
export async function removeTree(target: string): Promise<void> {
  let st: fs.Stats;
  try {
    st = await fs.promises.lstat(target);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return;
    throw e;
  }
  if (st.isDirectory()) await removeDir(target);
  else await unlinkIfThere(target);
}

async function removeDir(dir: string): Promise<void> {
  for (let pass = 0; ; pass++) {
    await removeEntries(dir);
    try {
      await fs.promises.rmdir(dir);
      return;
    } catch (e) {
      const code = errnoCode(e);
      if (code === 'ENOENT') return;
      if (code !== 'ENOTEMPTY' || pass + 1 >= MAX_PASSES) throw e;
    }
  }
}

async function removeEntries(dir: string): Promise<void> {
  let handle: fs.Dir;
  try {
    handle = await fs.promises.opendir(dir, { bufferSize: 128 });
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return;
    throw e;
  }
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  for await (const entry of handle) {
    const p = path.join(dir, entry.name);
    const job = (entry.isDirectory() ? removeDir(p) : unlinkIfThere(p)).catch((e: unknown) => { failure ??= e; });
    inFlight.add(job);
    void job.finally(() => inFlight.delete(job));
    if (inFlight.size >= IN_FLIGHT) await Promise.race(inFlight);
    if (failure !== undefined) break;
  }
  await Promise.all(inFlight);
  if (failure !== undefined) throw failure;
}

async function unlinkIfThere(file: string): Promise<void> {
  try {
    await fs.promises.unlink(file);
  } catch (e) {
    if (errnoCode(e) !== 'ENOENT') throw e;
  }
}
