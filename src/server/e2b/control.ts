// E2B's control plane over hutch's sandboxes (docs/e2b.md): create (templates are images, metadata
// are labels, the timeout is the TTL), list, info, kill, timeout, connect, pause/resume, metrics.
// Written from E2B's public API as its SDK calls it; answers are E2B's JSON shapes.
import { ENVD_VERSION } from './envd.js';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import type { SandboxInfo } from '../../engine/index.js';
import { HutchError } from '../../errors.js';
import type { EgressPolicy, EgressRule } from '../../net/index.js';
import { envList, optBool, optStringMap, readJson, sendJson } from '../http.js';
import { TTL_LABEL } from '../parts.js';
import type { Route } from '../router.js';
import { createServed, removeSandbox, ttlOf } from '../routes-sandboxes.js';
import { isServed, RESERVED_LABEL_PREFIX, servedSandbox, type Services } from '../services.js';

/** The envd version hutchd reports: the SDK turns features on and off by it (docs/e2b.md). */
export { ENVD_VERSION };
/** The label holding a sandbox's envd access token (reserved: never in a view). */
export const ENVD_TOKEN_LABEL = 'dev.hutch.e2b.envd-token';
/** The label holding the E2B template a sandbox was made from. */
export const TEMPLATE_LABEL = 'dev.hutch.e2b.template';
/** The clientID of every answer (E2B's names the cluster node; hutchd has one). */
const CLIENT_ID = 'hutchd';
/** The last CPU time seen per sandbox (for metrics' cpuUsedPct). */
const cpuSamples = new Map<string, { ns: number; at: number }>();
/** The most sandboxes one list page holds. */
const MAX_PAGE = 1000;

/** What the E2B side of hutchd is set up with. */
export interface E2bOptions {
  /** E2B template names to hutch images (hutchd --e2b-template NAME=IMAGE; `base` is busybox unless given). */
  templates: Record<string, string>;
  /** The domain of sandbox hosts (`PORT-ID.DOMAIN`: the SDK's getHost); absent = none (the SDK's own default). */
  domain?: string;
}

