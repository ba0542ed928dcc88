// The suite's final leak check, as a function of one run's record: what of what this run made is
// still on the machine. Other sandboxes, registries and test runs on the host are not counted:
//   - state roots: the ones this run recorded (makeRoot), still there;
//   - processes: those carrying the run's mark in their environment (every process the suite
//     started, and theirs), those in one of the cgroups below (a sandbox's, which runc gives an
//     environment of their own), and those whose working dir or command line is in its places;
//   - mounts, cgroups, links, /tmp/hutch-* dirs: those that were not there when the run began and
//     are not a sandbox of a state root that is not the run's;
//   - private id slots held by a sandbox of one of its roots.
// Limits: a second hutch test run at the same time makes /tmp/hutch-* dirs and e2e cgroups that
// cannot be told from this run's (nothing records who made a dir); run suites one at a time.
import fs from 'node:fs';
import path from 'node:path';
import { idSlotsInUse } from '../src/linux/index.js';
import { ID_SLOTS_DIR } from '../src/platform/container/private-ids.js';
import { hutchCgroups, hutchLinks, hutchMounts, hutchTempDirs, processesOnHost, selfAndAncestors, stateRootsOnHost } from './host-scan.js';
import type { SuiteRun } from './suite-run.js';

/** What is left of a run, by kind (each list empty when nothing is). */
export interface RunLeftovers {
  roots: string[];
  processes: string[];
  mounts: string[];
  cgroups: string[];
  links: string[];
  tmp: string[];
  idSlots: string[];
}

/** True when `p` is `dir` or inside it. */
const within = (p: string, dir: string): boolean => p === dir || p.startsWith(`${dir}/`);

/** What of run `run`'s is still on the machine. `slotsDir` is where private id slots are (the host's by default). */
export function runLeftovers(run: SuiteRun, slotsDir = ID_SLOTS_DIR): RunLeftovers {
  const ours = run.roots();
  const before = run.before();
  const theirs = stateRootsOnHost().filter((r) => !ours.includes(r));
  const newTmp = hutchTempDirs().filter((n) => !before.tmp.includes(n)).map((n) => path.join('/tmp', n));
  /** Places whose things are this run's: its roots, and the temp dirs made since it began. */
  const ourPlaces = [...ours, ...newTmp];
  const inOurPlaces = (p: string): boolean => ourPlaces.some((d) => within(p, d));
  const inTheirRoots = (p: string): boolean => theirs.some((r) => within(p, r));
  /** A sandbox cgroup (/hutch-<id>) of a sandbox that another state root holds. */
  const theirSandbox = (cgroup: string): boolean => {
    const m = /^hutch-([0-9a-z][\w.-]*)$/.exec(path.basename(cgroup));
    return m !== null && theirs.some((r) => fs.existsSync(path.join(r, 'sandboxes', m[1]!)));
  };

  const cgroups = hutchCgroups().filter((c) => !before.cgroups.includes(c) && !theirSandbox(c));
  const cgroupNames = new Set(cgroups.map((c) => path.basename(c)));
  const skip = selfAndAncestors();
  const processes = processesOnHost()
    .filter((p) => !skip.has(p.pid))
    .filter((p) => p.environ.includes(run.mark) || p.cgroups.some((c) => cgroupNames.has(c)) || inOurPlaces(p.cwd) || ours.some((r) => p.command.includes(r)))
    .map((p) => `${p.pid} ${p.command.slice(0, 200)}`);

  return {
    roots: ours.filter((r) => fs.existsSync(r)),
    processes,
    mounts: hutchMounts().filter((m) => inOurPlaces(m.point) || (!before.mounts.includes(m.point) && !inTheirRoots(m.point))).map((m) => m.line),
    cgroups,
    links: hutchLinks().filter((l) => !before.links.includes(l)),
    tmp: newTmp,
    idSlots: [...idSlotsInUse(slotsDir)].filter(([, o]) => o !== null && ours.some((r) => within(o.dir, r))).map(([n, o]) => `${n}: ${o!.id} in ${o!.dir}`),
  };
}
