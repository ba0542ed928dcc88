// The OCI runtimes the client e2e tests run against: runc first (it proves the harness), then hutch.
// hutch's cases are skipped, with the reason printed, while its runc-contract mode cannot yet take a
// bundle through create → start → state → delete; HUTCH_E2E_REQUIRE_HUTCH=1 turns that skip into a failure.
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { removeCgroupTrees, runProgram, waitUntil, type Outcome } from './host.js';

/** One runtime binary for the clients' `--runtime` / `--runc-binary`, and why its cases skip, if they do. */
export interface RuntimeUnderTest {
  name: 'runc' | 'hutch';
  path: string;
  skip?: string;
}

/**
 * Cases known to fail with a runtime, by case key: they still run, as node:test TODOs, so that
 * their output shows what is missing without failing the suite. Remove an entry once it passes.
 */
export const KNOWN_GAPS: Record<RuntimeUnderTest['name'], Record<string, string>> = {
  runc: {},
  hutch: {},
};

/** node:test options for case `key` with runtime `rt`: a TODO with the reason when it is a known gap. */
export function caseOptions(rt: RuntimeUnderTest, key: string, timeout = 120_000): { timeout: number; todo?: string } {
  const gap = KNOWN_GAPS[rt.name][key];
  return gap ? { timeout, todo: gap } : { timeout };
}

/** runc from Debian. */
export const RUNC_PATH = '/usr/sbin/runc';
/** The hutch launcher that scripts/setup.sh writes; HUTCH_E2E_RUNTIME points elsewhere. */
export const HUTCH_RUNTIME_PATH = process.env.HUTCH_E2E_RUNTIME ?? '/usr/local/bin/hutch';

/** runc, and hutch with a skip reason while its OCI mode is not there; probes under `dir`. */
export async function runtimesUnderTest(dir: string): Promise<RuntimeUnderTest[]> {
  const runc: RuntimeUnderTest = { name: 'runc', path: RUNC_PATH };
  if (!fs.existsSync(RUNC_PATH)) runc.skip = `${RUNC_PATH} is not installed (run scripts/setup.sh)`;
  const hutch: RuntimeUnderTest = { name: 'hutch', path: HUTCH_RUNTIME_PATH };
  const problem = await probeOciLifecycle(HUTCH_RUNTIME_PATH, dir);
  if (problem) {
    if (process.env.HUTCH_E2E_REQUIRE_HUTCH === '1') console.log(`# hutch OCI probe failed (HUTCH_E2E_REQUIRE_HUTCH=1, so its cases run): ${problem}`);
    else hutch.skip = `hutch OCI mode not available yet: ${problem}`;
  }
  return [runc, hutch];
}

const firstLine = (o: Outcome) => (o.stderr.trim() || o.stdout.trim()).split('\n')[0] ?? '';

/**
 * Takes a one-command bundle through `RUNTIME --root R create/start/state/delete`, as the clients do;
 * returns what went wrong, or undefined when the runtime honours the contract this far.
 */
export async function probeOciLifecycle(runtime: string, dir: string): Promise<string | undefined> {
  if (!fs.existsSync(runtime)) return `${runtime} does not exist`;
  const tag = randomBytes(3).toString('hex');
  const probeDir = path.join(dir, `probe-${tag}`);
  const stateRoot = path.join(probeDir, 'state');
  const bundle = path.join(probeDir, 'bundle');
  const id = `hutch-e2e-probe-${tag}`;
  const cgroupName = `hutch-e2e-probe-${tag}`;
  const call = (args: string[]) => runProgram(runtime, ['--root', stateRoot, '--log-format', 'json', ...args], { timeoutMs: 20_000, untilExit: true });
  try {
    const missing = await call(['state', `${id}-none`]);
    if (missing.code !== 1 || /unknown verb|usage/i.test(missing.stderr)) {
      return `'state' of an unknown id gave exit ${missing.code}: ${firstLine(missing)} (runc: exit 1, "container does not exist")`;
    }
    writeProbeBundle(bundle, cgroupName);
    const created = await call(['create', '--bundle', bundle, '--pid-file', path.join(probeDir, 'pid'), id]);
    if (created.code !== 0) return `'create' exited ${created.code}: ${firstLine(created)}`;
    if (!fs.existsSync(path.join(probeDir, 'pid'))) return `'create' wrote no --pid-file`;
    const started = await call(['start', id]);
    if (started.code !== 0) return `'start' exited ${started.code}: ${firstLine(started)}`;
    let last = '';
    const stopped = await waitUntil(async () => {
      const s = await call(['state', id]);
      last = s.code === 0 ? s.stdout : firstLine(s);
      try { return (JSON.parse(s.stdout) as { status?: string }).status === 'stopped'; } catch { return false; }
    }, 10_000, 100);
    if (!stopped) return `'state' never said "stopped" after the process exited; last: ${last.trim().slice(0, 200)}`;
    const deleted = await call(['delete', id]);
    if (deleted.code !== 0) return `'delete' exited ${deleted.code}: ${firstLine(deleted)}`;
    return undefined;
  } finally {
    await call(['delete', '--force', id]).catch(() => undefined);
    removeCgroupTrees(cgroupName);
    fs.rmSync(probeDir, { recursive: true, force: true });
  }
}

/** A bundle whose process is busybox's `true`, with its config from `runc spec`. */
function writeProbeBundle(bundle: string, cgroupName: string): void {
  fs.mkdirSync(path.join(bundle, 'rootfs', 'bin'), { recursive: true });
  fs.copyFileSync('/bin/busybox', path.join(bundle, 'rootfs', 'bin', 'busybox'));
  fs.chmodSync(path.join(bundle, 'rootfs', 'bin', 'busybox'), 0o755);
  for (const a of ['sh', 'true']) fs.symlinkSync('busybox', path.join(bundle, 'rootfs', 'bin', a));
  execFileSync(RUNC_PATH, ['spec', '--bundle', bundle]);
  const configPath = path.join(bundle, 'config.json');
  const config = JSON.parse(fs.readFileSync(configPath, 'utf8')) as {
    process: { terminal: boolean; args: string[] };
    root: { readonly: boolean };
    linux: { cgroupsPath?: string };
  };
  config.process.terminal = false;
  config.process.args = ['/bin/true'];
  config.linux.cgroupsPath = `/${cgroupName}/probe`;
  fs.writeFileSync(configPath, JSON.stringify(config, null, 2));
}
