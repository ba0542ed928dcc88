// envd's process service (process.Process): Start and Connect stream a process's events; List,
// SendInput, CloseStdin, SendSignal and Update act on a running one, chosen by pid or tag. Processes
// outlive their streams (E2B's background commands) in hutchd's ProcessTable, keeping their latest
// output; several streams may follow one process.
import type { ExitStatus } from '../../agent/index.js';
import type { OutputSink, ProcessEntry } from '../processes.js';
import { startProcess } from '../routes-processes.js';
import type { EnvdCall, EnvdHandler } from './types.js';
import { accountFor, accountsOf } from './accounts.js';
import { ConnectFault, ConnectStream, invalid, readStreamRequest, readUnary, sendUnary, sendUnaryError } from './connect.js';

/** What envd reports of a process it started: its config and tag. */
interface Started { config: { cmd: string; args: string[]; envs: Record<string, string>; cwd?: string }; tag?: string; stdin: boolean }
const started = new WeakMap<ProcessEntry, Started>();

const KEEPALIVE = { event: { keepalive: {} } };

/** Go's wording of how a process ended, as envd reports it ("exit status 1", "signal: killed"). */
function endEvent(st: ExitStatus): object {
  const names: Record<string, string> = { SIGKILL: 'killed', SIGTERM: 'terminated', SIGINT: 'interrupt', SIGHUP: 'hangup', SIGQUIT: 'quit', SIGPIPE: 'broken pipe', SIGABRT: 'aborted' };
  const status = st.signal === null ? `exit status ${st.exitCode ?? -1}` : `signal: ${names[st.signal] ?? st.signal.toLowerCase()}`;
  return { event: { end: { exitCode: st.exitCode ?? -1, exited: st.signal === null, status, ...(st.signal !== null ? { error: status } : {}) } } };
}

/** Forwards a process's output to every stream that follows it; paused while any of them is slow. */
class Fan implements OutputSink {
  readonly streams = new Set<ConnectStream>();
  private waiting = false;
  constructor(private readonly entry: ProcessEntry) {}

  write(fd: 1 | 2, data: Buffer): boolean {
    const key = this.entry.handle.tty ? 'pty' : fd === 1 ? 'stdout' : 'stderr';
    const message = { event: { data: { [key]: data.toString('base64') } } };
    let slow = false;
    for (const st of this.streams) slow = !st.send(message) || slow;
    if (!slow) return true;
    if (!this.waiting) {
      this.waiting = true;
      void Promise.all([...this.streams].map((st) => st.drained())).then(() => { this.waiting = false; this.entry.drained(); });
    }
    return false;
  }

  exit(status: ExitStatus): void {
    for (const st of this.streams) { st.send(endEvent(status)); st.end(); }
    this.streams.clear();
    fans.delete(this.entry);
  }

  /** A stream follows the process from now on. */
  join(st: ConnectStream): void {
    this.streams.add(st);
    st.gone.signal.addEventListener('abort', () => {
      this.streams.delete(st);
      if (this.streams.size === 0 && fans.get(this.entry) === this) {
        fans.delete(this.entry);
        this.entry.detach(this); // it runs on, keeping its latest output
      }
    });
  }
}
const fans = new WeakMap<ProcessEntry, Fan>();

/** Makes `st` follow `entry`: the first stream attaches to the process, later ones join it. */
function follow(entry: ProcessEntry, st: ConnectStream): void {
  st.send({ event: { start: { pid: entry.pid } } });
  let fan = fans.get(entry);
  if (fan) return fan.join(st);
  if (entry.attached) throw new ConnectFault('failed_precondition', `process ${entry.pid} is attached to another client of hutchd`);
  fan = new Fan(entry);
  fans.set(entry, fan);
  fan.join(st);
  entry.attach(fan);
}

