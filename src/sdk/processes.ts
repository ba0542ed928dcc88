// The processes of a sandbox (sandbox.processes): those hutchd started (list, reattach by pid, wait,
// signal) and every process in the sandbox as its agent sees them (ps).
import { attachProcess, type AttachOptions, type ExitInfo, type SandboxProcess } from './process.js';
import type { CallOptions, Transport } from './transport.js';

/** A process that hutchd started (spawn, exec), as processes.list gives it. */
export interface StartedProcess {
  pid: number;
  argv: string[];
  tty: boolean;
  /** It outlives its clients (spawn with detached, or started by the API without a client). */
  detached: boolean;
  /** A client is attached to its output now (connect fails with 409 ESTATE while one is). */
  attached: boolean;
  /** ISO time. */
  startedAt: string;
  running: boolean;
  /** Once it exited (hutchd keeps exited ones for 5 minutes): as in ExitInfo. */
  exitCode: number | null;
  signal: string | null;
}

/** A process of the sandbox as its agent sees it (processes.ps). */
export interface ProcessInfo { pid: number; ppid: number; pgid: number; uid: number; state: string; comm: string; argv: string[] }

/** Process calls of one sandbox (sandbox.processes). */
export class SandboxProcesses {
  /** @internal Use sandbox.processes. */
  constructor(private readonly t: Transport, private readonly id: string) {}

  private route(suffix = ''): string {
    return `/v1/sandboxes/${encodeURIComponent(this.id)}/processes${suffix}`;
  }

  /** The processes hutchd started in the sandbox, running and recently exited, oldest first. */
  async list(opts: CallOptions = {}): Promise<StartedProcess[]> {
    return (await this.t.json<{ processes: StartedProcess[] }>({ ...opts, method: 'GET', path: this.route('/started') })).processes;
  }

  /**
   * Reattaches to a process hutchd started and that no client is attached to (a detached spawn whose
   * client went away): the output hutchd kept for it comes first, then what follows, then its exit.
   * 404 NotFoundError for a pid hutchd did not start (or forgot), 409 ESTATE while another client is attached.
   */
  connect(pid: number, opts: AttachOptions = {}): Promise<SandboxProcess> {
    return attachProcess(this.t, this.id, pid, { ...opts, timeoutMs: opts.timeoutMs ?? 0 });
  }

  /** Waits for a process to exit (no timeout unless given). */
  async wait(pid: number, opts: CallOptions = {}): Promise<ExitInfo> {
    const r = await this.t.json<ExitInfo & { pid: number }>({ timeoutMs: 0, ...opts, method: 'GET', path: this.route(`/${pid}/wait`) });
    const { pid: _pid, ...exit } = r;
    return exit;
  }

  /** Sends a signal (default SIGTERM) to a process, or with `group` to its process group. */
  async kill(pid: number, signal: string = 'SIGTERM', opts: CallOptions & { group?: boolean } = {}): Promise<void> {
    await this.t.json({ ...opts, method: 'POST', path: this.route(`/${pid}/signal`), json: { signal, ...(opts.group ? { group: true } : {}) } });
  }

  /** Every process in the sandbox as its agent sees it (whoever started it). */
  async ps(opts: CallOptions = {}): Promise<ProcessInfo[]> {
    return (await this.t.json<{ processes: ProcessInfo[] }>({ ...opts, method: 'GET', path: this.route() })).processes;
  }
}
