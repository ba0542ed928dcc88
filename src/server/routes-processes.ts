// Processes: start (optionally waiting for the output of a short command), list, wait, signal.
import type { ServerResponse } from 'node:http';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { StringDecoder } from 'node:string_decoder';
import type { ExitStatus } from '../agent/index.js';
import { HutchError, isHutchError } from '../errors.js';
import { checkUser } from '../engine/index.js';
import { commandOf, envList, optBool, optNumber, optString, optStringMap, readJson, sendJson } from './http.js';
import { ProcessEntry, unstartedProcess, type OutputSink, type Unattended } from './processes.js';
import type { BudgetHolder, OutputBudget } from './output-budget.js';
import type { Route } from './router.js';
import { servedId, type Services } from './services.js';

/** What starting a process needs; `detached`: it outlives its clients, keeping its latest output. */
export interface StartRequest { argv: string[]; env: string[]; cwd?: string; user?: string; tty?: { cols: number; rows: number }; stdin: boolean; detached: boolean }

/** Reads the start fields of a request body (cmd, env, cwd, user, tty, stdin, detached). */
export function startRequestOf(body: Record<string, unknown>): StartRequest {
  const argv = commandOf(body);
  const cwd = optString(body, 'cwd');
  const userText = body['user'] === undefined || body['user'] === null ? undefined : String(body['user']);
  const user = userText === undefined ? undefined : checkUser(userText);
  const env = envList(optStringMap(body, 'env'));
  const t = body['tty'];
  let tty: { cols: number; rows: number } | undefined;
  if (t === true) tty = { cols: 80, rows: 24 };
  else if (t !== undefined && t !== false && t !== null) {
    if (typeof t !== 'object' || Array.isArray(t)) throw new HutchError('EINVAL', 'tty must be true or { cols, rows }');
    const o = t as Record<string, unknown>;
    tty = { cols: optNumber(o, 'cols', 1, 10000) ?? 80, rows: optNumber(o, 'rows', 1, 10000) ?? 24 };
  }
  const stdinField = body['stdin'];
  const stdin = stdinField === true || typeof stdinField === 'string';
  const detached = optBool(body, 'detached') ?? false;
  return { argv, env, stdin, detached, ...(cwd !== undefined ? { cwd } : {}), ...(user ? { user } : {}), ...(tty ? { tty } : {}) };
}

/**
 * Starts a process in a sandbox of this hutchd and records it. A command that does not exist gives
 * an entry with pid 0 that exits 127 with the error on stderr (see unstartedProcess).
 */
export async function startProcess(s: Services, sandboxId: string, r: StartRequest, unattended: Unattended): Promise<ProcessEntry> {
  const t0 = performance.now();
  const handle = await s.calls.exec(sandboxId, {
    argv: r.argv, env: r.env, stdin: r.stdin, ...(r.cwd !== undefined ? { cwd: r.cwd } : {}), ...(r.user ? { user: r.user } : {}),
    ...(r.tty ? { tty: r.tty } : {}),
  }).catch((e: unknown) => {
    if (e instanceof HutchError && e.code === 'ENOEXEC') return unstartedProcess(e, r.tty !== undefined);
    throw e;
  });
  s.metrics.observeExec((performance.now() - t0) / 1000);
  const entry = s.processes.add(new ProcessEntry(sandboxId, handle, r.argv, unattended));
  if (entry.pid === 0) return entry;
  s.events.publish({ type: 'exec-started', sandboxId, data: { pid: entry.pid, argv: r.argv } });
  entry.done.then(
    (st) => s.events.publish({ type: 'exec-exited', sandboxId, data: { pid: entry.pid, exitCode: st.exitCode, signal: st.signal } }),
    (e: Error) => s.events.publish({ type: 'exec-exited', sandboxId, data: { pid: entry.pid, error: e.message } }),
  );
  return entry;
}

/** After a kill for a timeout or the budget, how long its end is awaited before answering anyway (a hung agent). */
const KILL_GRACE_MS = 2000;

const EMPTY = Buffer.alloc(0);

