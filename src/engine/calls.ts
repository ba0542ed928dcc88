// Calls into a running sandbox through its agent: processes, files, signals, ps, stats.
import { networkManager } from './networks.js';
import { HutchError } from '../errors.js';
import type { Socket } from 'node:net';
import type { AgentClient, LoopbackHost, ProcessHandle } from '../agent/index.js';
import type { SandboxStats } from '../platform/index.js';
import type { EngineContext } from './context.js';
import { requireStatus, type SandboxRecord } from './state.js';
import { checkEnv, mergeEnv } from './options.js';
import { interruptedStartNote } from './records.js';
import { rootDirFileReader } from './rootfs.js';
import { checkUserSpec, lookupUser, type ResolvedUser } from '../linux/users.js';

/** A command to run in a sandbox. */
export interface ExecRequest {
  argv: string[];
  env?: string[];
  cwd?: string;
  /** Ids, or a spec as `-u` takes it (NAME, UID, NAME:GROUP…) looked up in the sandbox's own /etc/passwd and /etc/group. */
  user?: string | { uid: number; gid: number };
  tty?: { cols: number; rows: number };
  stdin?: boolean;
  /** The sandbox's main process: when it exits, the sandbox stops. */
  main?: boolean;
}

/** Where a signal goes. */
export type SignalTarget = { pid: number } | { pgid: number } | { all: true };

/**
 * Agent connections are kept per sandbox and reused, so that a long-lived process (hutchd,
 * benchmarks) pays the connect once; a dropped connection is replaced on the next call.
 */
export class SandboxCalls {
  private readonly clients = new Map<string, Promise<AgentClient>>();

  constructor(private readonly engine: EngineContext) {}

  /**
   * The record of a sandbox that must be in one of `allowed` states. Read without a lock: records
   * are replaced by rename, so a reader always sees a whole one, and a call into a sandbox that is
   * being stopped meanwhile fails on the agent's closed socket. (No lock here also means no FFI load
   * on the exec path.)
   */
  private async readRunning(ref: string, verb: string, allowed: ('running' | 'paused')[] = ['running']): Promise<SandboxRecord> {
    const id = this.engine.store.resolve(ref);
    let record: SandboxRecord = this.engine.mustRead(id);
    await this.engine.refresh(record, false);
    if (record.phase === 'ready' || record.phase === 'deleting') {
      // Only off the common path: with the lock probed, an interrupted start says how to finish it,
      // and a delete that died before killing the init leaves a sandbox that still serves.
      const probed = await this.engine.inspect(id);
      if (probed.note === interruptedStartNote(id)) throw new HutchError('ESTATE', `cannot ${verb} sandbox ${id}: its start was interrupted; hutch start ${id} finishes it`, { id });
      record = probed;
    }
    requireStatus(id, record.phase, allowed, verb);
    return record;
  }

  /** A connection to the sandbox's agent (reused); `instead` says what works without one. */
  async client(record: SandboxRecord, instead = 'exec, kill, stop, stats and pause work on it; hutch run -d makes a sandbox with an agent'): Promise<AgentClient> {
    if (record.mode !== 'agent') throw noAgent(record.id, instead);
    let p = this.clients.get(record.id);
    if (p) {
      const c = await p.catch(() => null);
      if (c && !c.closed) return c;
      this.clients.delete(record.id);
    }
    const platform = await this.engine.platformOf(record);
    p = platform.connect(record.handle!);
    this.clients.set(record.id, p);
    p.catch(() => this.clients.delete(record.id));
    const c = await p;
    c.onClose(() => { if (this.clients.get(record.id) === p) this.clients.delete(record.id); });
    return c;
  }

  /** Closes every cached connection. */
  closeAll(): void {
    for (const p of this.clients.values()) void p.then((c) => c.close(), () => undefined);
    this.clients.clear();
  }

