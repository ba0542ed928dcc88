// The test run this process belongs to. The files of one `node --test` run share a run id (their
// runner's pid and start time), a record dir under /run/hutch-suite-runs, and a mark in the
// environment of every process they start (HUTCH_TEST_RUN=<id>), so that the leak checks count only
// what this run made: its own state roots (recorded by makeRoot), the processes it started (by the
// mark, or by their root dir in one of its roots), and what appeared after the run began. Other
// sandboxes, registries and test runs on the host are not this run's. Importing this module is what
// sets the mark, so every test kit that starts processes imports it.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import os from 'node:os';
import type { Socket } from 'node:net';
import path from 'node:path';
import { processStartTime } from '../src/linux/index.js';
import { hutchCgroups, hutchLinks, hutchMounts } from './host-scan.js';

/** The environment variable that marks the processes a run started. */
export const RUN_ENV = 'HUTCH_TEST_RUN';
/** Where runs keep their records (not /run/hutch-test-*: those are state roots). */
export const RUNS_DIR = '/run/hutch-suite-runs';

/** What was on the machine when a run began (so that it is not counted as the run's). */
export interface HostSnapshot { cgroups: string[]; mounts: string[]; links: string[] }

/** One run's record: its id, the mark its processes carry, the roots and temp dirs it made. */
export class SuiteRun {
  constructor(readonly id: string, readonly dir: string) {}

  /** The mark of this run's processes: `HUTCH_TEST_RUN=<id>` in their environment. */
  get mark(): string { return `${RUN_ENV}=${this.id}`; }

  /** Records a state root this run made. */
  recordRoot(root: string): void {
    fs.appendFileSync(path.join(this.dir, 'roots'), `${root}\n`);
  }

  /** The state roots this run made. */
  roots(): string[] {
    return readLines(path.join(this.dir, 'roots'));
  }

  /** Records a temp dir this run made. */
  recordTemp(dir: string): void {
    fs.appendFileSync(path.join(this.dir, 'tmp'), `${dir}\n`);
  }

  /** The temp dirs this run made. */
  temps(): string[] {
    return readLines(path.join(this.dir, 'tmp'));
  }

  /** What was on the machine when the run began (empty when the record was cut short). */
  before(): HostSnapshot {
    try {
      return JSON.parse(fs.readFileSync(path.join(this.dir, 'before.json'), 'utf8')) as HostSnapshot;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { cgroups: [], mounts: [], links: [] };
      throw e;
    }
  }

  /** Removes the record (the suite's last check does, once it has read it). */
  remove(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

function readLines(file: string): string[] {
  try {
    return [...new Set(fs.readFileSync(file, 'utf8').split('\n').filter(Boolean))];
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

/**
 * Opens run `id`'s record in `runsDir`, making it (with a snapshot from `snapshot`) if this is the
 * run's first process. Records of runs whose runner is gone are removed on the way.
 */
export function openRun(runsDir: string, id: string, snapshot: () => HostSnapshot): SuiteRun {
  fs.mkdirSync(runsDir, { recursive: true, mode: 0o700 });
  const dir = path.join(runsDir, id);
  try {
    fs.mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return new SuiteRun(id, dir);
    throw e;
  }
  removeStaleRuns(runsDir, id);
  const tmp = path.join(dir, 'before.json.tmp');
  fs.writeFileSync(tmp, JSON.stringify(snapshot()));
  fs.renameSync(tmp, path.join(dir, 'before.json'));
  return new SuiteRun(id, dir);
}

/** Removes the records of runs named `<pid>-<start time>` whose process is gone. */
function removeStaleRuns(runsDir: string, current: string): void {
  for (const name of fs.readdirSync(runsDir)) {
    const m = /^(\d+)-(\d+)$/.exec(name);
    if (!m || name === current) continue;
    if (processStartTime(Number(m[1])) !== Number(m[2])) fs.rmSync(path.join(runsDir, name), { recursive: true, force: true });
  }
}

/** `<pid>-<start time>` of process `pid`. */
function runIdOf(pid: number): string {
  return `${pid}-${processStartTime(pid) ?? 0}`;
}

/**
 * This process's run id: the inherited mark (a process a test started), else the test runner's
 * (a test file run by `node --test`), else this process's own.
 */
function currentRunId(): string {
  const inherited = process.env[RUN_ENV];
  if (inherited && /^[\w.-]+$/.test(inherited)) return inherited;
  return runIdOf(process.env.NODE_TEST_CONTEXT ? process.ppid : process.pid);
}

/** What of hutch's is on the machine now, to compare with at the end. */
export function hostSnapshot(): HostSnapshot {
  return { cgroups: hutchCgroups(), mounts: hutchMounts().map((m) => m.point), links: hutchLinks() };
}

// Mark every process started from here on, and make the run's record if this is its first process.
process.env[RUN_ENV] = currentRunId();
const current = openRun(RUNS_DIR, process.env[RUN_ENV], hostSnapshot);

/** The run of this process. */
export function suiteRun(): SuiteRun {
  return current;
}

/**
 * Records the /tmp/hutch-* dirs this process makes with mkdtemp (the way tests make their temp
 * dirs), so that the leak check can tell them from other runs' and users' on the host: nothing on
 * the machine says who made a dir. Node's fs functions are wrapped for that, here only: this module
 * is loaded by tests alone.
 */
function recordTempDirs(): void {
  const ours = (dir: string): string => {
    if (path.dirname(dir) === os.tmpdir() && path.basename(dir).startsWith('hutch-')) current.recordTemp(dir);
    return dir;
  };
  const sync = fs.mkdtempSync;
  const promised = fs.promises.mkdtemp;
  const callback = fs.mkdtemp;
  fs.mkdtempSync = ((prefix: string, options?: unknown) => ours(sync(prefix, options as BufferEncoding) as string)) as typeof fs.mkdtempSync;
  fs.promises.mkdtemp = (async (prefix: string, options?: unknown) => ours(await promised(prefix, options as BufferEncoding) as string)) as typeof fs.promises.mkdtemp;
  fs.mkdtemp = ((prefix: string, ...rest: unknown[]) => {
    const cb = rest.pop() as (e: NodeJS.ErrnoException | null, dir: string) => void;
    (callback as (...a: unknown[]) => void)(prefix, ...rest, (e: NodeJS.ErrnoException | null, dir: string) => cb(e, e ? dir : ours(dir)));
  }) as typeof fs.mkdtemp;
  syncBuiltinESMExports(); // `import { mkdtempSync } from 'node:fs'` sees the wrapped one too
}
recordTempDirs();

/** Helper processes still running, killed when this process exits. */
const helpers = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of helpers) {
    process.stderr.write(`test: killing ${child.spawnfile} (pid ${child.pid}), which the test did not stop\n`);
    child.kill('SIGKILL');
  }
});

/**
 * Ties a helper process (a registry, a daemon) to this test process: it no longer keeps the test
 * process alive, and is killed when that exits. A test that fails before stopping it then ends,
 * instead of hanging on it for good, and the leak check reports what it left (its dir).
 */
export function endWithThisProcess(child: ChildProcess): void {
  if (child.exitCode !== null || child.signalCode !== null) return;
  helpers.add(child);
  child.once('exit', () => helpers.delete(child));
  child.unref();
  for (const pipe of [child.stdin, child.stdout, child.stderr]) (pipe as Socket | null)?.unref();
}