/** Collects a process's output in memory (for `wait: true`), charging it to hutchd's shared budget. */
class CollectingSink implements OutputSink, BudgetHolder {
  private parts: Record<1 | 2, Buffer[]> = { 1: [], 2: [] };
  private readonly sizes: Record<1 | 2, number> = { 1: 0, 2: 0 };
  truncated = false;
  overBudget = false;
  held = 0;
  constructor(private readonly max: number, private readonly budget: OutputBudget, private readonly onEvicted: () => void) {
    budget.join(this);
  }
  write(fd: 1 | 2, data: Buffer): boolean {
    if (this.overBudget) return true;
    const room = this.max - this.sizes[fd];
    if (data.length > room) this.truncated = true;
    const kept = data.length > room ? data.subarray(0, Math.max(0, room)) : data;
    if (kept.length === 0 || !this.budget.take(this, kept.length)) return true;
    this.held += kept.length;
    this.parts[fd].push(kept);
    this.sizes[fd] += kept.length;
    return true;
  }
  exit(_status: ExitStatus): void {}
  /**
   * Answers with `head` and the output as one JSON object, written piece by piece: building it as one
   * string would hold the output several times over. While it sends it cannot be evicted.
   */
  async send(res: ServerResponse, head: Record<string, unknown>): Promise<void> {
    this.budget.leave(this);
    res.writeHead(200, { 'content-type': 'application/json' });
    const write = async (text: string) => {
      if (!res.write(text) && !res.destroyed) await once(res, 'drain');
    };
    await write(JSON.stringify(head).slice(0, -1));
    for (const fd of [1, 2] as const) {
      await write(`${fd === 1 ? '' : '"'},"${fd === 1 ? 'stdout' : 'stderr'}":"`);
      const decoder = new StringDecoder('utf8');
      const parts = this.parts[fd];
      for (let i = 0; i < parts.length && !res.destroyed; i++) {
        await write(JSON.stringify(decoder.write(parts[i]!)).slice(1, -1));
        parts[i] = EMPTY; // sent: its memory can go
      }
      await write(JSON.stringify(decoder.end()).slice(1, -1));
    }
    res.end(`"${this.truncated ? ',"truncated":true' : ''}}`);
  }
  evict(): void {
    this.overBudget = true;
    this.release();
    this.onEvicted();
  }
  /** Drops the output and gives its bytes back to the budget. */
  release(): void {
    this.parts = { 1: [], 2: [] };
    this.budget.give(this.held);
    this.held = 0;
    this.budget.leave(this);
  }
}

/**
 * Runs a started process to its end and answers with its output: killed at `deadline` (ms, on
 * performance.now()'s clock), when the client goes away, or when hutchd's output budget runs out.
 * A kill the agent does not carry out within KILL_GRACE_MS is answered anyway.
 */
async function collectAndSend(s: Services, res: ServerResponse, entry: ProcessEntry, deadline: number | undefined, gone: AbortSignal): Promise<void> {
  let graceOver: () => void = () => undefined;
  const gaveUp = new Promise<'gave-up'>((resolve) => { graceOver = () => resolve('gave-up'); });
  let graceTimer: NodeJS.Timeout | undefined;
  const kill = () => {
    entry.handle.kill('SIGKILL').catch(() => undefined);
    graceTimer ??= setTimeout(graceOver, KILL_GRACE_MS);
  };
  const sink = new CollectingSink(s.limits.maxWaitOutputBytes, s.outputBudget, kill);
  entry.attach(sink);
  let timedOut = false;
  const timer = deadline === undefined ? undefined : setTimeout(() => { timedOut = true; kill(); }, Math.max(0, deadline - performance.now()));
  gone.addEventListener('abort', kill);
  const what = `command ${entry.argv.join(' ').slice(0, 200)}`;
  try {
    const status = await Promise.race([entry.done, gaveUp]);
    if (sink.overBudget) throw overBudget(s, entry.sandboxId, what);
    if (timedOut) {
      const unanswered = status === 'gave-up' ? ' (the sandbox\'s agent did not confirm the kill)' : '';
      throw new HutchError('ETIMEDOUT', `${what} ran longer than its timeoutMs and was killed${unanswered}`, { id: entry.sandboxId });
    }
    if (status === 'gave-up') throw new HutchError('ETIMEDOUT', `${what} did not end after it was killed`, { id: entry.sandboxId });
    await sink.send(res, { pid: entry.pid, exitCode: status.exitCode, signal: status.signal });
  } finally {
    clearTimeout(timer);
    clearTimeout(graceTimer);
    gone.removeEventListener('abort', kill);
    entry.detach(sink);
    sink.release();
  }
}

/** The EBUSY of a full output budget: for a command that held the most of it, or (`full`) one not started. */
function overBudget(s: Services, id: string, what: string, full = false): HutchError {
  const mib = Math.round(s.outputBudget.totalBytes / 1048576);
  const why = full ? `${what} was not started: hutchd holds` : `${what} was killed: it held the most of the`;
  return new HutchError('EBUSY', `${why} ${mib} MiB of output for wait:true commands (--max-buffered-output); retry later, or start it without wait and stream its output`, { id });
}

