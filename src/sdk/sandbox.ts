// A sandbox of hutchd, from TypeScript: create (or connect), exec, spawn, files, pause/resume,
// time to live, kill.
import { SandboxFiles } from './files.js';
import { fetchPort, portRoute, type PortFetchInit, type PortResponse } from './ports.js';
import { SandboxProcesses } from './processes.js';
import { spawnProcess, type SandboxProcess, type SpawnOptions } from './process.js';
import { Transport, type CallOptions, type ConnectionOptions } from './transport.js';
import { AbortError, HutchApiError } from './errors.js';
import { createNetwork, listNetworks, removeNetwork, SandboxNetwork, type EgressPolicy, type NetworkInfo, type PortSpec, type SandboxNetworkInfo } from './network.js';

/** A sandbox as hutchd describes it. */
export interface SandboxInfo {
  id: string;
  name: string;
  image: string;
  /** What isolates it: container, gvisor. */
  platform: string;
  status: 'ready' | 'running' | 'paused' | 'stopped' | 'creating' | 'deleting';
  createdAt: string;
  startedAt?: string;
  expiresAt?: string;
  labels: Record<string, string>;
  limits: SandboxLimits;
  /** When it stopped, and how its main command ended (absent while running or when unknown). */
  finishedAt?: string;
  /** The main command's exit code; 128+N when a signal N ended it. */
  exitCode?: number;
  /** The signal that ended the main command ('SIGKILL'...). */
  signal?: string;
  /** The main command was killed by the OOM killer. */
  oomKilled?: boolean;
  /** The agent died (killed or crashed) before the main command's exit was recorded; `note` says more. */
  agentDied?: boolean;
  note?: string;
  /** Its network: none, host, bridge or a named one (with its address and published ports on the last two). */
  network: SandboxNetworkInfo;
}

/** Resource limits of a sandbox; 0 = no limit. */
export interface SandboxLimits {
  memoryBytes?: number;
  cpus?: number;
  pids?: number;
  /** Size of the writable layer (a tmpfs: what is written counts against memory); writes past it get ENOSPC. */
  diskBytes?: number;
  /** Files the writable layer may hold (with diskBytes; default one per 4 KiB, at least 4096). */
  diskInodes?: number;
}

/** A snapshot of a sandbox (Sandbox.snapshot). */
export interface SnapshotInfo {
  id: string;
  createdAt: string;
  /** The sandbox it was taken of. */
  source: { id: string; name: string };
  platform: string;
  sizeBytes: number;
  labels: Record<string, string>;
}

/** What a new sandbox is made from. */
export interface CreateOptions {
  /** busybox (default) or an image reference. */
  image?: string;
  /** What isolates it: 'container' (namespaces), 'gvisor' (gVisor's user-space kernel); default: the server's (hutchd --platform). */
  platform?: string;
  name?: string;
  env?: Record<string, string>;
  cwd?: string;
  labels?: Record<string, string>;
  /** Absent: the server's defaults (hutchd --default-memory, --default-cpus, --default-disk). */
  limits?: SandboxLimits;
  /** Time to live in ms (default: the server's); extend it with setTimeout. */
  ttlMs?: number;
  /** The main command (replaces the image's Cmd, follows its Entrypoint); the sandbox stops when it exits. */
  cmd?: string | string[];
  /** Replaces the image's Entrypoint and drops its Cmd; `[]` without cmd: no main command, the sandbox waits for exec. */
  entrypoint?: string[];
  /** none (loopback only), bridge (the internet through NAT), a named network, or host (when hutchd --allow-host-network); default: hutchd --network. */
  network?: string;
  /** Host ports forwarded to ports of the sandbox (bridge or a named network). */
  ports?: PortSpec[];
  /** What it may connect to (default: the internet, not the host's networks); change it later with network.setPolicy. */
  policy?: Partial<EgressPolicy>;
}

