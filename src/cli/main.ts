#!/usr/bin/env node
// The `hutch` command: global flags, then a verb whose module is loaded only when it is used.
import { HutchError, isHutchError } from '../errors.js';
import { parseArgs, type FlagSpec, type ParsedArgs } from './args.js';
import { traceMark } from '../trace.js';
import { isOciInvocation } from './oci/detect.js';
import type { Command, CommandContext, GlobalOptions } from './command.js';

const VERBS: Record<string, () => Promise<{ command: Command }>> = {
  run: () => import('./commands/run.js'),
  create: () => import('./commands/create.js'),
  start: () => import('./commands/start.js'),
  exec: () => import('./commands/exec.js'),
  ls: () => import('./commands/ls.js'),
  ps: () => import('./commands/ps.js'),
  stats: () => import('./commands/stats.js'),
  pause: () => import('./commands/pause.js'),
  resume: () => import('./commands/resume.js'),
  stop: () => import('./commands/stop.js'),
  kill: () => import('./commands/kill.js'),
  wait: () => import('./commands/wait.js'),
  inspect: () => import('./commands/inspect.js'),
  rm: () => import('./commands/rm.js'),
  cp: () => import('./commands/cp.js'),
  logs: () => import('./commands/logs.js'),
  info: () => import('./commands/info.js'),
  setup: () => import('./commands/setup.js'),
  pull: () => import('./commands/pull.js'),
  images: () => import('./commands/images.js'),
  rmi: () => import('./commands/rmi.js'),
  image: () => import('./commands/image.js'),
  load: () => import('./commands/load.js'),
  serve: () => import('./commands/serve.js'),
  checkpoint: () => import('./commands/checkpoint.js'),
  restore: () => import('./commands/restore.js'),
  snapshot: () => import('./commands/snapshot.js'),
  network: () => import('./commands/network.js'),
};

const USAGE = `Usage: hutch [--root DIR] [--executor runc|crun] [--debug] VERB [OPTIONS] ...

Sandboxes for untrusted code.

Verbs:
  run       create a sandbox, run a command in it, and wait for it
  create    create a sandbox (state ready)
  start     start a ready sandbox
  exec      run a command in a running sandbox
  ls        list sandboxes
  ps        list the processes of a sandbox
  stats     cpu, memory and pids of a sandbox
  pause     freeze every process of a sandbox
  resume    thaw a paused sandbox
  stop      stop a sandbox (SIGTERM, then SIGKILL)
  kill      send a signal into a sandbox
  wait      wait for a sandbox to stop and print its exit code
  inspect   a sandbox's record and how it ended, as JSON
  rm        remove sandboxes
  cp        copy files between the host and a sandbox
  logs      the output of a sandbox's main command (-f follows it)
  checkpoint  save a running sandbox (memory too) as a snapshot (gvisor)
  restore   a new running sandbox from a snapshot (several: a fork)
  snapshot  snapshot subcommands: ls, inspect, rm
  network   networks (create, ls, inspect, rm) and a sandbox's egress policy
  info      versions, cgroup mode, executor, hardening this machine supports
  setup     build the embedded busybox rootfs and the agent runtime
  pull      pull an image from a registry
  images    list stored images
  rmi       remove images
  image     image subcommands: prune, inspect
  load      import a docker-archive, oci-archive or OCI layout
  serve     run hutchd, the HTTP + WebSocket API

Run 'hutch VERB --help' for a verb's options. The global flags may also follow the verb
(hutch ls --root DIR), before its command: after -- or a run's IMAGE they are the command's.
`;

/**
 * The global flags, also taken after the verb (`hutch ls --root X`) up to the verb's own command
 * (`--`, or the words after the image of `run`, which are the sandboxed command's).
 */
const GLOBAL_FLAGS: FlagSpec[] = [
  { name: 'root', kind: 'string', value: 'DIR', help: 'state root (global)' },
  { name: 'executor', kind: 'string', value: 'NAME', help: 'runc or crun (global)' },
  { name: 'debug', kind: 'bool', help: 'stack traces (global)' },
];

/** An empty value would silently mean the default: refused. */
function nonEmpty(flag: string, value: string): string {
  if (value === '') throw new HutchError('EINVAL', `${flag} needs a value (got an empty one)`);
  return value;
}

/** Moves global flags found among a verb's flags into `globals` (the later one wins). */
function takeGlobals(parsed: ParsedArgs, globals: GlobalOptions): void {
  const f = parsed.flags;
  if (typeof f.root === 'string') globals.root = nonEmpty('--root', f.root);
  if (typeof f.executor === 'string') globals.executor = nonEmpty('--executor', f.executor);
  if (f.debug === true) globals.debug = true;
  for (const g of GLOBAL_FLAGS) delete f[g.name];
}

