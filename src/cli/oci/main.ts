// hutch through runc's command-line contract: runc's global flags, then an OCI verb. Errors are
// one line on stderr, and with --log also a line in the log file in the --log-format, as runc does
// (containerd's shim reads the last error from that file when a call fails).
import fs from 'node:fs';
import { HutchError } from '../../errors.js';
import { traceMark } from '../../trace.js';
import { parseArgs, type FlagSpec } from '../args.js';
import { DEFAULT_OCI_ROOT } from './detect.js';
import type { OciVerb, OciGlobals } from './verb.js';

const VERBS: Record<string, () => Promise<Record<string, OciVerb>>> = {
  create: () => import('./lifecycle.js').then((m) => m.LIFECYCLE_VERBS),
  run: () => import('./lifecycle.js').then((m) => m.LIFECYCLE_VERBS),
  start: () => import('./lifecycle.js').then((m) => m.LIFECYCLE_VERBS),
  delete: () => import('./lifecycle.js').then((m) => m.LIFECYCLE_VERBS),
  kill: () => import('./lifecycle.js').then((m) => m.LIFECYCLE_VERBS),
  exec: () => import('./lifecycle.js').then((m) => m.LIFECYCLE_VERBS),
  pause: () => import('./lifecycle.js').then((m) => m.LIFECYCLE_VERBS),
  resume: () => import('./lifecycle.js').then((m) => m.LIFECYCLE_VERBS),
  state: () => import('./inspect.js').then((m) => m.INSPECT_VERBS),
  list: () => import('./inspect.js').then((m) => m.INSPECT_VERBS),
  ps: () => import('./inspect.js').then((m) => m.INSPECT_VERBS),
  events: () => import('./inspect.js').then((m) => m.INSPECT_VERBS),
  update: () => import('./inspect.js').then((m) => m.INSPECT_VERBS),
  spec: () => import('./inspect.js').then((m) => m.INSPECT_VERBS),
  features: () => import('./inspect.js').then((m) => m.INSPECT_VERBS),
  checkpoint: () => import('./inspect.js').then((m) => m.INSPECT_VERBS),
  restore: () => import('./inspect.js').then((m) => m.INSPECT_VERBS),
};

const USAGE = `Usage: hutch [GLOBAL OPTIONS] VERB [OPTIONS] ID

hutch as an OCI runtime, with runc's command line (see docs/oci-runtime.md).

Verbs: create start state kill delete run exec ps pause resume events update list spec
       features checkpoint restore

Global options:
   --root DIR          state of OCI containers (default ${DEFAULT_OCI_ROOT})
   --log FILE          log file (default: stderr)
   --log-format FMT    text (default) or json
   --debug             debug logging
   --systemd-cgroup    cgroupsPath is slice:prefix:name (passed to the executor)
   --rootless VALUE    true, false or auto (passed to the executor)
   --criu PATH         criu binary (checkpoint)
   --executor NAME     runc (default, or $HUTCH_EXECUTOR) or crun
   --platform NAME     container (default), or another platform that runs OCI bundles (docs/platforms.md)
`;

const BOOL_GLOBALS = new Set(['debug', 'systemd-cgroup']);
const VALUE_GLOBALS = new Set(['root', 'log', 'log-format', 'rootless', 'criu', 'executor', 'platform']);

/** Parses runc's global flags (one or two dashes, `=value` or a separate word); returns them and the verb's index. */
function parseGlobals(argv: string[], globals: OciGlobals): number {
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('-') || arg === '-') break;
    const body = arg.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const name = eq === -1 ? body : body.slice(0, eq);
    if (name === 'help' || name === 'h' || name === 'version' || name === 'v') break;
    if (BOOL_GLOBALS.has(name)) {
      if (name === 'debug') globals.debug = eq === -1 || body.slice(eq + 1) !== 'false';
      else globals.systemdCgroup = eq === -1 || body.slice(eq + 1) !== 'false';
      continue;
    }
    if (!VALUE_GLOBALS.has(name)) throw new HutchError('EINVAL', `flag provided but not defined: -${name}`);
    let value: string;
    if (eq !== -1) value = body.slice(eq + 1);
    else if (i + 1 < argv.length) value = argv[++i]!;
    else throw new HutchError('EINVAL', `flag needs an argument: -${name}`);
    if (name === 'root') globals.root = value;
    else if (name === 'log') globals.log = value;
    else if (name === 'log-format') {
      if (value !== 'text' && value !== 'json') throw new HutchError('EINVAL', `invalid log-format: ${value}`);
      globals.logFormat = value;
    } else if (name === 'rootless') globals.rootless = value;
    else if (name === 'criu') globals.criu = value;
    else if (name === 'executor') globals.executor = value;
    else globals.platform = value;
  }
  return i;
}