/** Resource use of a sandbox, from its cgroup and its writable layer (stats()); null where the kernel does not say. */
export interface SandboxStats {
  /** CPU time used, in ns. */
  cpuUsageNs: number | null;
  memoryBytes: number | null;
  /** null: no memory limit. */
  memoryLimitBytes: number | null;
  /** Peak memory (absent on cgroup v2 kernels before 5.19). */
  memoryMaxBytes?: number;
  pids: number | null;
  /** null: no pids limit. */
  pidsLimit: number | null;
  /** Processes the OOM killer killed in it (absent when the kernel does not count them). */
  oomKills?: number | null;
  /** Bytes and inodes used in the writable layer, and its limits; null: no disk limit. */
  diskBytes?: number | null;
  diskLimitBytes?: number | null;
  diskInodes?: number | null;
  diskInodesLimit?: number | null;
}

/** What exec returns. */
export interface ExecResult { stdout: string; stderr: string; exitCode: number | null; signal: string | null; pid: number; truncated?: boolean }

/** Options of exec: those of spawn; stdin may be a string that is written and then closed. */
export interface ExecOptions extends Omit<SpawnOptions, 'stdin' | 'detached'> {
  stdin?: string;
}

/** Connection plus call options, for the static calls. */
export type ConnectOptions = ConnectionOptions & CallOptions & { transport?: Transport };

function transportOf(o: ConnectOptions): Transport {
  return o.transport ?? new Transport(o);
}

/** A sandbox. */
export class Sandbox {
  /** Its files. */
  readonly files: SandboxFiles;
  /** Its processes: those hutchd started (list, connect, wait, kill) and all of them (ps). */
  readonly processes: SandboxProcesses;
  /** Its egress policy (getPolicy, setPolicy); where it is: info.network. */
  readonly network: SandboxNetwork;

  private constructor(readonly transport: Transport, public info: SandboxInfo) {
    this.files = new SandboxFiles(transport, info.id);
    this.processes = new SandboxProcesses(transport, info.id);
    this.network = new SandboxNetwork(transport, info.id);
  }

  /** Its id. */
  get id(): string {
    return this.info.id;
  }

  /** Creates and starts a sandbox (a warm pool's when hutchd keeps one for the image). */
  static async create(opts: CreateOptions & ConnectOptions = {}): Promise<Sandbox> {
    const t = transportOf(opts);
    const body: CreateOptions = {};
    for (const k of ['image', 'platform', 'name', 'env', 'cwd', 'labels', 'limits', 'ttlMs', 'cmd', 'entrypoint', 'network', 'ports', 'policy'] as const) if (opts[k] !== undefined) (body as Record<string, unknown>)[k] = opts[k];
    return new Sandbox(t, await t.json<SandboxInfo>({ ...callOpts(opts), method: 'POST', path: '/v1/sandboxes', json: body }));
  }

  /** A sandbox that exists (by id or name). */
  static async connect(id: string, opts: ConnectOptions = {}): Promise<Sandbox> {
    const t = transportOf(opts);
    return new Sandbox(t, await t.json<SandboxInfo>({ ...callOpts(opts), method: 'GET', path: `/v1/sandboxes/${encodeURIComponent(id)}` }));
  }