/** Parses global flags; returns them and the index of the verb. */
function parseGlobals(argv: string[]): { globals: GlobalOptions; at: number } {
  const globals: GlobalOptions = { debug: false };
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = () => {
      if (inline !== undefined) return inline;
      if (i + 1 >= argv.length) throw new HutchError('EINVAL', `${flag} needs a value`);
      return argv[++i]!;
    };
    if (flag === '--root') globals.root = nonEmpty(flag, value());
    else if (flag === '--executor') globals.executor = nonEmpty(flag, value());
    else if (flag === '--debug') globals.debug = true;
    else break;
  }
  return { globals, at: i };
}

/** A reader that went away (`hutch ls | head -1`) ends our output quietly, as it does for any shell tool. */
function quietOnBrokenPipe(stream: NodeJS.WriteStream): void {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    process.exitCode ??= 141;
  });
}

async function main(argv: string[]): Promise<number> {
  traceMark('cli: main');
  quietOnBrokenPipe(process.stdout);
  quietOnBrokenPipe(process.stderr);
  let errorExitCode = 1;
  let debug = false;
  try {
    const { globals, at } = parseGlobals(argv);
    debug = globals.debug;
    const verb = argv[at];
    if (verb === undefined || verb === '-h' || verb === '--help' || verb === 'help') {
      process.stdout.write(USAGE);
      return verb === undefined ? 2 : 0;
    }
    if (verb === '--version' || verb === 'version') {
      process.stdout.write('hutch 0.1.0\n');
      return 0;
    }
    const load = VERBS[verb];
    if (!load) throw new HutchError('EINVAL', `unknown verb "${verb}" (see hutch --help)`);
    const { command } = await load();
    errorExitCode = command.errorExitCode ?? 1;
    const rest = argv.slice(at + 1);
    const stopAfter = command.stopAfter ?? Infinity;
    if (rest.includes('--help') || rest.includes('-h')) {
      const before = rest.indexOf('--');
      const idx = Math.min(...['--help', '-h'].map((h) => rest.indexOf(h)).filter((n) => n >= 0));
      if (before === -1 || idx < before) {
        const { helpText } = await import('./args.js');
        process.stdout.write(helpText(command.usage, command.summary, command.flags));
        return 0;
      }
    }
    const parsed = parseArgs(verb, rest, [...command.flags, ...GLOBAL_FLAGS], stopAfter);
    takeGlobals(parsed, globals);
    debug = globals.debug;
    const ctx = makeContext(globals);
    try {
      return await command.run(ctx, parsed);
    } finally {
      await ctx.close();
    }
  } catch (e) {
    const code = (e as NodeJS.ErrnoException)?.code;
    const rootHint = (code === 'EACCES' || code === 'EPERM') && process.getuid?.() !== 0 ? ' (hutch runs as root; rootless mode is not supported yet)' : '';
    process.stderr.write(`hutch: ${e instanceof Error ? e.message : String(e)}${rootHint}\n`);
    if (debug && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
    if (isHutchError(e) && e.code === 'ENOEXEC') return 127;
    return errorExitCode;
  }
}

function makeContext(globals: GlobalOptions): CommandContext {
  let engine: Promise<import('../engine/index.js').Engine> | undefined;
  let calls: Promise<import('../engine/index.js').SandboxCalls> | undefined;
  const ctx: CommandContext = {
    globals,
    engine: () => (engine ??= import('../engine/index.js').then((m) => new m.Engine({
      ...(globals.root ? { root: globals.root } : {}), ...(globals.executor ? { executor: globals.executor } : {}),
      selfCommand: [process.execPath, process.argv[1]!],
    }))),
    calls: () => (calls ??= Promise.all([ctx.engine(), import('../engine/index.js')]).then(([e, m]) => new m.SandboxCalls(e))),
    out: (t) => process.stdout.write(t),
    err: (t) => process.stderr.write(t),
    // Agent connections must not keep the process alive after the verb is done, error or not.
    close: async () => { if (calls) (await calls.catch(() => null))?.closeAll(); },
  };
  return ctx;
}

// Called the way podman and containerd call runc: runc's contract, with none of the user verbs.
const oci = isOciInvocation(process.argv.slice(2), process.argv[1], process.env);
(oci ? import('./oci/main.js').then((m) => m.ociMain(process.argv.slice(2))) : main(process.argv.slice(2))).then(
  (code) => { process.exitCode = code; },
  (e: unknown) => { process.stderr.write(`hutch: ${String(e)}\n`); process.exitCode = 1; },
);
