// Flags shared by `run` and `create`: what the sandbox is made of, its limits and its hardening.
import { HutchError } from '../../errors.js';
import type { CreateOptions } from '../../engine/index.js';
import { checkUser, parseSize } from '../../engine/options.js';
import { bool, list, str, type FlagSpec, type ParsedArgs } from '../args.js';
import { progressDisplay, type ProgressDisplay } from '../progress.js';
import { parsePortMapping, parseRule, type EgressPolicy } from '../../net/index.js';

/** Flags that describe a new sandbox. */
export const SANDBOX_FLAGS: FlagSpec[] = [
  { name: 'name', kind: 'string', value: 'NAME', help: 'name of the sandbox (also its hostname)' },
  { name: 'platform', kind: 'string', value: 'NAME', help: 'what isolates it: container (namespaces, default, or $HUTCH_PLATFORM) or gvisor (docs/platforms.md)' },
  { name: 'memory', short: 'm', kind: 'string', value: 'SIZE', help: 'memory limit, e.g. 256m, 1g' },
  { name: 'cpus', kind: 'string', value: 'N', help: 'CPU limit in cores, e.g. 0.5' },
  { name: 'pids', kind: 'string', value: 'N', help: 'maximum number of processes (default 1024)' },
  { name: 'disk', kind: 'string', value: 'SIZE', help: 'size of the writable layer, e.g. 512m, 2g (a tmpfs: it counts against memory; default 0 = no limit)' },
  { name: 'disk-inodes', kind: 'string', value: 'N', help: 'files the writable layer may hold (with --disk; default one per 4 KiB, at least 4096)' },
  { name: 'env', short: 'e', kind: 'list', value: 'K=V', help: 'set an environment variable (repeatable)' },
  { name: 'workdir', short: 'w', kind: 'string', value: 'DIR', help: 'working directory inside the sandbox' },
  { name: 'user', short: 'u', kind: 'string', value: 'USER[:GROUP]', help: 'user to run the command as: a name or uid, optionally with a group or gid (names from the image\'s /etc/passwd and /etc/group)' },
  { name: 'userns', kind: 'string', value: 'MODE', help: 'user namespace ids: shared (default), private (a host id range of its own) or host (= --no-userns)' },
  { name: 'no-userns', kind: 'bool', help: 'hardening off: no user namespace (root inside is root outside)' },
  { name: 'seccomp', kind: 'string', value: 'PROFILE', help: 'seccomp profile: default, strict or off' },
  { name: 'allow-io-uring', kind: 'bool', help: 'allow io_uring (denied by default: seccomp cannot filter what it runs)' },
  { name: 'cap-all', kind: 'bool', help: 'hardening off: give every capability' },
  { name: 'allow-new-privs', kind: 'bool', help: 'hardening off: no no_new_privs' },
  { name: 'no-mask-paths', kind: 'bool', help: 'hardening off: leave /proc and /sys paths unmasked and writable' },
  { name: 'network', kind: 'string', value: 'MODE', help: 'none (loopback only, default), bridge (NAT to the internet, isolated), a named network (hutch network create) or host' },
  { name: 'publish', short: 'p', kind: 'list', value: '[IP:]HOSTPORT:PORT[/udp]', help: 'publish a port of the sandbox on the host (bridge and named networks; repeatable)' },
  { name: 'egress', kind: 'string', value: 'allow|deny', help: 'what a connection no --allow/--deny rule names gets (default allow: the internet, not the host\'s networks)' },
  { name: 'allow', kind: 'list', value: 'RULE', help: 'allow egress to a CIDR, address or DNS name, optionally :tcp/PORT[-PORT] (repeatable; docs/network.md)' },
  { name: 'deny', kind: 'list', value: 'RULE', help: 'deny egress to RULE; deny rules come first (repeatable)' },
  { name: 'read-only', kind: 'bool', help: 'no writable layer: the rootfs is mounted read-only' },
  { name: 'label', short: 'l', kind: 'list', value: 'K=V', help: 'set a label on the sandbox (repeatable)' },
  { name: 'pull', kind: 'string', value: 'POLICY', help: 'for an image: pull it when missing (default), always, or never' },
  { name: 'entrypoint', kind: 'string', value: 'CMD', help: "replace the image's entrypoint (a command, or a JSON array; '' for none)" },
];

