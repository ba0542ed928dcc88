// Telling an OCI caller (podman, containerd's shim: runc's command line) from a person using
// hutch's own verbs, from the command line alone, before any other code loads.
import fs from 'node:fs';
import path from 'node:path';

/** Global flags that only runc's contract has. */
const RUNC_ONLY_GLOBALS = new Set(['log', 'log-format', 'systemd-cgroup', 'rootless', 'criu', 'platform']);
/** Global flags that take a value (runc's and hutch's). */
const VALUED_GLOBALS = new Set(['root', 'log', 'log-format', 'rootless', 'criu', 'executor', 'platform']);
/** Verbs only the OCI contract has. */
const OCI_ONLY_VERBS = new Set(['state', 'delete', 'list', 'spec', 'features', 'events', 'update']);
/** Verbs both contracts have; their flags or operands decide. */
const SHARED_VERBS = new Set(['create', 'run', 'start', 'exec', 'kill', 'ps', 'pause', 'resume', 'checkpoint', 'restore']);
/** Flags of create/run/exec that hutch's own verbs do not have. */
// (`--detach`, `--tty` and `-d`/`-t` are hutch's too.)
const OCI_VERB_FLAGS = new Set(['bundle', 'b', 'pid-file', 'console-socket', 'no-pivot', 'no-new-keyring', 'preserve-fds', 'keep', 'process', 'cwd', 'cap', 'no-new-privs', 'additional-gids', 'ignore-paused', 'format',
  // checkpoint and restore as runc has them (every caller gives --image-path).
  'image-path', 'work-path', 'parent-path', 'tcp-established', 'ext-unix-sk', 'shell-job', 'file-locks', 'pre-dump', 'manage-cgroups-mode', 'empty-ns', 'auto-dedup', 'lazy-pages', 'status-fd', 'page-server', 'no-subreaper']);

/** The executor's dir in an OCI root: its presence marks the root as one of OCI containers. */
const EXECUTOR_DIR_NAME = '.executor';

/** The default state root of OCI containers. */
export const DEFAULT_OCI_ROOT = '/run/hutch-oci';

/** A global flag's name without dashes and its inline value, or null when `arg` is not a flag. */
function flagName(arg: string): { name: string; inline: boolean } | null {
  if (!arg.startsWith('-') || arg === '-' || arg === '--') return null;
  const body = arg.replace(/^--?/, '');
  const eq = body.indexOf('=');
  return { name: eq === -1 ? body : body.slice(0, eq), inline: eq !== -1 };
}

/** True when `argv` (after the program name) is a call through runc's contract. */
export function isOciInvocation(argv: string[], program: string | undefined, env: NodeJS.ProcessEnv): boolean {
  if (env.HUTCH_OCI === '1' || (program !== undefined && path.basename(program) === 'hutch-runc')) return true;
  let root: string | undefined;
  let i = 0;
  for (; i < argv.length; i++) {
    const f = flagName(argv[i]!);
    if (!f) break;
    if (RUNC_ONLY_GLOBALS.has(f.name)) return true;
    if (VALUED_GLOBALS.has(f.name) && !f.inline) {
      if (f.name === 'root') root = argv[i + 1];
      i++;
    } else if (f.name === 'root') {
      root = argv[i]!.slice(argv[i]!.indexOf('=') + 1);
    }
  }
  const verb = argv[i];
  if (verb === undefined) return false;
  if (OCI_ONLY_VERBS.has(verb)) return true;
  if (!SHARED_VERBS.has(verb)) return false;
  const rest = argv.slice(i + 1);
  const operands: string[] = [];
  for (const arg of rest) {
    if (arg === '--') break;
    const f = flagName(arg);
    if (f && OCI_VERB_FLAGS.has(f.name)) return true;
    // runc exec's -p (--process); for hutch's run and create -p publishes a port.
    if (f && f.name === 'p' && verb === 'exec') return true;
    if (!f) operands.push(arg);
    // exec's words after its id are the command's own (hutch exec ID httpd -p 80).
    if (!f && verb === 'exec') break;
  }
  // A root that holds OCI containers (podman: `--root R kill ID SIG`), or an id that names one.
  if (root !== undefined && fs.existsSync(path.join(root, EXECUTOR_DIR_NAME))) return true;
  const id = operands[0];
  if (id !== undefined && /^[\w+,.-]+$/.test(id) && !id.startsWith('.') && fs.existsSync(path.join(root ?? DEFAULT_OCI_ROOT, id, 'record.json'))) return true;
  // runc's default bundle is the working directory: `create ID` next to a config.json.
  if ((verb === 'create' || verb === 'run') && operands.length === 1 && !rest.includes('--') && rest.every((a) => !a.startsWith('-'))) {
    return operands[0] !== 'busybox' && !isDir(operands[0]!) && fs.existsSync('config.json');
  }
  return false;
}

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false; // not there: not a rootfs dir
  }
}
