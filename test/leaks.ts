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

/** A sandbox's cgroup is /hutch-<its id>; an OCI container's, in the tests, its id (hutch-t-...). */
const SANDBOX_CGROUP = /^hutch-(.+)$/;
/** The parents the e2e clients put their containers under: each e2e file sweeps its own. */
const E2E_CGROUP = /^hutch-e2e-/;

/** True when `p` is `dir` or inside it. */
const within = (p: string, dir: string): boolean => p === dir || p.startsWith(`${dir}/`);

/** What of run `run`'s is still on the machine. `slotsDir` is where private id slots are (the host's by default). */
export function runLeftovers(run: SuiteRun, slotsDir = ID_SLOTS_DIR): RunLeftovers {
  const ours = run.roots();
  const before = run.before();
  const theirs = stateRootsOnHost().filter((r) => !ours.includes(r));
  const ourTmp = run.temps();
  const otherTmp = hutchTempDirs().map((n) => path.join('/tmp', n)).filter((d) => !ourTmp.includes(d));
  /** Places whose things are this run's: its roots and temp dirs. */
  const ourPlaces = [...ours, ...ourTmp];
  const inOurPlaces = (p: string): boolean => ourPlaces.some((d) => within(p, d));
  const inTheirPlaces = (p: string): boolean => [...theirs, ...otherTmp].some((d) => within(p, d));
  /** The cgroup of a sandbox (or OCI container) that another state root holds. */
  const theirSandbox = (cgroup: string): boolean => {
    const name = path.basename(cgroup);
    const id = SANDBOX_CGROUP.exec(name)?.[1];
    return id !== undefined && theirs.some((r) => fs.existsSync(path.join(r, 'sandboxes', id)) || fs.existsSync(path.join(r, name)));
  };
  const skip = selfAndAncestors();

  const procs = processesOnHost().filter((p) => !skip.has(p.pid));
  const marked = procs.filter((p) => p.environ.includes(run.mark));
  /** New hutch cgroups that are no other root's sandbox's nor an e2e parent, and any that a marked process is in. */
  const cgroups = hutchCgroups().filter((c) => (!before.cgroups.includes(c) && !E2E_CGROUP.test(path.basename(c)) && !theirSandbox(c))
    || marked.some((p) => p.cgroups.includes(path.basename(c))));
  const cgroupNames = new Set(cgroups.map((c) => path.basename(c)));
  const processes = procs.filter((p) => p.environ.includes(run.mark) || p.cgroups.some((c) => cgroupNames.has(c)) || inOurPlaces(p.cwd) || ours.some((r) => p.command.includes(r)))
    .map((p) => `${p.pid} ${p.command.slice(0, 200)}`);

  return {
    roots: ours.filter((r) => fs.existsSync(r)),
    processes,
    mounts: hutchMounts().filter((m) => inOurPlaces(m.point) || (!before.mounts.includes(m.point) && !inTheirPlaces(m.point))).map((m) => m.line),
    cgroups,
    links: hutchLinks().filter((l) => !before.links.includes(l)),
    tmp: ourTmp.filter((d) => fs.existsSync(d)),
    idSlots: [...idSlotsInUse(slotsDir)].filter(([, o]) => o !== null && ours.some((r) => within(o.dir, r))).map(([n, o]) => `${n}: ${o!.id} in ${o!.dir}`),
  };
}
