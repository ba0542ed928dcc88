// Sandboxes: create (a warm pool claim when one is ready), get, list with filters, delete,
// pause/resume, TTL, stats.
import { performance } from 'node:perf_hooks';
import type { SandboxInfo } from '../engine/index.js';
import { HutchError } from '../errors.js';
import type { Limits } from '../platform/index.js';
import type { EgressPolicy, PortMapping } from '../net/index.js';
import { commandOf, envList, optNumber, optString, optStringMap, readJson, sendJson } from './http.js';
import type { Route } from './router.js';
import { networkOptionsOf } from './routes-network.js';
import { isServed, RESERVED_LABEL_PREFIX, servedSandbox, viewOf, type Services } from './services.js';

const LIMIT_KEYS = ['memoryBytes', 'cpus', 'pids', 'diskBytes', 'diskInodes'];

/**
 * Limits from a request ({ memoryBytes?, cpus?, pids?, diskBytes?, diskInodes? }) over the server's
 * defaults (hutchd --default-memory, --default-cpus, --default-disk); 0 = no limit.
 */
function limitsOf(s: Services, body: Record<string, unknown>): Limits | undefined {
  const v = body['limits'];
  const defaults = s.limits.defaultSandboxLimits;
  if (v === undefined || v === null) return Object.keys(defaults).length ? { ...defaults } : undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw new HutchError('EINVAL', `limits must be an object { ${LIMIT_KEYS.map((k) => `${k}?`).join(', ')} }`);
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!LIMIT_KEYS.includes(k)) throw new HutchError('EINVAL', `unknown limit ${k.slice(0, 80)}: use ${LIMIT_KEYS.join(', ')}`);
  const out: Limits = { ...defaults };
  const ranges: Record<string, [number, number]> = { memoryBytes: [0, Number.MAX_SAFE_INTEGER], cpus: [0, 1e6], pids: [0, 1e9], diskBytes: [0, Number.MAX_SAFE_INTEGER], diskInodes: [0, 2 ** 32] };
  for (const k of LIMIT_KEYS) {
    const n = optNumber(o, k, ranges[k]![0], ranges[k]![1]);
    if (n !== undefined) out[k as keyof Limits] = n;
  }
  return out;
}

/** The TTL asked for, within [1 s, maxTtlMs]; the default when none. */
export function ttlOf(s: Services, body: Record<string, unknown>): number {
  const ttl = optNumber(body, 'ttlMs', 1000, Number.MAX_SAFE_INTEGER) ?? s.limits.defaultTtlMs;
  if (ttl > s.limits.maxTtlMs) throw new HutchError('EINVAL', `ttlMs ${ttl} is more than the most this server allows (${s.limits.maxTtlMs})`);
  return ttl;
}

const CREATE_KEYS = ['image', 'name', 'limits', 'env', 'cwd', 'labels', 'ttlMs', 'cmd', 'entrypoint', 'platform', 'network', 'ports', 'policy'];

/** The main command fields, as docker's: `cmd` replaces the image's Cmd, `entrypoint` its Entrypoint ([] = none, and no Cmd). */
function mainOf(body: Record<string, unknown>): { cmd?: string[]; entrypoint?: string[] } {
  const cmd = body['cmd'] === undefined || body['cmd'] === null ? undefined : commandOf(body, 'cmd');
  const e = body['entrypoint'];
  if (e !== undefined && e !== null && (!Array.isArray(e) || e.some((a) => typeof a !== 'string'))) {
    throw new HutchError('EINVAL', 'entrypoint must be a list of strings ([] for none)');
  }
  return { ...(cmd ? { cmd } : {}), ...(Array.isArray(e) ? { entrypoint: e as string[] } : {}) };
}

