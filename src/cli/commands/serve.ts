// hutch serve: run hutchd, the HTTP + WebSocket API, until SIGTERM or SIGINT.
import { HutchError } from '../../errors.js';
import { parseSize } from '../../engine/options.js';
import { bool, list, str, type ParsedArgs } from '../args.js';
import type { Command } from '../command.js';
import type { Limits } from '../../platform/index.js';

/** Parses a duration such as 500ms, 30s, 10m, 2h (a bare number is seconds). */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new HutchError('EINVAL', `invalid duration "${text}": use a number with ms, s, m or h (e.g. 10m)`);
  return Math.round(Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h']);
}

/** Parses HOST:PORT ([::1]:8080 for IPv6). */
function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new HutchError('EINVAL', `invalid --listen "${text}": use HOST:PORT (e.g. 127.0.0.1:8080)`);
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}

/** Checks --e2b-domain: a DNS name (sandbox hosts are PORT-ID.DOMAIN under it). */
function checkDomain(d: string): string {
  if (!/^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i.test(d) || d.length > 200) throw new HutchError('EINVAL', `invalid --e2b-domain "${d.slice(0, 80)}": want a DNS name such as sandboxes.example.com`);
  return d.toLowerCase();
}

/** Parses the --e2b-template NAME=IMAGE flags into a map. */
function parseTemplates(items: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const text of items) {
    const eq = text.indexOf('=');
    if (eq <= 0 || eq === text.length - 1) throw new HutchError('EINVAL', `invalid --e2b-template "${text.slice(0, 200)}": use NAME=IMAGE (e.g. base=busybox, python=python:3.12-slim)`);
    out[text.slice(0, eq)] = text.slice(eq + 1);
  }
  return out;
}

/** Parses IMAGE=N[@PLATFORM]. */
function parsePool(text: string): { image: string; size: number; platform?: string } {
  const eq = text.lastIndexOf('=');
  const [count = '', platform] = text.slice(eq + 1).split('@');
  const size = Number(count);
  if (eq <= 0 || !/^\d+$/.test(count) || size > 10_000 || platform === '') throw new HutchError('EINVAL', `invalid --pool "${text.slice(0, 200)}": use IMAGE=N or IMAGE=N@PLATFORM (e.g. busybox=4, busybox=2@gvisor)`);
  return { image: text.slice(0, eq), size, ...(platform ? { platform } : {}) };
}

function connectionCount(f: ParsedArgs['flags'], flag: string, key: string): Record<string, number> {
  const v = str(f, flag);
  if (v === undefined) return {};
  if (!/^[1-9]\d{0,5}$/.test(v)) throw new HutchError('EINVAL', `invalid --${flag} "${v.slice(0, 40)}": use a number from 1 to 999999`);
  return { [key]: Number(v) };
}

/** --default-memory, --default-cpus, --default-disk; 0 (or absent) = no limit. */
function defaultSandboxLimits(f: ParsedArgs['flags']): Limits {
  const out: Limits = {};
  const size = (flag: string): number | undefined => {
    const v = str(f, flag);
    if (v === undefined) return undefined;
    if (!/^\s*\d/.test(v)) throw new HutchError('EINVAL', `invalid --${flag} "${v.slice(0, 80)}": use a size such as 512m or 2g (0 = no limit)`);
    return parseSize(v) || undefined;
  };
  const memory = size('default-memory'), disk = size('default-disk'), cpus = str(f, 'default-cpus');
  if (memory !== undefined) out.memoryBytes = memory;
  if (disk !== undefined) out.diskBytes = disk;
  if (cpus !== undefined) {
    if (!/^\d+(\.\d+)?$/.test(cpus)) throw new HutchError('EINVAL', `invalid --default-cpus "${cpus.slice(0, 80)}": use a number such as 0.5 (0 = no limit)`);
    if (Number(cpus) > 0) out.cpus = Number(cpus);
  }
  return out;
}