/** The E2B control-plane routes (paths as E2B's API names them). */
export function controlRoutes(s: Services, opts: E2bOptions): Route[] {
  const templates = { base: 'busybox', ...opts.templates };
  const info = async (id: string): Promise<SandboxInfo> => servedSandbox(s, id);
  return [
    ...['/v2/sandboxes', '/sandboxes'].map((path): Route => ({
      method: 'POST', path, handle: async ({ req, res }) => {
        const body = await readJson(req, s.limits.maxJsonBytes);
        const t0 = performance.now();
        let gone = false;
        res.once('close', () => { gone = !res.writableFinished; });
        const { info, source } = await createE2b(s, templates, body);
        s.metrics.observeCreate((performance.now() - t0) / 1000, source);
        // A client that gave up while it was made never learns its id: it is removed, as on hutch's own API.
        if (gone) return removeSandbox(s, info.id, 'client gone before the create was answered');
        sendJson(res, 201, sandboxAnswer(info, opts.domain));
      },
    })),
    ...['/v2/sandboxes', '/sandboxes'].map((path): Route => ({
      method: 'GET', path, handle: async ({ res, url }) => {
        const { page, next } = listPage((await s.engine.list()).filter(isServed), url);
        if (next !== undefined) res.setHeader('x-next-token', next);
        sendJson(res, 200, page.map(detailOf));
      },
    })),
    {
      method: 'GET', path: '/sandboxes/{id}', handle: async ({ res, params }) => {
        const sandbox = await info(params['id']!);
        sendJson(res, 200, { ...detailOf(sandbox), envdAccessToken: sandbox.labels?.[ENVD_TOKEN_LABEL] });
      },
    },
    {
      method: 'DELETE', path: '/sandboxes/{id}', handle: async ({ res, params }) => {
        await removeSandbox(s, (await info(params['id']!)).id, 'killed (E2B API)');
        res.writeHead(204).end();
      },
    },
    {
      method: 'POST', path: '/sandboxes/{id}/timeout', handle: async ({ req, res, params }) => {
        const body = await readJson(req, s.limits.maxJsonBytes);
        const sandbox = await info(params['id']!);
        await s.lifetime.setTtl(sandbox.id, ttlOf(s, { ttlMs: secondsOf(body, true)! * 1000 }));
        res.writeHead(204).end();
      },
    },
    ...['/v2/sandboxes/{id}/connect', '/sandboxes/{id}/connect', '/sandboxes/{id}/resume'].map((path): Route => ({
      method: 'POST', path, handle: async ({ req, res, params }) => {
        const body = await readJson(req, s.limits.maxJsonBytes);
        let sandbox = await info(params['id']!);
        const resumeOnly = path.endsWith('/resume');
        if (resumeOnly && sandbox.status !== 'paused') throw new HutchError('ESTATE', `sandbox ${sandbox.id} is not paused`, { id: sandbox.id });
        const seconds = secondsOf(body, false);
        if (seconds !== undefined) {
          // As E2B's: the timeout given is a floor, never a cut.
          const wanted = Date.now() + seconds * 1000;
          const now = Date.parse(sandbox.labels?.[TTL_LABEL] ?? '') || 0;
          if (wanted > now) await s.lifetime.setTtl(sandbox.id, ttlOf(s, { ttlMs: seconds * 1000 }));
        }
        const wasPaused = sandbox.status === 'paused';
        if (wasPaused) {
          sandbox = await s.engine.resume(sandbox.id);
          s.events.publish({ type: 'resumed', sandboxId: sandbox.id });
        } else if (sandbox.status !== 'running') {
          throw new HutchError('ESTATE', `sandbox ${sandbox.id} is ${sandbox.status}, not running or paused`, { id: sandbox.id });
        }
        sendJson(res, wasPaused ? 201 : 200, sandboxAnswer(await info(sandbox.id), opts.domain));
      },
    })),
    {
      method: 'POST', path: '/sandboxes/{id}/pause', handle: async ({ res, params }) => {
        const sandbox = await info(params['id']!);
        if (sandbox.status === 'paused') throw new HutchError('ESTATE', `sandbox ${sandbox.id} is already paused`, { id: sandbox.id });
        await s.engine.pause(sandbox.id);
        s.events.publish({ type: 'paused', sandboxId: sandbox.id });
        res.writeHead(204).end();
      },
    },
    {
      method: 'GET', path: '/sandboxes/{id}/metrics', handle: async ({ res, params }) => {
        const sandbox = await info(params['id']!);
        const st = await s.calls.stats(sandbox.id);
        const cpus = cpuCountOf(sandbox);
        const now = Date.now();
        // CPU use since the last look at this sandbox (0 the first time): E2B's is a percentage of its cores.
        const last = cpuSamples.get(sandbox.id);
        if (st.cpuUsageNs !== null) {
          if (cpuSamples.size > 10_000) cpuSamples.clear();
          cpuSamples.set(sandbox.id, { ns: st.cpuUsageNs, at: now });
        }
        const pct = last && st.cpuUsageNs !== null && now > last.at ? ((st.cpuUsageNs - last.ns) / ((now - last.at) * 1e6 * cpus)) * 100 : 0;
        sendJson(res, 200, [{
          timestamp: new Date(now).toISOString(), timestampUnix: Math.floor(now / 1000), cpuCount: cpus, cpuUsedPct: Math.round(Math.min(100, Math.max(0, pct)) * 100) / 100,
          memUsed: st.memoryBytes ?? 0, memTotal: st.memoryLimitBytes ?? sandbox.limits.memoryBytes ?? os.totalmem(), memCache: 0,
          diskUsed: st.diskBytes ?? 0, diskTotal: st.diskLimitBytes ?? 0,
        }]);
      },
    },
  ];
}