  /** The sandboxes of hutchd, optionally only those with all of `labels` and in one of `states`. */
  static async list(opts: ConnectOptions & { labels?: Record<string, string>; states?: SandboxInfo['status'][] } = {}): Promise<SandboxInfo[]> {
    const t = transportOf(opts);
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(opts.labels ?? {})) q.append('label', `${k}=${v}`);
    if (opts.states?.length) q.set('state', opts.states.join(','));
    const qs = q.toString();
    return (await t.json<{ sandboxes: SandboxInfo[] }>({ ...callOpts(opts), method: 'GET', path: `/v1/sandboxes${qs ? `?${qs}` : ''}` })).sandboxes;
  }

  /**
   * The URL prefix of `port` inside the sandbox through hutchd (append a path): with a TCP transport
   * http://HOST:PORT/v1/sandboxes/ID/ports/PORT, which any HTTP or WebSocket client can use with the
   * bearer token; with a unix socket http+unix://SOCKET:/v1/sandboxes/ID/ports/PORT (the ws+unix form).
   */
  getHost(port: number): string {
    return this.transport.httpUrl(portRoute(this.info.id, port));
  }

  /** A request to a server on the sandbox's loopback (`path` with its query): any network mode, none included. */
  fetch(port: number, path = '/', init: PortFetchInit = {}): Promise<PortResponse> {
    return fetchPort(this.transport, this.info.id, port, path, init);
  }

  private route(suffix = ''): string {
    return `/v1/sandboxes/${encodeURIComponent(this.info.id)}${suffix}`;
  }

  /**
   * Runs a command to its end: a string runs with /bin/sh -c, a list as is. With onStdout/onStderr
   * the output streams as it comes (over a WebSocket); without, it is one request. timeoutMs kills
   * the command when it runs longer (TimeoutError); an abort kills it too (AbortError).
   */
  async exec(cmd: string | string[], opts: ExecOptions = {}): Promise<ExecResult> {
    // Streams when asked to, and for stdin that would not fit in one JSON request.
    if (opts.onStdout || opts.onStderr || opts.tty || (opts.stdin !== undefined && opts.stdin.length > MAX_INLINE_STDIN)) return this.execStreaming(cmd, opts);
    const body = { cmd, wait: true, ...(opts.env ? { env: opts.env } : {}), ...(opts.cwd ? { cwd: opts.cwd } : {}), ...(opts.user !== undefined ? { user: String(opts.user) } : {}), ...(opts.stdin !== undefined ? { stdin: opts.stdin } : {}), ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}) };
    // The server enforces timeoutMs (and kills); the client's own timer is a backstop a little later.
    const clientTimeout = opts.timeoutMs ? opts.timeoutMs + 5000 : 0;
    return this.transport.json<ExecResult>({ ...(opts.signal ? { signal: opts.signal } : {}), timeoutMs: clientTimeout, method: 'POST', path: this.route('/processes'), json: body });
  }

  private async execStreaming(cmd: string | string[], opts: ExecOptions): Promise<ExecResult> {
    const out: Buffer[] = [], err: Buffer[] = [];
    const { stdin, onStdout, onStderr, ...rest } = opts;
    const proc = await this.spawn(cmd, {
      ...rest, stdin: stdin !== undefined,
      onStdout: (d) => { out.push(d); onStdout?.(d); },
      onStderr: (d) => { err.push(d); onStderr?.(d); },
    });
    if (stdin !== undefined) {
      proc.writeStdin(stdin);
      proc.closeStdin();
    }
    const status = await proc.wait();
    return { stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), exitCode: status.exitCode, signal: status.signal, pid: proc.pid };
  }

  /**
   * Starts a command and streams it: iterate the process (or its stdout/stderr), or pass callbacks;
   * writeStdin/closeStdin/resize/kill; wait() for its exit. If the client goes away, hutchd kills it
   * (unless `detached`: then it runs on, and processes.connect(pid) reattaches).
   * timeoutMs and signal cover the stream's whole life (no timeout unless given).
   */
  spawn(cmd: string | string[], opts: SpawnOptions = {}): Promise<SandboxProcess> {
    return spawnProcess(this.transport, this.info.id, cmd, { ...opts, timeoutMs: opts.timeoutMs ?? 0 });
  }

  /** Fetches its current description (status, expiry). */
  async refresh(opts: CallOptions = {}): Promise<SandboxInfo> {
    this.info = await this.transport.json<SandboxInfo>({ ...opts, method: 'GET', path: this.route() });
    return this.info;
  }

  /** Freezes every process in it. */
  async pause(opts: CallOptions = {}): Promise<void> {
    this.info = await this.transport.json<SandboxInfo>({ ...opts, method: 'POST', path: this.route('/pause') });
  }

  /**
   * Checkpoints it (gvisor platform): its processes with their memory and its writable layer, as a
   * snapshot that Sandbox.fromSnapshot restores (several times: a fork). It stops unless leaveRunning.
   */
  async snapshot(opts: CallOptions & { leaveRunning?: boolean } = {}): Promise<SnapshotInfo> {
    const { leaveRunning, ...call } = opts;
    const snap = await this.transport.json<SnapshotInfo>({ ...call, method: 'POST', path: this.route('/snapshot'), json: leaveRunning ? { leaveRunning } : {} });
    if (!leaveRunning) this.info = { ...this.info, status: 'stopped' };
    return snap;
  }

  /** A new running sandbox from a snapshot: its processes go on where they were. */
  static async fromSnapshot(snapshotId: string, opts: ConnectOptions & { name?: string; labels?: Record<string, string>; ttlMs?: number } = {}): Promise<Sandbox> {
    const t = transportOf(opts);
    const body: Record<string, unknown> = {};
    for (const k of ['name', 'labels', 'ttlMs'] as const) if (opts[k] !== undefined) body[k] = opts[k];
    return new Sandbox(t, await t.json<SandboxInfo>({ ...callOpts(opts), method: 'POST', path: `/v1/snapshots/${encodeURIComponent(snapshotId)}/sandboxes`, json: body }));
  }

  /** The snapshots of hutchd. */
  static async listSnapshots(opts: ConnectOptions = {}): Promise<SnapshotInfo[]> {
    return (await transportOf(opts).json<{ snapshots: SnapshotInfo[] }>({ ...callOpts(opts), method: 'GET', path: '/v1/snapshots' })).snapshots;
  }

  /** Removes a snapshot (sandboxes restored from it stay). */
  static async deleteSnapshot(snapshotId: string, opts: ConnectOptions = {}): Promise<void> {
    await transportOf(opts).json({ ...callOpts(opts), method: 'DELETE', path: `/v1/snapshots/${encodeURIComponent(snapshotId)}` });
  }

  /** The networks of hutchd (bridge and the named ones), with how many sandboxes each has. */
  static listNetworks(opts: ConnectOptions = {}): Promise<NetworkInfo[]> {
    return listNetworks(transportOf(opts), callOpts(opts));
  }

  /** Makes a named network: its sandboxes reach each other by name and the internet; `subnet` default: the next free /24 of hutch's. */
  static createNetwork(name: string, opts: ConnectOptions & { subnet?: string } = {}): Promise<NetworkInfo> {
    return createNetwork(transportOf(opts), name, opts.subnet, callOpts(opts));
  }

  /** Removes a named network; refused (ESTATE, 409) while sandboxes are on it. */
  static removeNetwork(name: string, opts: ConnectOptions = {}): Promise<void> {
    return removeNetwork(transportOf(opts), name, callOpts(opts));
  }

  /** Thaws it. */
  async resume(opts: CallOptions = {}): Promise<void> {
    this.info = await this.transport.json<SandboxInfo>({ ...opts, method: 'POST', path: this.route('/resume') });
  }

  /** Sets its time to live to `ttlMs` from now; returns the new expiry (ISO time). */
  async setTimeout(ttlMs: number, opts: CallOptions = {}): Promise<string> {
    const r = await this.transport.json<{ expiresAt: string }>({ ...opts, method: 'POST', path: this.route('/ttl'), json: { ttlMs } });
    this.info.expiresAt = r.expiresAt;
    return r.expiresAt;
  }

  /** cpu, memory and pids, with their limits. */
  stats(opts: CallOptions = {}): Promise<SandboxStats> {
    return this.transport.json<SandboxStats>({ ...opts, method: 'GET', path: this.route('/stats') });
  }

  /** Removes it (whatever runs in it is killed). */
  async kill(opts: CallOptions = {}): Promise<void> {
    await this.transport.json({ ...opts, method: 'DELETE', path: this.route() });
  }
}

/** Stdin of exec sent inside the JSON request up to this many characters (hutchd takes 1 MiB of JSON). */
const MAX_INLINE_STDIN = 256 * 1024;

function callOpts(o: CallOptions): CallOptions {
  return { ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}), ...(o.signal ? { signal: o.signal } : {}) };
}

export { AbortError, HutchApiError };