/** Builds engine options from the sandbox flags. */
export function createOptionsFrom(args: ParsedArgs, rootfs: string, command: string[]): CreateOptions {
  const f = args.flags;
  const o: CreateOptions = { rootfs, env: list(f, 'env'), limits: {}, hardening: {} };
  const name = str(f, 'name');
  if (name !== undefined) o.name = name;
  const platform = str(f, 'platform');
  if (platform !== undefined) o.platform = platform;
  const memory = str(f, 'memory');
  if (memory !== undefined) o.limits!.memoryBytes = parseSize(memory);
  const cpus = str(f, 'cpus');
  if (cpus !== undefined) {
    const n = Number(cpus);
    if (!/^\d+(\.\d+)?$/.test(cpus)) throw new HutchError('EINVAL', `invalid --cpus "${cpus}": use a number such as 0.5`);
    o.limits!.cpus = n;
  }
  const pids = str(f, 'pids');
  if (pids !== undefined) {
    if (!/^\d+$/.test(pids)) throw new HutchError('EINVAL', `invalid --pids "${pids}": use a whole number`);
    o.limits!.pids = Number(pids);
  }
  const disk = str(f, 'disk');
  if (disk !== undefined) o.limits!.diskBytes = sizeFlag('disk', disk);
  const inodes = str(f, 'disk-inodes');
  if (inodes !== undefined) {
    if (!/^\d{1,10}$/.test(inodes)) throw new HutchError('EINVAL', `invalid --disk-inodes "${inodes.slice(0, 80)}": use a whole number`);
    o.limits!.diskInodes = Number(inodes);
  }
  const cwd = str(f, 'workdir');
  if (cwd !== undefined) o.cwd = cwd;
  const user = str(f, 'user');
  if (user !== undefined) o.user = checkUser(user);
  const h = o.hardening!;
  if (bool(f, 'no-userns')) h.userns = false;
  const userns = str(f, 'userns');
  if (userns !== undefined) {
    if (userns !== 'shared' && userns !== 'private' && userns !== 'host') throw new HutchError('EINVAL', `invalid --userns "${userns.slice(0, 80)}": use shared, private or host`);
    if (userns !== 'host' && h.userns === false) throw new HutchError('EINVAL', `--userns ${userns} contradicts --no-userns`);
    if (userns === 'host') h.userns = false;
    if (userns === 'private') h.idRange = 'private';
  }
  const seccomp = str(f, 'seccomp');
  if (seccomp !== undefined) {
    if (seccomp !== 'default' && seccomp !== 'strict' && seccomp !== 'off') throw new HutchError('EINVAL', `invalid --seccomp "${seccomp}": use default, strict or off`);
    h.seccomp = seccomp;
  }
  if (bool(f, 'allow-io-uring')) h.ioUring = true;
  if (bool(f, 'cap-all')) h.capabilities = 'all';
  if (bool(f, 'allow-new-privs')) h.noNewPrivileges = false;
  if (bool(f, 'no-mask-paths')) h.maskPaths = false;
  const network = str(f, 'network');
  if (network !== undefined) o.network = network;
  const publish = list(f, 'publish');
  if (publish.length) o.ports = publish.map(parsePortMapping);
  const policy = policyFlags(args);
  if (policy) o.policy = policy;
  if (bool(f, 'read-only')) h.overlay = false;
  const labels = list(f, 'label');
  if (labels.length) o.labels = Object.fromEntries(labels.map(parseLabel));
  const pull = str(f, 'pull');
  if (pull !== undefined) {
    if (pull !== 'missing' && pull !== 'always' && pull !== 'never') throw new HutchError('EINVAL', `invalid --pull "${pull}": use missing, always or never`);
    o.pull = pull;
  }
  const entrypoint = str(f, 'entrypoint');
  if (entrypoint !== undefined) o.entrypoint = parseEntrypoint(entrypoint);
  if (command.length) o.command = command;
  // A display is made only when a pull happens (its bars would draw over nothing otherwise).
  let display: ProgressDisplay | undefined;
  o.pullProgress = {
    onProgress: (e) => (display ??= progressDisplay(process.stderr)).onProgress(e),
    finish: () => display?.finish(),
  };
  return o;
}

/** The egress policy of --egress, --allow and --deny; undefined when none is given. */
export function policyFlags(args: ParsedArgs): EgressPolicy | undefined {
  const f = args.flags;
  const egress = str(f, 'egress');
  const allow = list(f, 'allow');
  const deny = list(f, 'deny');
  if (egress === undefined && !allow.length && !deny.length) return undefined;
  if (egress !== undefined && egress !== 'allow' && egress !== 'deny') throw new HutchError('EINVAL', `invalid --egress "${egress.slice(0, 40)}": use allow or deny`);
  return { default: egress ?? 'allow', allow: allow.map(parseRule), deny: deny.map(parseRule) };
}

/** A size flag's bytes; its name in the error. */
function sizeFlag(flag: string, text: string): number {
  if (!/^\s*\d/.test(text)) throw new HutchError('EINVAL', `invalid --${flag} "${text.slice(0, 80)}": use a size such as 512m or 2g (0 = no limit)`);
  return parseSize(text);
}

/** K=V → [K, V]; the key is checked by the engine. */
/** One --label KEY=VALUE. */
export function parseLabel(kv: string): [string, string] {
  const eq = kv.indexOf('=');
  if (eq <= 0) throw new HutchError('EINVAL', `invalid --label "${kv.slice(0, 80)}": use KEY=VALUE`);
  return [kv.slice(0, eq), kv.slice(eq + 1)];
}

/** An entrypoint as podman takes it: '' = none, a JSON array of strings, or one command word. */
function parseEntrypoint(text: string): string[] {
  if (text === '') return [];
  if (!text.startsWith('[')) return [text];
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new HutchError('EINVAL', `invalid --entrypoint ${text.slice(0, 80)}: not a JSON array`);
  }
  if (!Array.isArray(parsed) || parsed.some((a) => typeof a !== 'string')) throw new HutchError('EINVAL', `invalid --entrypoint ${text.slice(0, 80)}: use a JSON array of strings`);
  return parsed as string[];
}