/** Makes a sandbox from an E2B create body. */
async function createE2b(s: Services, templates: Record<string, string>, body: Record<string, unknown>): Promise<{ info: SandboxInfo; source: 'pool' | 'cold' }> {
  const templateID = body['templateID'] ?? 'base';
  if (typeof templateID !== 'string' || templateID === '') throw new HutchError('EINVAL', 'templateID must be a template name');
  const image = Object.hasOwn(templates, templateID) ? templates[templateID]! : undefined;
  if (image === undefined) throw new HutchError('ENOTFOUND', `template ${templateID.slice(0, 80)} not found: this hutchd maps ${Object.keys(templates).join(', ')} (hutchd --e2b-template NAME=IMAGE)`);
  if (body['autoPause'] === true || (body['autoResume'] as { enabled?: unknown } | undefined)?.enabled === true) {
    throw new HutchError('EUNSUPPORTED', 'onTimeout pause (autoPause, autoResume) is not supported by hutchd: a sandbox is killed when its timeout ends');
  }
  if (Array.isArray(body['volumeMounts']) && body['volumeMounts'].length > 0) throw new HutchError('EUNSUPPORTED', 'volume mounts are not supported by hutchd');
  const metadata = optStringMap(body, 'metadata') ?? {};
  for (const k of Object.keys(metadata)) {
    if (k.startsWith(RESERVED_LABEL_PREFIX)) throw new HutchError('EINVAL', `metadata key ${k.slice(0, 80)}: keys starting with ${RESERVED_LABEL_PREFIX} are hutch's own`);
  }
  const seconds = secondsOf(body, false);
  const labels = {
    ...metadata, ...s.lifetime.labelsFor(ttlOf(s, seconds === undefined ? {} : { ttlMs: seconds * 1000 })),
    [ENVD_TOKEN_LABEL]: randomBytes(24).toString('base64url'), [TEMPLATE_LABEL]: templateID,
  };
  const platform = s.engine.platformName;
  const { privateIds } = await s.engine.capabilities(platform);
  const limits = Object.keys(s.limits.defaultSandboxLimits).length ? { ...s.limits.defaultSandboxLimits } : undefined;
  const made = await createServed(s, { image, platform, privateIds, env: envList(optStringMap(body, 'envVars')), labels, limits, ...networkOf(s, body) });
  // Connect to its agent now, so that the SDK's first envd call finds the connection open.
  s.calls.files(made.info.id).catch(() => undefined);
  return made;
}

/** The `timeout` field (whole seconds); required or not. */
function secondsOf(body: Record<string, unknown>, required: boolean): number | undefined {
  const t = body['timeout'];
  if (t === undefined || t === null) {
    if (required) throw new HutchError('EINVAL', 'timeout (seconds) is required');
    return undefined;
  }
  if (typeof t !== 'number' || !Number.isInteger(t) || t < 1) throw new HutchError('EINVAL', `timeout must be a whole number of seconds, at least 1, not ${JSON.stringify(t).slice(0, 40)}`);
  return t;
}

/**
 * E2B's network options as a hutch network and egress policy. Nothing asked: the server's default
 * network (hutchd --network). Internet asked for (allow_internet_access true, or allow/deny lists):
 * that network, or `bridge` when the default is none. allow_internet_access false: no network when
 * the default is none, else the default one with every destination denied. A deny of 0.0.0.0/0 makes
 * the policy's default deny, with allowOut its exceptions.
 */
export function networkOf(s: Services, body: Record<string, unknown>): { network: string; policy?: EgressPolicy } {
  const internet = optBool(body, 'allow_internet_access') ?? optBool(body, 'allowInternetAccess');
  const raw = body['network'];
  if (raw !== undefined && raw !== null && (typeof raw !== 'object' || Array.isArray(raw))) throw new HutchError('EINVAL', 'network must be an object {allowOut?, denyOut?}');
  const o = (raw ?? {}) as Record<string, unknown>;
  for (const k of ['rules', 'egressProxy']) if (o[k] !== undefined) throw new HutchError('EUNSUPPORTED', `network.${k} is not supported by hutchd: use allowOut and denyOut`);
  const allowOut = selectorList(o, 'allowOut');
  const denyOut = selectorList(o, 'denyOut');
  const def = s.network.defaultMode;
  const withNet = def === 'none' ? 'bridge' : def;
  if (internet === false) {
    if (def === 'none' && allowOut.length === 0) return { network: 'none' };
    return { network: withNet, policy: { default: 'deny', allow: allowOut.map(ruleOf), deny: [] } };
  }
  if (allowOut.length === 0 && denyOut.length === 0) return { network: internet === true ? withNet : def };
  const denyAll = denyOut.includes('0.0.0.0/0');
  return { network: withNet, policy: { default: denyAll ? 'deny' : 'allow', allow: allowOut.map(ruleOf), deny: denyOut.filter((d) => d !== '0.0.0.0/0').map(ruleOf) } };
}