export const command: Command = {
  usage: 'hutch serve [--root DIR] [--socket PATH] [--listen HOST:PORT] [--token-file FILE] [--platform NAME] [--network MODE] [--allow-host-network] [--pool IMAGE=N[@PLATFORM]]... [--default-ttl 10m] [--default-memory SIZE] [--default-cpus N] [--default-disk SIZE] [--e2b [--e2b-template NAME=IMAGE]...]',
  summary: 'Run hutchd: the HTTP + WebSocket API for sandboxes (unix socket by default; TCP needs --token-file).',
  flags: [
    { name: 'socket', kind: 'string', value: 'PATH', help: 'unix socket (default hutchd.sock in the state root: /run/hutch/hutchd.sock; mode 0600)' },
    { name: 'listen', kind: 'string', value: 'HOST:PORT', help: 'also (or only, without --socket) listen on TCP; needs --token-file' },
    { name: 'token-file', kind: 'string', value: 'FILE', help: 'bearer tokens, one per line (at least 16 characters each)' },
    { name: 'pool', kind: 'list', value: 'IMAGE=N[@PLATFORM]', help: 'keep N ready sandboxes of IMAGE, on PLATFORM (default: --platform) (repeatable)' },
    { name: 'platform', kind: 'string', value: 'NAME', help: 'platform of sandboxes whose create names none: container (default, or $HUTCH_PLATFORM) or gvisor' },
    { name: 'network', kind: 'string', value: 'MODE', help: 'network of sandboxes whose create names none: none (default), bridge or a named network (its pools\' too)' },
    { name: 'allow-host-network', kind: 'bool', help: 'let clients ask for the host\'s network (network: host); refused otherwise' },
    { name: 'pool-concurrency', kind: 'string', value: 'N', help: 'pool sandboxes made at once (default 1)' },
    { name: 'default-ttl', kind: 'string', value: 'DURATION', help: 'time to live of a sandbox when the client gives none (default 10m)' },
    { name: 'max-ttl', kind: 'string', value: 'DURATION', help: 'the longest time to live a client may ask for (default 24h)' },
    { name: 'sweep-interval', kind: 'string', value: 'DURATION', help: 'how often expired sandboxes are looked for (default 5s)' },
    { name: 'default-memory', kind: 'string', value: 'SIZE', help: 'memory limit of a sandbox when the client gives none (default 0 = no limit)' },
    { name: 'default-cpus', kind: 'string', value: 'N', help: 'CPU limit in cores of a sandbox when the client gives none (default 0 = no limit)' },
    { name: 'default-disk', kind: 'string', value: 'SIZE', help: 'writable layer size of a sandbox when the client gives none (a tmpfs; default 0 = no limit)' },
    { name: 'max-upload', kind: 'string', value: 'SIZE', help: 'largest file or archive upload (default 1g)' },
    { name: 'max-buffered-output', kind: 'string', value: 'SIZE', help: 'output held for all wait:true commands together; past it one is killed with 503 EBUSY (default 256m)' },
    { name: 'userns', kind: 'string', value: 'MODE', help: 'host id range of the sandboxes it makes: private (default: one range each) or shared' },
    { name: 'max-connections', kind: 'string', value: 'N', help: 'open connections at once, in total (default 512)' },
    { name: 'max-client-connections', kind: 'string', value: 'N', help: 'open connections at once from one TCP address (default 64)' },
    { name: 'e2b', kind: 'bool', help: 'also serve E2B\'s API on the --listen address, for E2B\'s SDKs (docs/e2b.md)' },
    { name: 'e2b-domain', kind: 'string', value: 'DOMAIN', help: 'E2B sandbox hosts PORT-ID.DOMAIN reach that port of the sandbox (the SDK\'s getHost; needs a wildcard DNS record: docs/e2b.md)' },
    { name: 'e2b-template', kind: 'list', value: 'NAME=IMAGE', help: 'the image of E2B template NAME (repeatable; base is busybox unless given)' },
    { name: 'body-timeout', kind: 'string', value: 'DURATION', help: 'longest pause while a request body arrives (default 30s)' },
  ],
  async run(ctx, args) {
    const f = args.flags;
    if (args.operands.length) throw new HutchError('EINVAL', `serve: unexpected argument ${args.operands[0]}`);
    const listen = str(f, 'listen');
    const socket = str(f, 'socket');
    const tokenFile = str(f, 'token-file');
    const defaultTtl = str(f, 'default-ttl');
    const maxTtl = str(f, 'max-ttl');
    const maxUpload = str(f, 'max-upload');
    const sweep = str(f, 'sweep-interval');
    // Platform names are checked before anything starts: a typo is one line, not a pool that never fills.
    const { builtinPlatforms, platformEntry } = await import('../../platform/registry.js');
    const platform = str(f, 'platform');
    const pools = list(f, 'pool').map(parsePool);
    for (const name of [platform, ...pools.map((p) => p.platform)]) if (name !== undefined) platformEntry(builtinPlatforms, name);
    const poolConcurrency = str(f, 'pool-concurrency');
    const userns = str(f, 'userns');
    if (userns !== undefined && userns !== 'private' && userns !== 'shared') throw new HutchError('EINVAL', `invalid --userns "${userns.slice(0, 80)}": use private or shared`);
    if (poolConcurrency !== undefined && !/^[1-9]\d{0,2}$/.test(poolConcurrency)) throw new HutchError('EINVAL', `invalid --pool-concurrency "${poolConcurrency}": use a number from 1 to 999`);
    const connections = {
      ...connectionCount(f, 'max-connections', 'maxConnections'),
      ...connectionCount(f, 'max-client-connections', 'maxConnectionsPerClient'),
      ...(str(f, 'body-timeout') ? { bodyIdleTimeoutMs: parseDuration(str(f, 'body-timeout')!) } : {}),
    };
    const limits = {
      defaultSandboxLimits: defaultSandboxLimits(f),
      ...(defaultTtl ? { defaultTtlMs: parseDuration(defaultTtl) } : {}),
      ...(maxTtl ? { maxTtlMs: parseDuration(maxTtl) } : {}),
      ...(maxUpload ? { maxUploadBytes: parseSize(maxUpload) } : {}),
      ...(str(f, 'max-buffered-output') ? { maxBufferedOutputBytes: parseSize(str(f, 'max-buffered-output')!) } : {}),
    };
    const templates = parseTemplates(list(f, 'e2b-template'));
    if ((Object.keys(templates).length || str(f, 'e2b-domain') !== undefined) && !bool(f, 'e2b')) throw new HutchError('EINVAL', '--e2b-template and --e2b-domain need --e2b');
    const { Hutchd } = await import('../../server/index.js');
    const d = await Hutchd.start({
      ...(ctx.globals.root ? { root: ctx.globals.root } : {}), ...(ctx.globals.executor ? { executor: ctx.globals.executor } : {}),
      ...(platform ? { platform } : {}),
      ...(socket ? { socketPath: socket } : {}), ...(listen ? { listen: parseListen(listen) } : {}), ...(tokenFile ? { tokenFile } : {}),
      pools, limits, connections, ...(sweep ? { sweepIntervalMs: parseDuration(sweep) } : {}),
      ...(poolConcurrency ? { poolConcurrency: Number(poolConcurrency) } : {}), ...(userns ? { idRange: userns } : {}),
      network: { defaultMode: str(f, 'network') ?? 'none', allowHost: bool(f, 'allow-host-network') },
      ...(bool(f, 'e2b') ? { e2b: { templates, ...(str(f, 'e2b-domain') ? { domain: checkDomain(str(f, 'e2b-domain')!) } : {}) } } : {}),
    });
    const r = d.recovered;
    if (r.adopted.length || r.removed.length || r.failed.length) {
      ctx.err(`hutchd: recovered ${r.adopted.length} sandbox(es), removed ${r.removed.length} left over${r.failed.length ? `, ${r.failed.length} could not be removed` : ''}\n`);
    }
    const where = [d.addresses.socketPath && `unix:${d.addresses.socketPath}`, d.addresses.url].filter(Boolean).join(' and ');
    ctx.err(`hutchd: serving on ${where}\n`);
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'));
      process.once('SIGINT', () => resolve('SIGINT'));
    });
    ctx.err(`hutchd: ${signal}: closing (sandboxes keep running)\n`);
    await d.close();
    return 0;
  },
};