async function create(s: Services, body: Record<string, unknown>): Promise<{ info: SandboxInfo; source: 'pool' | 'cold' }> {
  for (const k of Object.keys(body)) if (!CREATE_KEYS.includes(k)) throw new HutchError('EINVAL', `unknown field ${k.slice(0, 80)} in create request (fields: ${CREATE_KEYS.join(', ')})`);
  const image = optString(body, 'image', 1024) ?? 'busybox';
  if (image.startsWith('/') || image.startsWith('.')) throw new HutchError('EINVAL', `image ${image.slice(0, 200)}: a host path is not an image; use busybox or an image reference`);
  const name = optString(body, 'name', 63);
  const platform = optString(body, 'platform', 40) ?? s.engine.platformName;
  const { privateIds } = await s.engine.capabilities(platform); // an unknown platform fails here, before any claim
  const cwd = optString(body, 'cwd');
  const env = envList(optStringMap(body, 'env'));
  const userLabels = optStringMap(body, 'labels') ?? {};
  for (const k of Object.keys(userLabels)) {
    if (k.startsWith(RESERVED_LABEL_PREFIX)) throw new HutchError('EINVAL', `label ${k.slice(0, 80)}: keys starting with ${RESERVED_LABEL_PREFIX} are hutch's own`);
  }
  const labels = { ...userLabels, ...s.lifetime.labelsFor(ttlOf(s, body)) };
  return createServed(s, { image, ...(name ? { name } : {}), platform, privateIds, ...(cwd ? { cwd } : {}), env, labels, limits: limitsOf(s, body), ...mainOf(body), ...networkOptionsOf(s, body) });
}

/** A create already checked: what the v1 API and the E2B control plane (e2b/control.ts) both make. */
export interface CreateSpec {
  image: string;
  name?: string;
  platform: string;
  /** Whether the platform gives sandboxes id ranges of their own (engine.capabilities). */
  privateIds: boolean;
  cwd?: string;
  env: string[];
  /** Every label, hutch's own (TTL) included. */
  labels: Record<string, string>;
  limits: Limits | undefined;
  cmd?: string[];
  entrypoint?: string[];
  network: string;
  ports?: PortMapping[];
  policy?: EgressPolicy;
}

/** Makes and starts a sandbox of this hutchd: a warm pool claim when one fits, else a cold create. */
export async function createServed(s: Services, spec: CreateSpec): Promise<{ info: SandboxInfo; source: 'pool' | 'cold' }> {
  const { image, name, platform, cwd, env, labels, limits } = spec;
  const main = { ...(spec.cmd ? { cmd: spec.cmd } : {}), ...(spec.entrypoint ? { entrypoint: spec.entrypoint } : {}) };
  const net = { network: spec.network, ...(spec.ports ? { ports: spec.ports } : {}), ...(spec.policy ? { policy: spec.policy } : {}) };
  // Pooled sandboxes are on the server's default network with no published port and the default policy.
  if (name === undefined && net.network === s.network.defaultMode && !net.ports && !net.policy) {
    const claimed = await s.pool.claim(image, { ...(limits ? { limits } : {}), env, ...(cwd ? { cwd } : {}), labels, ...main, platform });
    if (claimed) {
      // A cold create makes a missing working dir; a pooled sandbox was made before this one was known.
      if (cwd) await makeClaimedCwd(s, claimed.id, cwd);
      return { info: claimed, source: 'pool' };
    }
  }
  const made = await s.engine.create({
    rootfs: image, ...(name ? { name } : {}), ...(cwd ? { cwd } : {}), env, labels, ...(limits ? { limits } : {}), platform, ...net,
    hardening: { idRange: spec.privateIds ? s.idRange : 'shared' },
    ...(main.cmd ? { command: main.cmd } : {}), ...(main.entrypoint ? { entrypoint: main.entrypoint } : {}),
  });
  s.events.publish({ type: 'created', sandboxId: made.id, data: { image, platform } });
  try {
    const info = await s.engine.start(made.id);
    s.events.publish({ type: 'started', sandboxId: made.id });
    return { info, source: 'cold' };
  } catch (e) {
    await s.engine.remove(made.id, true);
    s.events.publish({ type: 'removed', sandboxId: made.id, data: { reason: 'start failed' } });
    throw e;
  }
}

/** Makes `cwd` in a claimed sandbox (root's, 0755, as at create); a sandbox it fails in is removed. */
async function makeClaimedCwd(s: Services, id: string, cwd: string): Promise<void> {
  try {
    await (await s.calls.files(id)).mkdir(cwd, { parents: true, mode: 0o755 });
  } catch (e) {
    await removeSandbox(s, id, 'its working directory could not be made');
    throw e;
  }
}

