// Randomized faults: hutch, hutchd and runc killed with SIGKILL at random moments of create, start,
// exec and delete. After every fault `ls` tells the truth (a running sandbox answers exec, a stopped
// one has no init, an interrupted start is finished by start); at the end one `rm -f` of everything
// leaves no dirs, name claims, runc state, mounts, cgroups, processes or id slots of this root.
// HUTCH_FAULT_ITERATIONS sets the count (20 by default, 200 for the long run), HUTCH_FAULT_SEED
// replays a run (the seed is printed).
import test, { after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { HUTCH, cleanRoot, hutch, hutchCgroups, leftovers, makeRoot } from './helpers.js';
import { startDaemon, type Daemon } from './server-kit.js';
import { HutchApiError, Sandbox, Transport } from '../src/sdk/index.js';
import { idSlotsInUse, processStartTime } from '../src/linux/index.js';
import { ID_SLOTS_DIR } from '../src/platform/container/private-ids.js';

const ITERATIONS = Number(process.env.HUTCH_FAULT_ITERATIONS ?? 20);
const SEED = Number(process.env.HUTCH_FAULT_SEED ?? Date.now() % 1_000_000);
const root = makeRoot('faults');
const sandboxesDir = path.join(root, 'sandboxes');

/** mulberry32: a small seeded generator, so that a failing run can be replayed. */
let state = SEED;
function random(): number {
  state = (state + 0x6d2b79f5) | 0;
  let t = Math.imul(state ^ (state >>> 15), 1 | state);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every sandbox id this test's root ever had a dir for (seen by a watch of sandboxes/, and by scans). */
const everSeen = new Set<string>();
const ID = /^(?:\.trash-)?([0-9a-f]{16})/;
function scanIds(): void {
  if (!fs.existsSync(sandboxesDir)) return;
  for (const n of fs.readdirSync(sandboxesDir)) {
    const m = ID.exec(n);
    if (m) everSeen.add(m[1]!);
  }
}
let watcher: fs.FSWatcher | undefined;
function watchIds(): void {
  if (watcher || !fs.existsSync(sandboxesDir)) return;
  watcher = fs.watch(sandboxesDir, (_ev, name) => {
    const m = name ? ID.exec(String(name)) : null;
    if (m) everSeen.add(m[1]!);
  });
}

/** Runs `hutch ARGS` and SIGKILLs it after `killAfterMs` (if still running); resolves when it is gone. */
function hutchKilledAfter(args: string[], killAfterMs: number): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [HUTCH, '--root', root, ...args], { stdio: 'ignore' });
    const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    child.on('close', () => { clearTimeout(timer); resolve(); });
  });
}

/** The runc processes working for this root. */
function runcPids(): number[] {
  const out = spawnSync('pgrep', ['-f', `runc --root ${root}/runc`], { encoding: 'utf8' }).stdout;
  return out.split('\n').filter(Boolean).map(Number);
}

/** SIGKILLs the first runc of this root seen within `withinMs` (the moment it is seen is the random part). */
async function killRuncWithin(withinMs: number): Promise<void> {
  const end = Date.now() + withinMs;
  while (Date.now() < end) {
    const [pid] = runcPids();
    if (pid !== undefined) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone meanwhile */ }
      return;
    }
    await sleep(2);
  }
}

