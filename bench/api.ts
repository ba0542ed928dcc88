// Benchmark of hutchd through its SDK: exec round trip, and create → first exec output → delete
// with and without the warm pool. hutchd runs as `hutch serve` on a private state root, the way a
// user runs it; everything is removed at the end (also on Ctrl-C).
// Usage: node dist/bench/api.js [--rounds 200] [--execs 200] [--pool 4]
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Engine } from '../src/engine/index.js';
import { Sandbox, Transport } from '../src/sdk/index.js';
import { checkInterrupted, HUTCH_CLI, intOption, makeBenchRoot, ms, onCleanup, printTable, runBench, summarize, timingRow, verdict, type Summary } from './common.js';

/** Targets of issue M4 (ms). */
const TARGET_WARM_P50 = 30;
const TARGET_COLD_P50 = 300;
const TARGET_EXEC_P50 = 5;

/** Starts `hutch serve` and resolves once it serves; stopped at cleanup (or earlier by the caller). */
async function serve(root: string, socket: string, flags: string[]): Promise<{ child: ChildProcess; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, [HUTCH_CLI, '--root', root, 'serve', '--socket', socket, ...flags], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let stderr = '';
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (stderr.includes('serving on')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`hutchd exited ${code}: ${stderr.trim()}`)));
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  onCleanup(stop);
  return { child, stop };
}

/** Times `n` calls of `once` after `warmup` untimed ones. */
async function timeMany(n: number, warmup: number, once: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < warmup + n; i++) {
    checkInterrupted();
    const t0 = performance.now();
    await once();
    if (i >= warmup) out.push(performance.now() - t0);
  }
  return out;
}

/** One round: create, run `echo hi` until its output is in, delete; [to first output, whole round]. */
async function round(t: Transport): Promise<[number, number]> {
  const t0 = performance.now();
  const sb = await Sandbox.create({ transport: t });
  const r = await sb.exec(['echo', 'hi']);
  const t1 = performance.now();
  if (r.stdout !== 'hi\n') throw new Error(`unexpected output ${JSON.stringify(r.stdout)}`);
  await sb.kill();
  return [t1 - t0, performance.now() - t0];
}

/** Ready sandboxes of the busybox pool, from /metrics. */
async function poolReady(t: Transport): Promise<number> {
  const res = await t.request({ method: 'GET', path: '/metrics' });
  let text = '';
  for await (const c of res) text += String(c);
  const m = /^hutch_pool_ready\{image="busybox"\} (\d+)/m.exec(text);
  return m ? Number(m[1]) : 0;
}

runBench('hutchd API: exec round trip; create → first output → delete, cold and warm', async () => {
  const rounds = intOption('rounds', 200);
  const execs = intOption('execs', 200);
  const poolSize = intOption('pool', 4);
  const br = makeBenchRoot();
  await new Engine({ root: br.root }).setup(); // busybox rootfs and agent runtime built before timing
  const rows: string[][] = [];
  const add = (name: string, s: Summary) => rows.push(timingRow(name, s, true));

  // Cold: no pool.
  const cold = await serve(br.root, path.join(br.root, 'cold.sock'), []);
  let t = new Transport({ socketPath: path.join(br.root, 'cold.sock') });
  const sb = await Sandbox.create({ transport: t });
  const execOne = summarize(await timeMany(execs, 20, () => sb.exec(['true'])));
  const execShell = summarize(await timeMany(execs, 20, () => sb.exec('echo hi')));
  const execStream = summarize(await timeMany(execs, 20, () => sb.exec(['true'], { onStdout: () => undefined })));
  add('exec true (one request)', execOne);
  add('exec sh -c "echo hi" (one request)', execShell);
  add('exec true (WebSocket stream)', execStream);
  await sb.kill();
  const coldRounds: [number, number][] = [];
  for (let i = 0; i < rounds; i++) {
    checkInterrupted();
    coldRounds.push(await round(t));
  }
  const coldFirst = summarize(coldRounds.map((r) => r[0]));
  add('cold: create → first output', coldFirst);
  add('cold: create → first output → delete', summarize(coldRounds.map((r) => r[1])));
  t.close();
  await cold.stop();

  // Warm: a pool of busybox sandboxes; each round starts when the pool has one ready.
  const warm = await serve(br.root, path.join(br.root, 'warm.sock'), ['--pool', `busybox=${poolSize}`]);
  t = new Transport({ socketPath: path.join(br.root, 'warm.sock') });
  const warmRounds: [number, number][] = [];
  for (let i = 0; i < rounds; i++) {
    checkInterrupted();
    const waitUntil = Date.now() + 30_000;
    while ((await poolReady(t)) < 1) {
      if (Date.now() > waitUntil) throw new Error('the warm pool did not refill within 30 s');
      await new Promise((r) => setTimeout(r, 20));
    }
    warmRounds.push(await round(t));
  }
  const warmFirst = summarize(warmRounds.map((r) => r[0]));
  add('warm: create → first output', warmFirst);
  add('warm: create → first output → delete', summarize(warmRounds.map((r) => r[1])));
  t.close();
  await warm.stop();

  console.log(`exec: ${execs} timed calls each after 20 untimed; rounds: ${rounds} each; warm pool size ${poolSize}\n`);
  printTable(['what', 'n', 'p50 ms', 'p90 ms', 'p99 ms', 'mean ms'], rows);
  console.log('');
  verdict(`exec round trip p50 ≤ ${TARGET_EXEC_P50} ms`, execOne.p50 <= TARGET_EXEC_P50, `${ms(execOne.p50)} ms`);
  verdict(`create → first output p50 ≤ ${TARGET_WARM_P50} ms with the warm pool`, warmFirst.p50 <= TARGET_WARM_P50, `${ms(warmFirst.p50)} ms`);
  verdict(`create → first output p50 ≤ ${TARGET_COLD_P50} ms cold`, coldFirst.p50 <= TARGET_COLD_P50, `${ms(coldFirst.p50)} ms`);
});
