// Benchmark of E2B compatibility (issue M9): E2B's own JS SDK against a local `hutchd --e2b`, against
// hutch's own SDK on the same hutchd in the same run, interleaved: create → first `echo hi` output,
// with and without a warm pool, and a command's round trip in a running sandbox.
//
// The e2b SDK is never a dependency of hutch: it is taken from the cache dir that test/e2b-sdk.test.ts
// installs it into (~/.cache/hutch/e2b-sdk-2.51.0, or $HUTCH_E2B_SDK_CACHE/e2b-sdk-2.51.0), installed
// there by `npm install` as the test does when it is missing. It runs in one long-lived child node
// (a driver written into a temp dir) that speaks a line protocol over stdin/stdout and times each step
// itself, so node's start is in no figure; hutch's SDK is timed in this process the same way.
// Usage: node dist/bench/e2b.js [--quick] [--n 100] [--n-exec 200] [--pool 2]
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { performance } from 'node:perf_hooks';
import { Engine } from '../src/engine/index.js';
import { Sandbox, Transport } from '../src/sdk/index.js';
import { checkInterrupted, HUTCH_CLI, interleave, intOption, makeBenchRoot, ms, onCleanup, printTable, runBench, summarize, timingRow, verdict, type Summary } from './common.js';

const quick = process.argv.includes('--quick');
const SDK_VERSION = '2.51.0';
const TARGET_WARM_P50 = 30;
const TARGET_EXEC_P50 = 10;

/** The e2b SDK's install dir in the cache, installed there first (as the test does) when missing. */
function sdkDir(): string {
  const base = process.env['HUTCH_E2B_SDK_CACHE'] ?? path.join(os.homedir(), '.cache', 'hutch');
  const dir = path.join(base, `e2b-sdk-${SDK_VERSION}`);
  const installed = (d: string) => {
    try {
      return (JSON.parse(fs.readFileSync(path.join(d, 'node_modules', 'e2b', 'package.json'), 'utf8')) as { version?: string }).version === SDK_VERSION;
    } catch {
      return false; // not there
    }
  };
  if (installed(dir)) return dir;
  console.log(`e2b@${SDK_VERSION} is not in ${dir}: installing it there from npm (as test/e2b-sdk.test.ts does)`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-e2b-'));
  onCleanup(() => fs.rmSync(tmp, { recursive: true, force: true }));
  fs.writeFileSync(path.join(tmp, 'package.json'), JSON.stringify({ name: 'hutch-e2b-sdk-test', private: true, type: 'module' }));
  const r = spawnSync('npm', ['install', '--no-save', '--no-audit', '--no-fund', '--prefix', tmp, `e2b@${SDK_VERSION}`], { encoding: 'utf8', timeout: 240_000 });
  if (r.status !== 0 || !installed(tmp)) throw new Error(`could not install e2b@${SDK_VERSION}: ${(r.stderr || r.error?.message || '').trim().split('\n').pop() ?? ''} (run test/e2b-sdk.test.ts once with the registry reachable)`);
  fs.mkdirSync(base, { recursive: true });
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(tmp, dir);
  return dir;
}

/**
 * The driver: one JSON request a line on stdin, one JSON answer a line on stdout. `round` creates a
 * sandbox, runs `echo hi`, kills it (ms to the output, and to the end of the kill); `open` creates the
 * sandbox the `exec` requests run `true` in; `close` kills it.
 */
const DRIVER = `import { Sandbox } from 'e2b';
import readline from 'node:readline';
import { performance } from 'node:perf_hooks';
let held;
const ops = {
  async round() {
    const t0 = performance.now();
    const s = await Sandbox.create({ timeoutMs: 300_000 });
    const r = await s.commands.run('echo hi');
    const first = performance.now() - t0;
    if (r.stdout !== 'hi\\n') throw new Error('unexpected output ' + JSON.stringify(r.stdout));
    await s.kill();
    return { first, total: performance.now() - t0 };
  },
  async open() { held = await Sandbox.create({ timeoutMs: 600_000 }); return { id: held.sandboxId }; },
  async exec() {
    const t0 = performance.now();
    const r = await held.commands.run('true');
    const t = performance.now() - t0;
    if (r.exitCode !== 0) throw new Error('true exited ' + r.exitCode);
    return { ms: t };
  },
  async close() { if (held) await held.kill(); held = undefined; return {}; },
};
const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  const { op } = JSON.parse(line);
  try { process.stdout.write(JSON.stringify({ ok: true, ...(await ops[op]()) }) + '\\n'); }
  catch (e) { process.stdout.write(JSON.stringify({ ok: false, error: String(e?.constructor?.name) + ': ' + String(e?.message ?? e) }) + '\\n'); }
}
`;

/** The e2b driver in its child node: `call(op)` sends one request and resolves to its answer. */
class Driver {
  private readonly child: ChildProcess;
  private readonly waiting: ((line: string) => void)[] = [];
  private stderr = '';
  private readonly exited: Promise<void>;

  constructor(project: string, env: NodeJS.ProcessEnv) {
    this.child = spawn(process.execPath, [path.join(project, 'driver.mjs')], { cwd: project, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    this.exited = new Promise((resolve) => this.child.once('exit', () => resolve()));
    this.child.stderr!.on('data', (d: Buffer) => { if (this.stderr.length < 8192) this.stderr += d.toString(); });
    readline.createInterface({ input: this.child.stdout! }).on('line', (l) => this.waiting.shift()?.(l));
    void this.exited.then(() => { for (const w of this.waiting.splice(0)) w(JSON.stringify({ ok: false, error: `the e2b driver exited: ${this.stderr.trim().slice(-800)}` })); });
  }

  async call(op: string): Promise<Record<string, number | string>> {
    const line = await new Promise<string>((resolve) => {
      this.waiting.push(resolve);
      this.child.stdin!.write(`${JSON.stringify({ op })}\n`);
    });
    const a = JSON.parse(line) as { ok: boolean; error?: string } & Record<string, number | string>;
    if (!a.ok) throw new Error(`e2b ${op}: ${a.error}`);
    return a;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.stdin!.end();
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
      await this.exited;
      clearTimeout(timer);
    }
  }
}

/** `hutch serve --e2b` on TCP with a token file; resolves to its URL once it serves. Stopped at cleanup. */
async function startE2bHutchd(root: string, tokenFile: string, flags: string[]): Promise<{ url: string; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, [HUTCH_CLI, '--root', root, 'serve', '--socket', path.join(root, `hutchd-${randomBytes(2).toString('hex')}.sock`),
    '--listen', '127.0.0.1:0', '--token-file', tokenFile, '--e2b', ...flags], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let stderr = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  };
  onCleanup(stop);
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      const m = /serving on .*?(http:\/\/\S+)/.exec(stderr);
      if (m) resolve(m[1]!);
    });
    void exited.then(() => reject(new Error(`hutchd exited: ${stderr.trim().slice(0, 800)}`)));
  });
  return { url, stop };
}