/** A running process of the sandbox by its selector ({pid} or {tag}); not_found else. */
function selected(call: EnvdCall, m: Record<string, unknown>): ProcessEntry {
  const sel = m['process'];
  if (typeof sel !== 'object' || sel === null) throw invalid('process (a selector with pid or tag) is required');
  const { pid, tag } = sel as { pid?: unknown; tag?: unknown };
  const running = call.s.processes.of(call.sandboxId).filter((e) => e.exitStatus === undefined);
  if (pid !== undefined) {
    if (!Number.isInteger(pid) || (pid as number) < 1) throw invalid('process.pid must be a positive integer');
    const e = running.find((r) => r.pid === pid);
    if (!e) throw new ConnectFault('not_found', `process with pid ${String(pid)} not found`);
    return e;
  }
  if (typeof tag === 'string') {
    const e = running.find((r) => started.get(r)?.tag === tag);
    if (!e) throw new ConnectFault('not_found', `process with tag ${JSON.stringify(tag.slice(0, 64))} not found`);
    return e;
  }
  throw invalid('process selector needs pid or tag');
}

/** A string map field (proto map<string,string>). */
function stringMap(v: unknown, field: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw invalid(`${field} must be an object of strings`);
  for (const [k, x] of Object.entries(v)) if (typeof x !== 'string' || k === '' || k.includes('=')) throw invalid(`${field}.${k.slice(0, 40)} must be a string, its name without '='`);
  return v as Record<string, string>;
}

/** Sandboxes known to lack /bin/bash (the SDK runs every command with it). */
const noBash = new Map<string, boolean>();

/** Starts the process of a Start request and streams its events. */
async function start(call: EnvdCall): Promise<void> {
  const { s, sandboxId } = call;
  const st = new ConnectStream(call.req, call.res, KEEPALIVE);
  try {
    const m = await readStreamRequest(call.req, s.limits.maxJsonBytes);
    const p = m['process'] as Record<string, unknown> | undefined;
    if (typeof p !== 'object' || p === null || typeof p['cmd'] !== 'string' || p['cmd'] === '') throw invalid('process.cmd is required');
    const args = p['args'] ?? [];
    if (!Array.isArray(args) || !args.every((a) => typeof a === 'string')) throw invalid('process.args must be an array of strings');
    const envs = stringMap(p['envs'], 'process.envs');
    if (p['cwd'] !== undefined && (typeof p['cwd'] !== 'string' || p['cwd'] === '')) throw invalid('process.cwd must be a non-empty string');
    const size = (m['pty'] as { size?: { cols?: unknown; rows?: unknown } } | undefined)?.size;
    const tty = m['pty'] === undefined || m['pty'] === null ? undefined : { cols: dim(size?.cols, 'cols'), rows: dim(size?.rows, 'rows') };
    if (m['tag'] !== undefined && typeof m['tag'] !== 'string') throw invalid('tag must be a string');
    const stdin = tty !== undefined || m['stdin'] !== false;
    const files = await s.calls.files(sandboxId);
    const account = accountFor(await accountsOf(files), call.user);
    let cwd = p['cwd'] as string | undefined;
    if (cwd === undefined && (await files.stat(account.home, { follow: true }).catch(() => null))?.type === 'dir') cwd = account.home;
    let argv = [p['cmd'], ...args as string[]];
    if (p['cmd'] === '/bin/bash') {
      // busybox images have no bash: its sh runs the command (-l, a login shell, dropped).
      if (!noBash.has(sandboxId)) noBash.set(sandboxId, (await files.stat('/bin/bash', { follow: true }).catch(() => null)) === null);
      if (noBash.get(sandboxId)) argv = ['/bin/sh', ...argv.slice(1).filter((a) => a !== '-l' && a !== '--login')];
    }
    const entry = await startProcess(s, sandboxId, {
      argv, env: Object.entries(envs).map(([k, v]) => `${k}=${v}`), stdin, detached: true,
      ...(cwd !== undefined ? { cwd } : {}), ...(call.user ? { user: account.name } : {}), ...(tty ? { tty } : {}),
    }, 'keep-tail');
    const config = { cmd: p['cmd'], args: args as string[], envs, ...(p['cwd'] !== undefined ? { cwd: p['cwd'] as string } : {}) };
    started.set(entry, { config, stdin, ...(typeof m['tag'] === 'string' ? { tag: m['tag'] } : {}) });
    if (st.gone.signal.aborted) return; // the client left while it started: it runs on
    follow(entry, st);
  } catch (e) {
    st.end(e);
  }
}

