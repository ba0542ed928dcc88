// runc's lifecycle verbs: create, run, start, kill, delete, exec, pause, resume. hutch does create,
// run and delete itself (validation, private bundle, pods); the others go to the executor with the
// caller's flags as given, once hutch knows the container.
import { HutchError } from '../../errors.js';
import { bool, str, type FlagSpec, type ParsedArgs } from '../args.js';
import type { CreateRequest } from '../../engine/oci/index.js';
import type { OciVerb, OciVerbContext } from './verb.js';

const CREATE_FLAGS: FlagSpec[] = [
  { name: 'bundle', short: 'b', kind: 'string', value: 'DIR', help: 'the bundle (default: the working directory)' },
  { name: 'console-socket', kind: 'string', value: 'PATH', help: 'AF_UNIX socket that receives the pty master' },
  { name: 'pid-file', kind: 'string', value: 'FILE', help: 'file to write the init pid to' },
  { name: 'no-pivot', kind: 'bool', help: 'do not use pivot_root (rootfs on a ramdisk)' },
  { name: 'no-new-keyring', kind: 'bool', help: 'keep the caller\'s session keyring' },
  { name: 'preserve-fds', kind: 'string', value: 'N', help: 'pass N more fds (from fd 3) to the container' },
];

const RUN_FLAGS: FlagSpec[] = [
  ...CREATE_FLAGS,
  { name: 'detach', short: 'd', kind: 'bool', help: 'return once the container has started' },
  { name: 'keep', kind: 'bool', help: 'do not delete the container after it exits' },
];

const EXEC_FLAGS: FlagSpec[] = [
  { name: 'console-socket', kind: 'string', value: 'PATH', help: 'AF_UNIX socket that receives the pty master' },
  { name: 'cwd', kind: 'string', value: 'DIR', help: 'working directory in the container' },
  { name: 'env', short: 'e', kind: 'list', value: 'K=V', help: 'set an environment variable' },
  { name: 'tty', short: 't', kind: 'bool', help: 'allocate a pseudo-TTY' },
  { name: 'user', short: 'u', kind: 'string', value: 'UID[:GID]', help: 'user to run as' },
  { name: 'additional-gids', short: 'g', kind: 'list', value: 'GID', help: 'additional gids' },
  { name: 'process', short: 'p', kind: 'string', value: 'FILE', help: 'process.json to run' },
  { name: 'detach', short: 'd', kind: 'bool', help: 'do not wait for the process' },
  { name: 'pid-file', kind: 'string', value: 'FILE', help: 'file to write the process id to' },
  { name: 'process-label', kind: 'string', value: 'LABEL', help: 'SELinux label of the process' },
  { name: 'apparmor', kind: 'string', value: 'PROFILE', help: 'AppArmor profile of the process' },
  { name: 'no-new-privs', kind: 'bool', help: 'set no_new_privs for the process' },
  { name: 'cap', short: 'c', kind: 'list', value: 'CAP', help: 'add a capability' },
  { name: 'preserve-fds', kind: 'string', value: 'N', help: 'pass N more fds (from fd 3) to the process' },
  { name: 'cgroup', kind: 'list', value: '[CTRL:]PATH', help: 'run in an existing sub-cgroup' },
  { name: 'ignore-paused', kind: 'bool', help: 'allow exec in a paused container' },
];

/** --preserve-fds as a count; runc's error for anything else. */
function fdCount(args: ParsedArgs): number {
  const v = str(args.flags, 'preserve-fds');
  if (v === undefined) return 0;
  if (!/^\d+$/.test(v)) throw new HutchError('EINVAL', `invalid value "${v}" for flag -preserve-fds: parse error`);
  return Number(v);
}

function createRequest(args: ParsedArgs): CreateRequest {
  const f = args.flags;
  const req: CreateRequest = { id: args.operands[0]!, bundle: str(f, 'bundle') ?? '.' };
  const pidFile = str(f, 'pid-file');
  if (pidFile !== undefined) req.pidFile = pidFile;
  const consoleSocket = str(f, 'console-socket');
  if (consoleSocket !== undefined) req.consoleSocket = consoleSocket;
  if (bool(f, 'no-pivot')) req.noPivot = true;
  if (bool(f, 'no-new-keyring')) req.noNewKeyring = true;
  const fds = fdCount(args);
  if (fds > 0) req.preserveFds = fds;
  if (bool(f, 'detach')) req.detach = true;
  if (bool(f, 'keep')) req.keep = true;
  return req;
}

/** A verb the executor does once hutch knows the container: its words go on as the caller gave them. */
function passThrough(usage: string, summary: string, flags: FlagSpec[], operands: [number, number], stopAfter?: number): OciVerb {
  return {
    usage, summary, flags, operands, ...(stopAfter !== undefined ? { stopAfter } : {}),
    run: ({ runtime, args, raw }: OciVerbContext) => runtime.passThrough(args.operands[0]!, raw, fdCount(args)),
  };
}

/** The lifecycle verbs by name. */
export const LIFECYCLE_VERBS: Record<string, OciVerb> = {
  create: {
    usage: '[OPTIONS] ID', summary: 'create a container from a bundle (its init waits for start)', flags: CREATE_FLAGS, operands: [1, 1],
    run: ({ runtime, args }) => runtime.create('create', createRequest(args)),
  },
  run: {
    usage: '[OPTIONS] ID', summary: 'create and start a container, and wait for it unless --detach', flags: RUN_FLAGS, operands: [1, 1],
    run: ({ runtime, args }) => runtime.create('run', createRequest(args)),
  },
  delete: {
    usage: '[--force] ID', summary: 'delete a container (and, for a pod sandbox, its pod)', operands: [1, 1],
    flags: [{ name: 'force', short: 'f', kind: 'bool', help: 'kill the container first if it runs' }],
    run: async ({ runtime, args }) => { await runtime.delete(args.operands[0]!, bool(args.flags, 'force')); return 0; },
  },
  start: passThrough('ID', 'start a created container', [], [1, 1]),
  kill: passThrough('[--all] ID [SIGNAL]', 'send a signal (default SIGTERM) to the init, or every process with --all',
    [{ name: 'all', short: 'a', kind: 'bool', help: 'signal every process of the container' }], [1, 2], 1),
  exec: {
    ...passThrough('[OPTIONS] ID [COMMAND...]', 'run a process in a running container', EXEC_FLAGS, [1, 1], 1),
  },
  pause: passThrough('ID', 'freeze every process of the container', [], [1, 1]),
  resume: passThrough('ID', 'thaw a paused container', [], [1, 1]),
};