  /** Starts a process in a running sandbox. */
  async exec(ref: string, req: ExecRequest): Promise<ProcessHandle> {
    const record = await this.readRunning(ref, 'exec in');
    if (req.argv.length === 0) throw new HutchError('EINVAL', 'exec needs a command', { id: record.id });
    const { home, ...user } = await this.userOf(record, req.user);
    const env = mergeEnv(record.env, req.tty ? ['TERM=xterm'] : [], home, checkEnv(req.env ?? []));
    const client = await this.client(record);
    return client.exec({
      argv: req.argv, env: Object.fromEntries(env.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])),
      cwd: req.cwd ?? record.cwd, uid: user.uid, gid: user.gid, stdin: req.stdin ?? false,
      ...(req.tty ? { tty: req.tty } : {}), ...(req.main ? { main: true } : {}),
    });
  }

  /**
   * Runs a command attached to this process's stdio. Sandboxes with an agent use it; a sandbox whose
   * init is the user's command (hutch run without -d) is entered through the executor (`runc exec`).
   */
  async execAttached(ref: string, req: ExecRequest, stdio: ('inherit' | 'ignore')[], viaAgent: (p: ProcessHandle) => Promise<number>): Promise<number> {
    const record = await this.readRunning(ref, 'exec in');
    if (record.mode === 'agent') return viaAgent(await this.exec(record.id, req));
    if (req.argv.length === 0) throw new HutchError('EINVAL', 'exec needs a command', { id: record.id });
    const { home, ...user } = await this.userOf(record, req.user);
    const env = mergeEnv(record.env, req.tty ? ['TERM=xterm'] : [], home, checkEnv(req.env ?? []));
    const platform = await this.engine.platformOf(record);
    if (!platform.capabilities.directExec || !platform.execDirect) {
      throw new HutchError('EUNSUPPORTED', `sandbox ${record.id} runs its command as init on the ${platform.name} platform, which cannot run another command beside it; hutch run -d makes a sandbox with an agent`, { id: record.id });
    }
    return platform.execDirect(record.handle!, { args: req.argv, env, cwd: req.cwd ?? record.cwd, user, terminal: req.tty !== undefined, stdio }).done;
  }

  /**
   * The ids an exec runs as, and the HOME it gets: the sandbox's user (HOME as the record has it),
   * or the given one, a spec looked up in the sandbox's rootfs as it is now (its writable layer over
   * the image: a user added at run time counts), HOME from its passwd entry.
   */
  private async userOf(record: SandboxRecord, user: ExecRequest['user']): Promise<{ uid: number; gid: number; home: string[] }> {
    if (user === undefined) return { ...record.user, home: [] };
    let ids: ResolvedUser = user as ResolvedUser;
    if (typeof user === 'string') {
      const numbersOnly = checkUserSpec(user) && user.includes(':'); // UID:GID: nothing to look up
      ids = lookupUser(user, numbersOnly ? () => '' : rootDirFileReader((await this.engine.platformOf(record)).rootfsPath(record.handle!)));
    }
    return { uid: ids.uid, gid: ids.gid, home: [`HOME=${ids.home ?? (ids.uid === 0 ? '/root' : '/')}`] };
  }

  /** Waits for a process of the sandbox to exit. */
  async wait(ref: string, pid: number): Promise<{ exitCode: number | null; signal: string | null }> {
    const record = await this.readRunning(ref, 'wait in', ['running', 'paused']);
    return (await this.client(record)).wait(pid);
  }

  /** Sends a signal to one process, a process group, or every process of the sandbox. */
  async signal(ref: string, signal: string | number, target: SignalTarget): Promise<void> {
    const record = await this.readRunning(ref, 'signal');
    if (record.mode === 'direct') {
      // No agent: the executor signals the init, or with --all every process of the sandbox.
      if (!('all' in target)) throw noAgent(record.id, `kill signals all of its processes; for one use hutch exec ${record.name} -- kill -${String(signal).replace(/^SIG/, '')} PID`);
      return (await this.engine.platformOf(record)).kill(record.handle!, String(signal), true);
    }
    await (await this.client(record)).signal(signal, target);
  }

  /** The processes of the sandbox as its agent sees them. */
  async ps(ref: string) {
    const record = await this.readRunning(ref, 'list processes of', ['running', 'paused']);
    if (record.phase === 'paused') throw new HutchError('ESTATE', `cannot list processes of sandbox ${record.id}: it is paused (needs running)`, { id: record.id });
    return (await this.client(record, `list its processes with hutch exec ${record.name} -- ps; hutch run -d makes a sandbox whose agent answers hutch ps`)).ps();
  }

  /** cpu, memory and pids of the sandbox, from its cgroups. */
  async stats(ref: string): Promise<SandboxStats> {
    const record = await this.readRunning(ref, 'read stats of', ['running', 'paused']);
    const stats = await (await this.engine.platformOf(record)).stats(record.handle!);
    // On a network: the packets its egress policy dropped (nftables counts them on the host).
    if (record.network) stats.networkDroppedPackets = await (await networkManager()).droppedPackets(record.id);
    return stats;
  }

  /** File calls, resolved inside the sandbox's own view by its agent. */
  async files(ref: string): Promise<AgentClient> {
    const record = await this.readRunning(ref, 'access files of');
    return this.client(record, `copy files through exec (hutch exec -i ${record.name} -- sh -c 'cat > PATH' < FILE, hutch exec ${record.name} -- cat PATH > FILE); hutch run -d makes a sandbox whose agent answers hutch cp`);
  }

  /**
   * A new TCP connection to `port` on the sandbox's loopback, through a dedicated agent connection
   * (works in every network mode, none included): ENETWORK "nothing listens" when nobody does.
   */
  async forwardPort(ref: string, port: number, host: LoopbackHost = '127.0.0.1'): Promise<Socket> {
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new HutchError('EINVAL', `port must be an integer from 1 to 65535: ${String(port).slice(0, 20)}`);
    const record = await this.readRunning(ref, 'forward a port of');
    if (record.mode !== 'agent') throw noAgent(record.id, 'run a server in a sandbox made with hutch run -d to reach its ports');
    const client = await (await this.engine.platformOf(record)).connect(record.handle!);
    try {
      return await client.forwardPort({ host, port });
    } catch (e) {
      if (e instanceof HutchError) throw new HutchError(e.code, `sandbox ${record.id}: ${e.message}`, { id: record.id, cause: e });
      throw e;
    }
  }
}

/** The refusal of a call that needs an agent, for a sandbox whose init is the user's command. */
function noAgent(id: string, instead: string): HutchError {
  return new HutchError('EUNSUPPORTED', `sandbox ${id} runs its command as init (a foreground hutch run, without an agent): ${instead}`, { id });
}
