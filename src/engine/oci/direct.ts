// The verbs the `hutch` launcher may hand straight to the executor, without starting node.
// start, kill, pause and resume are the executor's verbs with the caller's flags as given (hutch
// only checks the id), delete of a container that is not a pod sandbox is the executor's delete
// plus removing hutch's dir, and state is the executor's with the caller's bundle; node costs ~25 ms per call, and podman makes three calls per
// `run`. The launcher (scripts/launcher.sh) reads `<root>/<id>/direct`, written once the container
// is ready; every case it does not recognise goes to node. Format, one item per line:
//   0. `hutch-direct 1`: the format's version (a launcher that does not know it leaves all to node);
//   1. the verbs the launcher may run directly, space-separated;
//   2. `@state DIR`: the executor's state root (delete checks the executor still knows the id);
//   3. the executor's command words, with one line `@globals NAMES` where the caller's global flags
//      go (NAMES: those the executor takes of log, log-format, debug, systemd-cgroup, rootless);
//   4. runc only (its `state` prints the fields in the order hutch does): `@bundle JSON` and
//      `@caller-bundle JSON`, the bundle runc reports (the private one, or the caller's when runc
//      was shown it: caller-view.ts) and the caller's bundle as JSON strings; the launcher's
//      `state` swaps the first for the second in runc's output, and leaves to node what it cannot;
//   5. `@end`: a file cut short (no fsync: losing it only costs speed) is not used.
import fs from 'node:fs';
import path from 'node:path';
import type { OciExecutor } from '../../platform/container/oci-passthrough.js';
import type { OciRecord } from './store.js';

/** The file's name in a container's dir. */
export const DIRECT_FILE = 'direct';

/** The file's first line; scripts/launcher.sh checks it. */
export const DIRECT_FORMAT = 'hutch-direct 1';

/** The caller's global flags that every executor takes (rootless only runc: see executorGlobals). */
const PASSED_GLOBALS = ['log', 'log-format', 'debug', 'systemd-cgroup'];

/** The lines of a container's direct file, or null when one of its words cannot be written as a line. */
export function directLines(record: OciRecord, executor: OciExecutor, privateBundle: string): string[] | null {
  const runc = executor.name === 'runc';
  // runsc's kill of a stopped container needs node's translation of its error (runtime.passThrough).
  const verbs = executor.name === 'runsc' ? ['start', 'pause', 'resume'] : ['start', 'kill', 'pause', 'resume'];
  // Deleting a pod's sandbox deletes its pod: node does that.
  if (record.pod?.role !== 'sandbox') verbs.push('delete');
  if (runc) verbs.push('state');
  const { command, globals } = executor.commandParts();
  const passed = runc ? [...PASSED_GLOBALS, 'rootless'] : PASSED_GLOBALS;
  const reported = record.executorBundle ?? privateBundle;
  const bundles = runc ? [`@bundle ${JSON.stringify(reported)}`, `@caller-bundle ${JSON.stringify(record.bundle)}`] : [];
  const lines = [DIRECT_FORMAT, verbs.join(' '), `@state ${executor.config.stateDir}`, ...bundles, ...command, `@globals ${passed.join(' ')}`, ...globals, '@end'];
  // A word with a newline cannot be a line; one starting with @ would read as a marker.
  const words = [...command, ...globals];
  if (words.some((w) => /[\n\r]/.test(w) || w.startsWith('@'))) return null;
  if (/[\n\r]/.test(executor.config.stateDir)) return null;
  return lines;
}

/** Writes the direct file of a ready container atomically, or nothing when its words cannot be lines. */
export function writeDirectFile(dir: string, record: OciRecord, executor: OciExecutor): void {
  const lines = directLines(record, executor, path.join(dir, 'bundle'));
  if (lines === null) return; // every verb then goes through node, which is only slower
  const file = path.join(dir, DIRECT_FILE);
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${lines.join('\n')}\n`, { mode: 0o600 });
  fs.renameSync(tmp, file);
}
