// The peer of hutch in every benchmark: plain runc running the very config.json that hutch writes
// (same namespaces, user namespace, seccomp, capabilities, masks and limits), on an overlay rootfs
// made the way hutch makes it, with a cgroup and a state dir of its own.
import fs from 'node:fs';
import path from 'node:path';
import type { Engine } from '../src/engine/index.js';
import { hostIdRange, mountOverlay, removeCgroup, umount2, MNT_DETACH } from '../src/linux/index.js';
import type { BenchRoot, Cmd } from './common.js';
import { BUSYBOX_ROOTFS, runQuiet, timeCommand } from './common.js';

/** An OCI runtime spec, loosely typed: the peer edits only a few fields. */
export type Spec = {
  process: { args: string[] };
  root: { path: string; readonly?: boolean };
  mounts?: { destination: string; source?: string }[];
  linux: { cgroupsPath?: string };
  annotations?: Record<string, string>;
  hostname?: string;
};

/** Where hutch mounts its agent runtime in a sandbox, and the agent's run dir (socket, exit record). */
const HUTCH_MOUNT = '/.hutch';
const HUTCH_RUN_MOUNT = '/.hutch/run';

/**
 * The config.json hutch writes for a sandbox: `direct` is what `hutch run` (no -d) runs (the command is
 * the init), `agent` is what `hutch create` runs (the agent is the init). The sandbox is removed after.
 */
export async function hutchSpec(engine: Engine, mode: 'direct' | 'agent'): Promise<Spec> {
  let id: string;
  if (mode === 'direct') {
    id = (await engine.runForeground({ rootfs: 'busybox', command: ['true'] }, ['ignore', 'ignore', 'ignore'], false)).id;
  } else {
    id = (await engine.create({ rootfs: 'busybox' })).id;
  }
  try {
    return JSON.parse(fs.readFileSync(path.join(engine.store.dir(id), 'bundle', 'config.json'), 'utf8')) as Spec;
  } finally {
    await engine.remove(id, true);
  }
}

/** One peer container: its runc id (also its cgroup name) and its dirs. */
export interface PeerContainer { id: string; dir: string; bundle: string; rootfs: string; run: string; log: string }

/** Makes, runs and removes runc containers under `<root>/peer`, with runc's state in `<root>/peer/runc`. */
export class RuncPeer {
  readonly runcRoot: string;
  private readonly dir: string;
  private count = 0;

  constructor(private readonly br: BenchRoot) {
    this.dir = path.join(br.root, 'peer');
    this.runcRoot = path.join(this.dir, 'runc');
    // Searchable by all: the container's root (an unprivileged id outside) must reach its rootfs below.
    fs.mkdirSync(this.dir, { mode: 0o711 });
    fs.mkdirSync(this.runcRoot, { mode: 0o700 });
  }

  /**
   * Writes a bundle from hutch's spec: `args` replaces the command and drops hutch's own mounts; with
   * `args` null the agent stays the init and its run dir becomes one of the peer's. The rootfs is a fresh
   * overlay on the busybox rootfs, as hutch makes it (upper dir owned like the lower root).
   */
  prepare(spec: Spec, args: string[] | null): PeerContainer {
    const id = `${this.br.tag}-${++this.count}`;
    const dir = path.join(this.dir, id);
    const c: PeerContainer = { id, dir, bundle: path.join(dir, 'bundle'), rootfs: path.join(dir, 'rootfs'), run: path.join(dir, 'run'), log: path.join(dir, 'runc.log') };
    for (const d of [c.bundle, c.rootfs, path.join(dir, 'upper'), path.join(dir, 'work'), c.run]) fs.mkdirSync(d, { recursive: true, mode: 0o755 });
    // hutch's root.path is its own overlay (gone with its sandbox); the lower dir is the embedded rootfs.
    const lower = BUSYBOX_ROOTFS;
    const st = fs.statSync(lower);
    fs.chownSync(path.join(dir, 'upper'), st.uid, st.gid);
    fs.chmodSync(path.join(dir, 'upper'), st.mode & 0o7777);
    mountOverlay({ lowerDirs: [lower], upperDir: path.join(dir, 'upper'), workDir: path.join(dir, 'work'), target: c.rootfs });
    const ids = hostIdRange();
    fs.chownSync(c.run, ids.hostUid, ids.hostGid);
    fs.chmodSync(c.run, 0o700);
    const s = structuredClone(spec);
    if (args) {
      s.process.args = args;
      s.mounts = (s.mounts ?? []).filter((m) => m.destination !== HUTCH_MOUNT && !m.destination.startsWith(`${HUTCH_MOUNT}/`));
    } else {
      for (const m of s.mounts ?? []) if (m.destination === HUTCH_RUN_MOUNT) m.source = c.run;
    }
    s.root = { path: c.rootfs, readonly: false };
    s.linux.cgroupsPath = `/${id}`;
    s.annotations = { 'dev.hutch.bench.peer': id };
    fs.writeFileSync(path.join(c.bundle, 'config.json'), JSON.stringify(s), { mode: 0o600 });
    return c;
  }

  /** `runc run` in the foreground: the whole life of a one-shot container, as `hutch run` drives it. */
  runCmd(c: PeerContainer): Cmd {
    return { file: 'runc', args: ['--root', this.runcRoot, 'run', '--bundle', c.bundle, c.id] };
  }

  /** `runc create` (the init waits for start); output goes to a log, so that runc does not wait on our pipes. */
  createCmd(c: PeerContainer): Cmd {
    return { file: 'runc', args: ['--root', this.runcRoot, 'create', '--bundle', c.bundle, '--pid-file', path.join(c.dir, 'init.pid'), c.id], logFile: c.log };
  }

  /** `runc start`. */
  startCmd(c: PeerContainer): Cmd {
    return { file: 'runc', args: ['--root', this.runcRoot, 'start', c.id] };
  }

  /** `runc exec ID ARGS...` with the container's own process settings. */
  execCmd(id: string, args: string[], runcRoot = this.runcRoot): Cmd {
    return { file: 'runc', args: ['--root', runcRoot, 'exec', id, ...args] };
  }

  /** The pid of a created container's init. */
  initPid(c: PeerContainer): number {
    return Number.parseInt(fs.readFileSync(path.join(c.dir, 'init.pid'), 'utf8'), 10);
  }

  /** Times `runc create` + `runc start` of a prepared container; returns ms. */
  async createAndStart(c: PeerContainer): Promise<number> {
    const a = await timeCommand(this.createCmd(c));
    const b = await timeCommand(this.startCmd(c));
    return a.ms + b.ms;
  }

  /** Kills and deletes the container, unmounts its rootfs, removes its cgroup and dir. */
  async remove(c: PeerContainer): Promise<void> {
    if (fs.existsSync(path.join(this.runcRoot, c.id))) {
      const r = await runQuiet({ file: 'runc', args: ['--root', this.runcRoot, 'delete', '--force', c.id] });
      if (r.status !== 0) throw new Error(`runc delete ${c.id} exited ${r.status}: ${r.stderr.trim()}`);
    }
    const err = umount2(c.rootfs, MNT_DETACH);
    if (err !== null && err !== 'EINVAL' && err !== 'ENOENT') throw new Error(`umount ${c.rootfs}: ${err}`);
    await removeCgroup(`/${c.id}`);
    fs.rmSync(c.dir, { recursive: true, force: true });
  }
}