/** The metrics hutchd gives: ready pool sandboxes, and creates served from the pool and cold. */
async function metrics(t: Transport): Promise<{ ready: number; pool: number; cold: number }> {
  const res = await t.request({ method: 'GET', path: '/metrics' });
  let text = '';
  for await (const c of res) text += String(c);
  const num = (re: RegExp) => Number(re.exec(text)?.[1] ?? 0);
  return {
    ready: num(/^hutch_pool_ready\{image="busybox"[^}]*\} (\d+)/m),
    pool: num(/^hutch_sandbox_create_seconds_count\{source="pool"[^}]*\} (\d+)/m),
    cold: num(/^hutch_sandbox_create_seconds_count\{source="cold"[^}]*\} (\d+)/m),
  };
}

runBench('E2B compatibility: the e2b SDK against hutchd --e2b, against hutch\'s own SDK', async () => {
  const n = intOption('n', quick ? 10 : 100);
  const nExec = intOption('n-exec', quick ? 20 : 200);
  const poolSize = intOption('pool', 2);
  const sdk = sdkDir();
  const br = makeBenchRoot();
  await new Engine({ root: br.root }).setup(); // busybox rootfs and agent runtime built before timing
  const token = randomBytes(24).toString('hex');
  const tokenFile = path.join(br.root, 'tokens');
  fs.writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
  const project = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-e2b-bench-'));
  onCleanup(() => {
    fs.rmSync(project, { recursive: true, force: true });
    if (fs.existsSync(project)) throw new Error(`left behind: ${project}`);
  });
  fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ private: true, type: 'module' }));
  fs.symlinkSync(path.join(sdk, 'node_modules'), path.join(project, 'node_modules'));
  fs.writeFileSync(path.join(project, 'driver.mjs'), DRIVER);
  console.log(`e2b@${SDK_VERSION} from ${sdk}; driver in ${project}\n`);

  const rows: string[][] = [];
  const summaries = new Map<string, Summary>();
  const add = (name: string, samples: number[]) => {
    const s = summarize(samples);
    summaries.set(name, s);
    rows.push(timingRow(name, s, true));
  };

  /** One phase: a hutchd with `flags`, both SDKs on it; with a pool, each create waits (untimed) for a ready one. */
  const phase = async (label: string, flags: string[], withExec: boolean) => {
    const d = await startE2bHutchd(br.root, tokenFile, ['--sweep-interval', '1s', ...flags]);
    const t = new Transport({ baseUrl: d.url, token });
    const driver = new Driver(project, { E2B_API_URL: d.url, E2B_SANDBOX_URL: d.url, E2B_API_KEY: token, E2B_DOMAIN: '', E2B_DEBUG: '' });
    onCleanup(() => driver.stop());
    onCleanup(() => t.close());
    const waitReady = async () => {
      if (!flags.includes('--pool')) return;
      const until = Date.now() + 30_000;
      while ((await metrics(t)).ready < 1) {
        if (Date.now() > until) throw new Error('the warm pool did not refill within 30 s');
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    const first = new Map<string, number[]>([['e2b', []], ['hutch', []]]);
    const hutchRound = async () => {
      const t0 = performance.now();
      const sb = await Sandbox.create({ transport: t });
      const r = await sb.exec('echo hi');
      const f = performance.now() - t0;
      if (r.stdout !== 'hi\n') throw new Error(`unexpected output ${JSON.stringify(r.stdout)}`);
      await sb.kill();
      first.get('hutch')!.push(f);
      return performance.now() - t0;
    };
    const e2bRound = async () => {
      const a = await driver.call('round');
      first.get('e2b')!.push(a['first'] as number);
      return a['total'] as number;
    };
    // Untimed warm-up: the first of each loads its code paths (and the e2b SDK's modules).
    for (let i = 0; i < 2; i++) { checkInterrupted(); await waitReady(); await e2bRound(); await waitReady(); await hutchRound(); }
    first.set('e2b', []); first.set('hutch', []);
    const before = await metrics(t);
    const wrap = (f: () => Promise<number>) => async () => { await waitReady(); return f(); };
    const totals = await interleave(n, [{ name: 'e2b', once: wrap(e2bRound) }, { name: 'hutch', once: wrap(hutchRound) }]);
    const after = await metrics(t);
    add(`${label}: e2b create → commands.run('echo hi') output`, first.get('e2b')!);
    add(`${label}: hutch Sandbox.create → exec('echo hi') output`, first.get('hutch')!);
    add(`${label}: e2b, the same + kill`, totals.get('e2b')!);
    add(`${label}: hutch, the same + kill`, totals.get('hutch')!);
    console.log(`${label}: creates served from the pool ${after.pool - before.pool}, cold ${after.cold - before.cold} (of ${2 * n})`);
    if (withExec) {
      await driver.call('open');
      const sb = await Sandbox.create({ transport: t });
      for (let i = 0; i < 20; i++) { await driver.call('exec'); await sb.exec('true'); }
      const ex = await interleave(nExec, [
        { name: 'e2b', once: async () => (await driver.call('exec'))['ms'] as number },
        { name: 'hutch', once: async () => { const t0 = performance.now(); const r = await sb.exec('true'); if (r.exitCode !== 0) throw new Error(`true exited ${r.exitCode}`); return performance.now() - t0; } },
      ]);
      add(`e2b commands.run('true') in a running sandbox`, ex.get('e2b')!);
      add(`hutch sb.exec('true') in a running sandbox`, ex.get('hutch')!);
      await driver.call('close');
      await sb.kill();
    }
    await driver.stop();
    t.close();
    await d.stop();
    // Every sandbox of the phase is gone once hutchd stopped (its pool is drained by the stop).
    const left = await new Engine({ root: br.root }).list();
    if (left.length) throw new Error(`${label}: ${left.length} sandboxes left after hutchd stopped: ${left.map((i) => i.id).join(' ')}`);
  };

  await phase('cold', [], true);
  await phase(`warm (pool ${poolSize})`, ['--pool', `busybox=${poolSize}`], false);
  console.log(`\n${n} rounds each, e2b and hutch interleaved, after 2 untimed each; exec: ${nExec} each after 20 untimed.`);
  console.log(`warm: before each create the benchmark waits (untimed) until /metrics shows a ready pool sandbox.`);
  console.log('no sandbox left after either hutchd stopped (checked with the engine on the state root)\n');
  printTable(['ms', 'n', 'p50', 'p90', 'p99', 'mean'], rows);
  const g = (k: string) => summaries.get(k)!;
  const ratio = (a: string, b: string) => `${(g(a).p50 / g(b).p50).toFixed(2)}× (${g(a).p50 >= g(b).p50 ? '+' : '−'}${ms(Math.abs(g(a).p50 - g(b).p50))} ms)`;
  const warm = `warm (pool ${poolSize})`;
  console.log('');
  console.log(`  e2b / hutch, p50: cold create → output ${ratio("cold: e2b create → commands.run('echo hi') output", "cold: hutch Sandbox.create → exec('echo hi') output")}`);
  console.log(`  e2b / hutch, p50: warm create → output ${ratio(`${warm}: e2b create → commands.run('echo hi') output`, `${warm}: hutch Sandbox.create → exec('echo hi') output`)}`);
  console.log(`  e2b / hutch, p50: command round trip ${ratio("e2b commands.run('true') in a running sandbox", "hutch sb.exec('true') in a running sandbox")}\n`);
  const warmE2b = g(`${warm}: e2b create → commands.run('echo hi') output`).p50;
  const execE2b = g("e2b commands.run('true') in a running sandbox").p50;
  verdict(`e2b create → first output p50 ≤ ${TARGET_WARM_P50} ms with the warm pool`, warmE2b <= TARGET_WARM_P50, `${ms(warmE2b)} ms`);
  verdict(`e2b commands.run('true') p50 ≤ ${TARGET_EXEC_P50} ms`, execE2b <= TARGET_EXEC_P50, `${ms(execE2b)} ms`);
  console.log('');
});