interface Listed { id: string; status: string; note?: string }
async function list(): Promise<Listed[]> {
  const r = await hutch(root, ['ls', '--json'], { timeoutMs: 20_000 });
  assert.equal(r.code, 0, `ls failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Listed[];
}
const anyWith = async (status: string): Promise<string | undefined> => {
  const xs = (await list()).filter((s) => s.status === status);
  return xs.length ? pick(xs).id : undefined;
};

let daemon: Daemon | undefined;
let transport: Transport | undefined;
async function ensureDaemon(): Promise<Transport> {
  if (daemon && daemon.child.exitCode === null && daemon.child.signalCode === null && transport) return transport;
  transport?.close();
  daemon = await startDaemon(root, ['--sweep-interval', '1h']);
  transport = new Transport({ socketPath: daemon.socketPath });
  return transport;
}
async function killDaemonAfter(ms: number): Promise<void> {
  await sleep(ms);
  await daemon?.stop('SIGKILL');
  transport?.close();
  transport = undefined;
}
/** A call to hutchd that may be cut by its death: only that (ENETWORK) or a refusal is expected. */
async function tolerated(p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch (e) {
    if (!(e instanceof HutchApiError)) throw e;
  }
}

/** The faults: each runs one operation and kills someone at a random moment of it. */
const FAULTS: Record<string, () => Promise<void>> = {
  'kill hutch create': () => hutchKilledAfter(['create', 'busybox'], random() * 400),
  'kill hutch run -d': () => hutchKilledAfter(['run', '-d', 'busybox'], random() * 600),
  'kill hutch start': async () => {
    let id = await anyWith('ready');
    if (!id) {
      const r = await hutch(root, ['create', 'busybox']);
      id = r.stdout.trim();
    }
    if (id) await hutchKilledAfter(['start', id], random() * 600);
  },
  'kill hutch exec': async () => {
    const id = await anyWith('running');
    if (id) await hutchKilledAfter(['exec', id, '--', 'sh', '-c', 'echo x; sleep 0.2'], random() * 300);
  },
  'kill hutch rm -f': async () => {
    const id = await anyWith(pick(['running', 'stopped', 'ready']));
    if (id) await hutchKilledAfter(['rm', '-f', id], random() * 200);
  },
  'kill runc during run -d': async () => {
    const run = hutch(root, ['run', '-d', 'busybox']);
    await killRuncWithin(400);
    await run;
  },
  'kill runc during rm -f': async () => {
    const id = await anyWith('running');
    if (!id) return;
    const rm = hutch(root, ['rm', '-f', id]);
    await killRuncWithin(200);
    await rm;
  },
  'kill hutchd during create': async () => {
    const t = await ensureDaemon();
    await Promise.all([tolerated(Sandbox.create({ transport: t })), killDaemonAfter(random() * 900)]);
  },
  'kill hutchd during exec': async () => {
    const t = await ensureDaemon();
    const sb = await Sandbox.create({ transport: t });
    await Promise.all([tolerated(sb.exec('sleep 0.3; echo done')), killDaemonAfter(random() * 400)]);
  },
  'kill hutchd during delete': async () => {
    const t = await ensureDaemon();
    const sb = await Sandbox.create({ transport: t });
    await sb.exec('mkdir /m && cd /m && seq 1 500 | xargs touch');
    await Promise.all([tolerated(sb.kill()), killDaemonAfter(random() * 150)]);
  },
};

/** Waits for orphaned runc calls of this root to end (a killed hutch leaves its runc running on). */
async function settle(): Promise<void> {
  for (let i = 0; i < 250 && runcPids().length > 0; i++) await sleep(20);
}

/** Checks that `ls` tells the truth about every sandbox of the root. */
async function checkTruthful(fault: string): Promise<void> {
  for (const s of await list()) {
    const why = `after "${fault}" (seed ${SEED}): sandbox ${s.id} listed ${s.status}${s.note ? ` (${s.note})` : ''}`;
    assert.ok(['ready', 'running', 'paused', 'stopped'].includes(s.status), why);
    if (s.status === 'running') {
      const r = await hutch(root, ['exec', s.id, '--', 'true'], { timeoutMs: 20_000 });
      // It may have stopped between the two calls (its agent killed with it): then ls says so now.
      if (r.code !== 0) assert.equal((await list()).find((x) => x.id === s.id)?.status ?? 'stopped', 'stopped', `${why}; exec: ${r.stderr}`);
    } else if (s.status === 'stopped') {
      const pidFile = path.join(sandboxesDir, s.id, 'init.pid');
      const pid = fs.existsSync(pidFile) ? Number(fs.readFileSync(pidFile, 'utf8')) : NaN;
      // A zombie has stopped running (its parent reaps it); only a live init of this sandbox is a lie.
      if (Number.isInteger(pid) && pid > 0 && processStartTime(pid) !== null) {
        const cg = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8');
        // An interrupted create may have made the executor's init, which waits for a start that never comes.
        const neverStarted = s.note === 'interrupted create' && fs.existsSync(path.join(root, 'runc', s.id, 'exec.fifo'));
        assert.ok(!cg.includes(`hutch-${s.id}`) || neverStarted, `${why}, yet its init ${pid} runs`);
      }
    } else if (s.status === 'ready' && s.note?.startsWith('interrupted start')) {
      const r = await hutch(root, ['start', s.id], { timeoutMs: 30_000 });
      assert.equal(r.code, 0, `${why}; start: ${r.stderr}`);
    }
  }
}

after(async () => {
  watcher?.close();
  transport?.close();
  await daemon?.stop('SIGKILL');
  await cleanRoot(root).catch(() => undefined);
});

test(`${ITERATIONS} random SIGKILLs of hutch, hutchd and runc: ls stays truthful, one rm -f leaves nothing`, { timeout: 60_000 + ITERATIONS * 30_000 }, async () => {
  process.stderr.write(`fault-random: seed ${SEED} (HUTCH_FAULT_SEED=${SEED} replays it), ${ITERATIONS} iterations\n`);
  fs.mkdirSync(sandboxesDir, { recursive: true });
  watchIds();
  const names = Object.keys(FAULTS);
  const counts: Record<string, number> = {};
  for (let i = 0; i < ITERATIONS; i++) {
    const fault = names[i % names.length === i ? i : Math.floor(random() * names.length)]!; // each once, then at random
    counts[fault] = (counts[fault] ?? 0) + 1;
    await FAULTS[fault]!();
    await settle();
    scanIds();
    await checkTruthful(fault);
    // Keep the machine's load bounded: past 8 sandboxes, the oldest go (a plain rm -f, not a fault).
    const all = await list();
    if (all.length > 8) {
      const rm = await hutch(root, ['rm', '-f', ...all.slice(0, all.length - 4).map((s) => s.id)]);
      assert.equal(rm.code, 0, `rm -f after "${fault}" (seed ${SEED}): ${rm.stderr}`);
    }
  }
  await daemon?.stop('SIGKILL');
  transport?.close();
  transport = undefined;
  // One hutchd start recovers what hutchd left (and finishes its interrupted removals).
  daemon = await startDaemon(root, ['--sweep-interval', '1h']);
  await daemon.stop();
  daemon = undefined;
  scanIds();
  const ids = (await list()).map((s) => s.id);
  if (ids.length) {
    const rm = await hutch(root, ['rm', '-f', ...ids], { timeoutMs: 120_000 });
    assert.equal(rm.code, 0, `the final rm -f (seed ${SEED}): ${rm.stderr}`);
  }
  for (let i = 0; i < 100 && fs.readdirSync(sandboxesDir).length > 0; i++) await sleep(50); // trash finished in the background
  process.stderr.write(`fault-random: ${JSON.stringify(counts)}; ${everSeen.size} sandboxes made\n`);
  assert.deepEqual(await list(), []);
  assert.deepEqual(fs.readdirSync(sandboxesDir), [], 'no sandbox dirs or trash');
  const names2 = fs.existsSync(path.join(root, 'names')) ? fs.readdirSync(path.join(root, 'names')).filter((n) => !n.startsWith('.')) : [];
  assert.deepEqual(names2, [], 'no name claims');
  const runcDir = path.join(root, 'runc');
  assert.deepEqual(fs.existsSync(runcDir) ? fs.readdirSync(runcDir) : [], [], 'no runc state');
  assert.deepEqual(leftovers(root), [], 'no mounts or processes');
  assert.deepEqual(hutchCgroups().filter((c) => [...everSeen].some((id) => c.endsWith(`hutch-${id}`))), [], 'no cgroups');
  const slots = [...idSlotsInUse(ID_SLOTS_DIR)].filter(([, o]) => o !== null && (o.dir.startsWith(`${root}/`) || everSeen.has(o.id)));
  assert.deepEqual(slots, [], 'no id slots');
});