function selectorList(o: Record<string, unknown>, key: string): string[] {
  const v = o[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.length > 256 || v.some((x) => typeof x !== 'string' || x.length > 253)) throw new HutchError('EINVAL', `network.${key} must be a list of CIDR blocks, addresses or domain names`);
  return v as string[];
}

/** An E2B destination (an address, a CIDR block or a domain name) as an egress rule. */
function ruleOf(d: string): EgressRule {
  return /^\d+\.\d+\.\d+\.\d+(\/\d+)?$/.test(d) ? { cidr: d } : { name: d };
}

/** Filters (metadata, state, template, startedAfter), order and paging of a list (nextToken = an offset). */
export function listPage(all: SandboxInfo[], url: URL): { page: SandboxInfo[]; next?: string } {
  const q = url.searchParams;
  const wanted: [string, string][] = [];
  const meta = q.get('metadata');
  if (meta) {
    // The SDK encodes each key and value, then the pairs as a query string: both are undone here.
    for (const [k, v] of new URLSearchParams(meta)) wanted.push([decode(k), decode(v)]);
  }
  const states = (q.getAll('state').flatMap((x) => x.split(',')).filter(Boolean));
  const template = q.get('template');
  const after = q.get('startedAfter') ? Date.parse(q.get('startedAfter')!) : undefined;
  let list = all.filter((i) => wanted.every(([k, v]) => i.labels?.[k] === v)
    && (states.length ? states.includes(stateOf(i)) : ['running', 'paused'].includes(stateOf(i)))
    && (!template || i.labels?.[TEMPLATE_LABEL] === template)
    && (after === undefined || Date.parse(startedOf(i)) > after));
  const desc = q.get('order') === 'desc';
  list = list.sort((a, b) => (startedOf(a).localeCompare(startedOf(b)) || a.id.localeCompare(b.id)) * (desc ? -1 : 1));
  const limitText = q.get('limit');
  const limit = limitText === null ? 100 : Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) throw new HutchError('EINVAL', `limit must be a whole number from 1 to ${MAX_PAGE}`);
  const tokenText = q.get('nextToken');
  const from = tokenText ? Number(tokenText) : 0;
  if (!Number.isInteger(from) || from < 0) throw new HutchError('EINVAL', 'nextToken is not one this server gave');
  const page = list.slice(from, from + limit);
  return from + limit < list.length ? { page, next: String(from + limit) } : { page };
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** E2B's state: running or paused (hutch's other states, such as stopped, are shown as they are). */
function stateOf(i: SandboxInfo): string {
  return i.status;
}

function startedOf(i: SandboxInfo): string {
  return i.startedAt ?? i.createdAt;
}

function cpuCountOf(i: SandboxInfo): number {
  return i.limits.cpus ? Math.max(1, Math.ceil(i.limits.cpus)) : os.availableParallelism();
}

/** The answer of create and connect. */
function sandboxAnswer(i: SandboxInfo, domain: string | undefined): Record<string, unknown> {
  return {
    sandboxID: i.id, templateID: i.labels?.[TEMPLATE_LABEL] ?? 'base', clientID: CLIENT_ID, envdVersion: ENVD_VERSION,
    envdAccessToken: i.labels?.[ENVD_TOKEN_LABEL], domain: domain ?? null,
  };
}

/** A sandbox as E2B's list and info show it. */
function detailOf(i: SandboxInfo): Record<string, unknown> {
  const metadata = Object.fromEntries(Object.entries(i.labels ?? {}).filter(([k]) => !k.startsWith(RESERVED_LABEL_PREFIX)));
  const template = i.labels?.[TEMPLATE_LABEL] ?? 'base';
  return {
    sandboxID: i.id, templateID: template, alias: template, clientID: CLIENT_ID, startedAt: startedOf(i), endAt: i.labels?.[TTL_LABEL] ?? startedOf(i),
    cpuCount: cpuCountOf(i), memoryMB: Math.round((i.limits.memoryBytes ?? os.totalmem()) / (1024 * 1024)), diskSizeMB: Math.round((i.limits.diskBytes ?? 0) / (1024 * 1024)),
    metadata, state: stateOf(i), envdVersion: ENVD_VERSION, domain: null, volumeMounts: [],
    allowInternetAccess: i.network !== undefined && i.network.policy?.default !== 'deny',
  };
}