/** The caller's global flags that the executor must get too (its errors then land in the same log). */
export function executorGlobals(g: OciGlobals): string[] {
  const out: string[] = [];
  if (g.log !== undefined) out.push('--log', g.log);
  if (g.logFormat !== 'text') out.push('--log-format', g.logFormat);
  if (g.debug) out.push('--debug');
  if (g.systemdCgroup) out.push('--systemd-cgroup');
  return out;
}

/** Writes an error as runc does: to the log file (in its format) and stderr, or to stderr in the log format. */
function reportError(g: OciGlobals, message: string): void {
  const time = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const line = g.logFormat === 'json'
    ? `${JSON.stringify({ level: 'error', msg: message, time })}\n`
    : `time="${time}" level=error msg=${JSON.stringify(message)}\n`;
  if (g.log !== undefined) {
    try {
      fs.appendFileSync(g.log, line, { mode: 0o600 });
    } catch (e) {
      process.stderr.write(`cannot write to log ${g.log}: ${(e as Error).message}\n`);
    }
    process.stderr.write(`${message}\n`);
  } else {
    process.stderr.write(line);
  }
}

/** Normalises runc's single-dash long flags (`-bundle`) to two dashes, for the shared parser. */
function normaliseFlags(args: string[], specs: FlagSpec[]): string[] {
  const long = new Set(specs.map((s) => s.name));
  return args.map((a) => {
    if (!a.startsWith('-') || a.startsWith('--')) return a;
    const name = a.slice(1).split('=')[0]!;
    return name.length > 1 && long.has(name) ? `-${a}` : a;
  });
}

/** Runs hutch in OCI mode on `argv` (without the program name); resolves to the exit code. */
export async function ociMain(argv: string[]): Promise<number> {
  traceMark('oci: main');
  const globals: OciGlobals = { root: DEFAULT_OCI_ROOT, logFormat: 'text', debug: false, systemdCgroup: false };
  try {
    const at = parseGlobals(argv, globals);
    globals.executor ??= process.env.HUTCH_EXECUTOR ?? 'runc';
    const verbName = argv[at];
    if (verbName === undefined || ['help', '--help', '-h'].includes(verbName)) {
      process.stdout.write(USAGE);
      return verbName === undefined ? 1 : 0;
    }
    if (['--version', '-v', 'version'].includes(verbName)) {
      process.stdout.write('hutch version 0.1.0\nspec: 1.0.2-dev\n');
      return 0;
    }
    const load = VERBS[verbName];
    if (!load) throw new HutchError('EINVAL', `No help topic for '${verbName}'`);
    const verb = (await load())[verbName]!;
    traceMark('oci: verb loaded');
    const raw = normaliseFlags(argv.slice(at + 1), verb.flags);
    if (raw.includes('--help') || raw.includes('-h')) {
      const { helpText } = await import('../args.js');
      process.stdout.write(helpText(`hutch ${verbName} ${verb.usage}`, verb.summary, verb.flags));
      return 0;
    }
    const parsed = verb.lenient ? { flags: {}, operands: raw.filter((a) => !a.startsWith('-')).slice(-1), rest: [] }
      : parseArgs(verbName, raw, verb.flags, verb.stopAfter ?? Infinity);
    const { operands } = parsed;
    if (verb.operands !== undefined) {
      const [min, max] = verb.operands;
      if (operands.length < min || operands.length > max) {
        const want = min === max ? `exactly ${min}` : operands.length < min ? `a minimum of ${min}` : `a maximum of ${max}`;
        throw new HutchError('EINVAL', `"${verbName}" requires ${want} argument(s)`);
      }
    }
    const { OciRuntime } = await import('../../engine/oci/index.js');
    const runtime = new OciRuntime({
      root: globals.root, executor: globals.executor, executorGlobals: executorGlobals(globals),
      ...(globals.rootless !== undefined ? { rootless: globals.rootless } : {}),
      ...(globals.platform !== undefined ? { platform: globals.platform } : {}),
    });
    traceMark('oci: runtime loaded');
    const code = await verb.run({ runtime, globals, args: parsed, raw: [verbName, ...raw] });
    traceMark('oci: verb done');
    return code;
  } catch (e) {
    reportError(globals, e instanceof Error ? e.message : String(e));
    if (globals.debug && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
    return 1;
  }
}