/** Filters of GET /v1/sandboxes: label=k=v (repeatable, all must match) and state=. */
function matches(info: SandboxInfo, url: URL): boolean {
  for (const l of url.searchParams.getAll('label')) {
    const eq = l.indexOf('=');
    const [k, v] = eq === -1 ? [l, undefined] : [l.slice(0, eq), l.slice(eq + 1)];
    const have = info.labels?.[k];
    if (have === undefined || (v !== undefined && have !== v)) return false;
  }
  const state = url.searchParams.get('state');
  return state === null || state.split(',').includes(info.status);
}

/** Removes a sandbox of this hutchd (whatever its state). */
export async function removeSandbox(s: Services, id: string, reason: string): Promise<void> {
  await s.engine.remove(id, true);
  s.processes.dropSandbox(id);
  s.events.publish({ type: 'removed', sandboxId: id, data: { reason } });
}

/** The routes. */
export function sandboxRoutes(s: Services): Route[] {
  return [
    {
      method: 'POST', path: '/v1/sandboxes', handle: async ({ req, res }) => {
        const body = await readJson(req, s.limits.maxJsonBytes);
        const t0 = performance.now();
        let gone = false;
        res.once('close', () => { gone = !res.writableFinished; });
        const { info, source } = await create(s, body);
        s.metrics.observeCreate((performance.now() - t0) / 1000, source);
        if (gone) {
          // The client gave up (aborted, timed out, died) while it was made: nobody will ever know its id.
          await removeSandbox(s, info.id, 'client gone before the create was answered');
          return;
        }
        // Connect to its agent now, while the answer goes out, so that the client's first call finds
        // the connection open (a failure shows on that call).
        s.calls.files(info.id).catch(() => undefined);
        sendJson(res, 201, viewOf(info));
      },
    },
    {
      method: 'GET', path: '/v1/sandboxes', handle: async ({ res, url }) => {
        const all = (await s.engine.list()).filter(isServed);
        sendJson(res, 200, { sandboxes: all.filter((i) => matches(i, url)).map(viewOf) });
      },
    },
    {
      method: 'GET', path: '/v1/sandboxes/{id}', handle: async ({ res, params }) => {
        sendJson(res, 200, viewOf(await servedSandbox(s, params['id']!)));
      },
    },
    {
      method: 'DELETE', path: '/v1/sandboxes/{id}', handle: async ({ res, params }) => {
        const info = await servedSandbox(s, params['id']!);
        await removeSandbox(s, info.id, 'deleted');
        res.writeHead(204).end();
      },
    },
    {
      method: 'POST', path: '/v1/sandboxes/{id}/pause', handle: async ({ res, params }) => {
        const info = await servedSandbox(s, params['id']!);
        const after = await s.engine.pause(info.id);
        s.events.publish({ type: 'paused', sandboxId: info.id });
        sendJson(res, 200, viewOf(after));
      },
    },
    {
      method: 'POST', path: '/v1/sandboxes/{id}/resume', handle: async ({ res, params }) => {
        const info = await servedSandbox(s, params['id']!);
        const after = await s.engine.resume(info.id);
        s.events.publish({ type: 'resumed', sandboxId: info.id });
        sendJson(res, 200, viewOf(after));
      },
    },
    {
      method: 'POST', path: '/v1/sandboxes/{id}/ttl', handle: async ({ req, res, params }) => {
        const body = await readJson(req, s.limits.maxJsonBytes);
        const info = await servedSandbox(s, params['id']!);
        if (body['ttlMs'] === undefined) throw new HutchError('EINVAL', 'ttlMs is required');
        const expiresAt = await s.lifetime.setTtl(info.id, ttlOf(s, body));
        sendJson(res, 200, { id: info.id, expiresAt });
      },
    },
    {
      method: 'GET', path: '/v1/sandboxes/{id}/stats', handle: async ({ res, params }) => {
        const info = await servedSandbox(s, params['id']!);
        sendJson(res, 200, await s.calls.stats(info.id));
      },
    },
  ];
}