function dim(v: unknown, name: string): number {
  if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > 10000) throw invalid(`pty.size.${name} must be an integer from 1 to 10000`);
  return v as number;
}

/** Streams the further events of a running process. */
async function connect(call: EnvdCall): Promise<void> {
  const st = new ConnectStream(call.req, call.res, KEEPALIVE);
  try {
    const m = await readStreamRequest(call.req, call.s.limits.maxJsonBytes);
    follow(selected(call, m), st);
  } catch (e) {
    st.end(e);
  }
}

/** A unary handler of `fn`'s answer. */
function unary(fn: (call: EnvdCall, m: Record<string, unknown>) => Promise<object>): EnvdHandler {
  return async (call) => {
    try {
      const m = await readUnary(call.req, call.s.limits.maxJsonBytes);
      sendUnary(call.res, await fn(call, m));
    } catch (e) {
      sendUnaryError(call.res, e);
    }
  };
}

const SIGNALS: Record<string, string> = { SIGNAL_SIGKILL: 'SIGKILL', SIGNAL_SIGTERM: 'SIGTERM', 9: 'SIGKILL', 15: 'SIGTERM' };

/** The process service's handlers, by path. */
export const processHandlers: Record<string, EnvdHandler> = {
  '/process.Process/Start': start,
  '/process.Process/Connect': connect,
  '/process.Process/List': unary(async (call) => {
    const running = call.s.processes.of(call.sandboxId).filter((e) => e.exitStatus === undefined);
    return {
      processes: running.map((e) => {
        const info = started.get(e);
        const config = info?.config ?? { cmd: e.argv[0] ?? '', args: e.argv.slice(1), envs: {} };
        return { pid: e.pid, config, ...(info?.tag !== undefined ? { tag: info.tag } : {}) };
      }),
    };
  }),
  '/process.Process/SendInput': unary(async (call, m) => {
    const e = selected(call, m);
    const input = m['input'] as { stdin?: unknown; pty?: unknown } | undefined;
    const data = input?.stdin ?? input?.pty;
    if (typeof data !== 'string') throw invalid('input.stdin or input.pty (base64 bytes) is required');
    if (started.get(e)?.stdin === false) throw new ConnectFault('failed_precondition', `process ${e.pid} was started without stdin`);
    if (e.handle.stdin.writableEnded) throw new ConnectFault('failed_precondition', `stdin of process ${e.pid} is closed`);
    e.handle.stdin.write(Buffer.from(data, 'base64'));
    return {};
  }),
  '/process.Process/CloseStdin': unary(async (call, m) => {
    selected(call, m).handle.stdin.end();
    return {};
  }),
  '/process.Process/SendSignal': unary(async (call, m) => {
    const signal = SIGNALS[String(m['signal'])];
    if (!signal) throw invalid('signal must be SIGNAL_SIGKILL or SIGNAL_SIGTERM');
    await selected(call, m).handle.kill(signal);
    return {};
  }),
  '/process.Process/Update': unary(async (call, m) => {
    const e = selected(call, m);
    const size = (m['pty'] as { size?: { cols?: unknown; rows?: unknown } } | undefined)?.size;
    if (size === undefined) return {};
    if (!e.handle.tty) throw new ConnectFault('failed_precondition', `process ${e.pid} has no pty`);
    await e.handle.resize(dim(size.cols, 'cols'), dim(size.rows, 'rows'));
    return {};
  }),
};