/** Settles with `p`, or fails with ETIMEDOUT at `deadline`; a start that completes later is killed. */
async function startWithin(p: Promise<ProcessEntry>, deadline: number, id: string, argv: string[]): Promise<ProcessEntry> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new HutchError('ETIMEDOUT', `command ${argv.join(' ').slice(0, 200)} did not start within its timeoutMs (the sandbox's agent does not answer)`, { id })),
      Math.max(0, deadline - performance.now()));
  });
  try {
    return await Promise.race([p, late]);
  } catch (e) {
    if (isHutchError(e, 'ETIMEDOUT')) p.then((entry) => entry.handle.kill('SIGKILL').catch(() => undefined), () => undefined);
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

/** A process hutchd started, as the API lists it. */
function describeStarted(e: ProcessEntry) {
  const st = e.exitStatus;
  return {
    pid: e.pid, argv: e.argv, tty: e.handle.tty, detached: e.detached, attached: e.attached, startedAt: e.startedAt,
    running: st === undefined, exitCode: null, signal: null, ...st,
  };
}

function pidOf(params: Record<string, string>): number {
  const pid = Number(params['pid']);
  if (!Number.isInteger(pid) || pid < 1 || pid > 0x7fffffff) throw new HutchError('EINVAL', `invalid pid ${String(params['pid']).slice(0, 20)}`);
  return pid;
}

/** The routes. */
export function processRoutes(s: Services): Route[] {
  return [
    {
      method: 'POST', path: '/v1/sandboxes/{id}/processes', handle: async ({ req, res, params }) => {
        const body = await readJson(req, s.limits.maxJsonBytes);
        const info = { id: await servedId(s, params['id']!) };
        const r = startRequestOf(body);
        const wait = optBool(body, 'wait') ?? false;
        const timeoutMs = optNumber(body, 'timeoutMs', 1, 7 * 24 * 3600_000);
        // The deadline counts from here: a start the agent never answers is within it too.
        const deadline = wait && timeoutMs !== undefined ? performance.now() + timeoutMs : undefined;
        if (wait && s.outputBudget.used >= s.outputBudget.totalBytes) throw overBudget(s, info.id, `command ${r.argv.join(' ').slice(0, 200)}`, true);
        const starting = startProcess(s, info.id, r, wait ? 'kill' : r.detached ? 'keep-tail' : 'hold');
        const entry = deadline === undefined ? await starting : await startWithin(starting, deadline, info.id, r.argv);
        // Without the result there is nothing to show the 127 in: the start itself fails.
        if (!wait && 'error' in entry.handle && entry.handle.error instanceof HutchError) throw entry.handle.error;
        if (typeof body['stdin'] === 'string') entry.handle.stdin.end(body['stdin']);
        if (!wait) return sendJson(res, 201, { pid: entry.pid });
        const gone = new AbortController();
        res.on('close', () => { if (!res.writableFinished) gone.abort(); });
        await collectAndSend(s, res, entry, deadline, gone.signal);
      },
    },
    {
      method: 'GET', path: '/v1/sandboxes/{id}/processes', handle: async ({ res, params }) => {
        const info = { id: await servedId(s, params['id']!) };
        const ps = await s.calls.ps(info.id);
        sendJson(res, 200, { processes: ps });
      },
    },
    {
      method: 'GET', path: '/v1/sandboxes/{id}/processes/started', handle: async ({ res, params }) => {
        const info = { id: await servedId(s, params['id']!) };
        const started = s.processes.of(info.id).sort((a, b) => a.startedAt.localeCompare(b.startedAt) || a.pid - b.pid);
        sendJson(res, 200, { processes: started.map(describeStarted) });
      },
    },
    {
      method: 'GET', path: '/v1/sandboxes/{id}/processes/{pid}/wait', handle: async ({ res, params }) => {
        const info = { id: await servedId(s, params['id']!) };
        const pid = pidOf(params);
        const entry = s.processes.get(info.id, pid);
        const status = entry ? await entry.done : await s.calls.wait(info.id, pid);
        sendJson(res, 200, { pid, exitCode: status.exitCode, signal: status.signal });
      },
    },
    {
      method: 'POST', path: '/v1/sandboxes/{id}/processes/{pid}/signal', handle: async ({ req, res, params }) => {
        const body = await readJson(req, s.limits.maxJsonBytes);
        const info = { id: await servedId(s, params['id']!) };
        const pid = pidOf(params);
        const signal = optString(body, 'signal', 16) ?? 'SIGTERM';
        const group = optBool(body, 'group') ?? false;
        await s.calls.signal(info.id, signal, group ? { pgid: pid } : { pid });
        res.writeHead(204).end();
      },
    },
  ];
}
