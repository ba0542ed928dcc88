// What every route of hutchd works with: the engine, one SandboxCalls for the server's life, the
// event bus, metrics, the TTL keeper, the warm pool, the process table, and the limits.
import type { Engine, SandboxCalls, SandboxInfo } from '../engine/index.js';
import { HutchError } from '../errors.js';
import type { Limits } from '../platform/index.js';
import type { PortMapping } from '../net/index.js';
import { MANAGED_LABEL, POOL_LABEL, TTL_LABEL, type EventBus, type LifetimeKeeper, type Metrics, type WarmPool } from './parts.js';
import type { OutputBudget } from './output-budget.js';
import type { ProcessTable } from './processes.js';
import { endOf, type SandboxEnd } from './sandbox-end.js';

/** Limits and defaults of the API. */
/** What hutchd does about networks (HutchdOptions.network). */
export interface NetworkSettings { defaultMode: string; allowHost: boolean }

export interface ApiLimits {
  /** Largest JSON request body (bytes). */
  maxJsonBytes: number;
  /** Largest file or archive upload (bytes). */
  maxUploadBytes: number;
  /** TTL of a sandbox when the client gives none, and the most a client may ask for (ms). */
  defaultTtlMs: number;
  maxTtlMs: number;
  /** Output kept per stream of a `wait: true` command; past it the rest is dropped and `truncated` set. */
  maxWaitOutputBytes: number;
  /** Output held for all `wait: true` commands together; past it a command is killed with EBUSY. */
  maxBufferedOutputBytes: number;
  /** Limits of a sandbox whose create request does not give them (hutchd --default-memory, --default-cpus, --default-disk). */
  defaultSandboxLimits: Limits;
}

/** The shared services of the routes. */
export interface Services {
  engine: Engine;
  calls: SandboxCalls;
  events: EventBus;
  metrics: Metrics;
  lifetime: LifetimeKeeper;
  pool: WarmPool;
  processes: ProcessTable;
  limits: ApiLimits;
  /** The memory that `wait: true` commands share for their output (limits.maxBufferedOutputBytes). */
  outputBudget: OutputBudget;
  /** Ids (by the ref a client used) already checked to be this hutchd's: the exec path skips the inspect. */
  servedIds: Map<string, string>;
  /** The host id range of every sandbox this hutchd makes (HutchdOptions.idRange). */
  idRange: 'shared' | 'private';
  /** The network of a create that names none, and whether `host` may be asked for. */
  network: NetworkSettings;
}

/** A sandbox as the API shows it. */
export interface SandboxView extends SandboxEnd {
  id: string;
  name: string;
  image: string;
  /** What isolates it: container, gvisor (docs/platforms.md). */
  platform: string;
  status: string;
  createdAt: string;
  startedAt?: string;
  expiresAt?: string;
  labels: Record<string, string>;
  limits: Limits;
  note?: string;
  /** Its network: none, host, bridge or a named one, with its address and published ports on the last two. */
  network: { name: string; address?: string; ports?: PortMapping[] };
}

/** Labels of hutch's own (hidden from the API's label map, refused from clients). */
export const RESERVED_LABEL_PREFIX = 'dev.hutch.';

/** True for a sandbox of this hutchd that a client may see (not another tool's, not an unclaimed pool one). */
export function isServed(info: SandboxInfo): boolean {
  return info.labels?.[MANAGED_LABEL] === 'hutchd' && info.labels[POOL_LABEL] === undefined;
}

/** The API's view of a sandbox. */
export function viewOf(info: SandboxInfo): SandboxView {
  const labels = Object.fromEntries(Object.entries(info.labels ?? {}).filter(([k]) => !k.startsWith(RESERVED_LABEL_PREFIX)));
  const expiresAt = info.labels?.[TTL_LABEL];
  return {
    id: info.id, name: info.name, image: info.image?.ref ?? (info.rootfs.endsWith('/busybox') ? 'busybox' : info.rootfs), platform: info.platform ?? 'container',
    status: info.status, createdAt: info.createdAt, ...(info.startedAt ? { startedAt: info.startedAt } : {}),
    ...(expiresAt ? { expiresAt } : {}), labels, limits: info.limits, ...endOf(info), ...(info.note ? { note: info.note } : {}),
    network: info.network ? { name: info.network.name, ...(info.network.address ? { address: info.network.address } : {}), ports: info.network.ports ?? [] } : { name: info.hardening.network },
  };
}

/** A sandbox of this hutchd by id or name; ENOTFOUND for anything else (also other tools' sandboxes). */
export async function servedSandbox(s: Services, ref: string): Promise<SandboxInfo> {
  let info: SandboxInfo;
  try {
    info = await s.engine.inspect(ref);
  } catch (e) {
    if (e instanceof Error && (e as HutchError).code === 'ENOTFOUND') throw new HutchError('ENOTFOUND', `sandbox ${ref} not found`, { id: ref });
    throw e;
  }
  if (!isServed(info)) throw new HutchError('ENOTFOUND', `sandbox ${ref} not found`, { id: ref });
  return info;
}

/**
 * The id of a sandbox of this hutchd, checked once per ref and then remembered (the calls that use
 * it check the sandbox's state themselves). Forgotten when the sandbox is removed or expires.
 */
export async function servedId(s: Services, ref: string): Promise<string> {
  const known = s.servedIds.get(ref);
  if (known !== undefined) return known;
  const { id } = await servedSandbox(s, ref);
  if (s.servedIds.size > 100_000) s.servedIds.clear(); // bounded: refs are the clients' choice
  s.servedIds.set(ref, id);
  return id;
}

/** Forgets the remembered refs of a removed sandbox. */
export function forgetServed(s: Services, id: string): void {
  for (const [ref, v] of s.servedIds) if (v === id) s.servedIds.delete(ref);
}
