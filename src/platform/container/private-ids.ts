// A sandbox with a private id range (--userns private): a host id range of its own (a slot), and
// its read-only lower dirs, stored on disk owned by the shared range, seen through idmapped bind
// mounts under <dir>/lower as owned by the sandbox's range. Loaded only for such a sandbox.
import fs from 'node:fs';
import path from 'node:path';
import { claimIdSlot, hostIdRange, processAlive, idmappedBindMounts, idSlotRange, releaseIdSlot, releaseIdSlotsOf, unmountTree, type IdRange } from '../../linux/index.js';
import type { SandboxConfig } from '../types.js';

/** What prepare needs of a private sandbox: its slot, its host ids, and its idmapped lower dirs (topmost first). */
export interface PrivateIds { slot: number; ids: IdRange; lowerDirs: string[] }

/**
 * Where the slot files are: one dir for the whole host, not one per state root, since the ranges
 * are the host's (two roots handing out the same slot would give two sandboxes the same ids).
 * Under /run: slots, like the sandboxes holding them, do not outlive a reboot.
 */
export const ID_SLOTS_DIR = '/run/hutch-idslots';

/** The dir in a private sandbox's dir that holds its idmapped lower dirs (only private sandboxes have it). */
export const LOWER_DIR = 'lower';

/**
 * Claims a private id range for the sandbox of `cfg` and mounts its lower dirs, idmapped from the
 * shared range to it and read-only, at <dir>/lower/0..n. On error the slot stays claimed, with the
 * mounts made so far: the platform's destroy unmounts everything under the sandbox's dir and only
 * then frees it (releasePrivateIdsOf), so a range is never handed on while anything still uses it.
 */
export async function preparePrivateIds(cfg: SandboxConfig, slotsDir = ID_SLOTS_DIR): Promise<PrivateIds> {
  const { slot, range } = await claimIdSlot(slotsDir, { id: cfg.id, dir: cfg.dir });
  const lowerRoot = path.join(cfg.dir, LOWER_DIR);
  fs.mkdirSync(lowerRoot, { mode: 0o755 });
  const binds = (cfg.lowerDirs ?? [cfg.rootfs]).map((source, i) => ({ source, target: path.join(lowerRoot, String(i)) }));
  for (const b of binds) fs.mkdirSync(b.target, { mode: 0o755 });
  await idmappedBindMounts(binds, hostIdRange(), range, { readonly: true });
  return { slot, ids: range, lowerDirs: binds.map((b) => b.target) };
}

/** A probe's scratch dir: `<prefix><pid>-<random>`, so that one whose process is gone can be told. */
const PROBE_PREFIX = '.idmap-probe-';
const PROBE_NAME = /^\.idmap-probe-(\d+)-/;

/** Unmounts and removes the scratch dirs of probes whose process died mid-probe (killed hutchd or `hutch info`). */
function removeStaleProbes(scratchParent: string): void {
  for (const name of fs.readdirSync(scratchParent)) {
    const pid = PROBE_NAME.exec(name)?.[1];
    if (pid === undefined || processAlive(Number(pid))) continue;
    const dir = path.join(scratchParent, name);
    unmountTree(dir);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Whether this host can give sandboxes private id ranges over base layers stored like `source`:
 * null when an idmapped, read-only bind of it works (made in a scratch dir under `scratchParent`
 * and removed at once), else why not (an old kernel, a filesystem without idmapped mounts, no
 * unshare). Nothing is claimed.
 */
export async function probeIdmappedLayers(source: string, scratchParent: string): Promise<string | null> {
  fs.mkdirSync(scratchParent, { recursive: true, mode: 0o711 });
  removeStaleProbes(scratchParent);
  const dir = fs.mkdtempSync(path.join(scratchParent, `${PROBE_PREFIX}${process.pid}-`));
  try {
    const target = path.join(dir, 'lower');
    fs.mkdirSync(target);
    await idmappedBindMounts([{ source, target }], hostIdRange(), idSlotRange(1), { readonly: true });
    return null;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  } finally {
    unmountTree(dir);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Frees the slot of sandbox `id` (nothing if it no longer holds it). */
export function releasePrivateIds(slot: number, id: string, slotsDir = ID_SLOTS_DIR): Promise<void> {
  return releaseIdSlot(slotsDir, slot, id);
}

/** Frees whatever slot the sandbox `id` in `dir` holds, for one whose handle lacks its slot (a failed create). */
export async function releasePrivateIdsOf(id: string, dir: string, slotsDir = ID_SLOTS_DIR): Promise<void> {
  await releaseIdSlotsOf(slotsDir, { id, dir });
}
