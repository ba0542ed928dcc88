// Benchmark: hutch as an OCI runtime, verb by verb (create, start, state, kill, delete), against
// runc's own verbs on the same bundle, with `node -e 0` alongside, interleaved round by round.
// Target: each hutch verb ≤ runc's + node's start-up + 10 ms (p50). hutch runs as callers run it:
// the installed launcher (start, kill and delete then skip node: docs/oci-runtime.md), or with
// --hutch node the bundle under node for every verb.
// Usage: node dist/bench/oci-verbs.js [--n 20] [--warmup 3] [--hutch /usr/local/bin/hutch|node]
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { specTemplate } from '../src/oci/index.js';
import {
  HUTCH_CLI, intOption, makeBenchRoot, ms, NODE_FLOOR, onCleanup, printTable, runBench, runQuiet, stringOption, summarize, timeCommand, verdict, type Cmd,
} from './common.js';

const VERBS = ['create', 'start', 'state', 'kill', 'delete'] as const;
type Verb = typeof VERBS[number];
const TARGET_OVERHEAD_MS = 10;

/** A bundle with a busybox rootfs and a `runc spec`-like config (no user namespace) running `sleep`. */
function makeBundle(dir: string, annotations: Record<string, string>): string {
  fs.mkdirSync(path.join(dir, 'rootfs', 'bin'), { recursive: true });
  for (const d of ['proc', 'sys', 'dev', 'tmp']) fs.mkdirSync(path.join(dir, 'rootfs', d));
  fs.copyFileSync('/bin/busybox', path.join(dir, 'rootfs', 'bin', 'busybox'));
  fs.symlinkSync('busybox', path.join(dir, 'rootfs', 'bin', 'sleep'));
  const spec = specTemplate();
  spec.process!.terminal = false;
  spec.process!.args = ['sleep', '1000'];
  if (Object.keys(annotations).length) spec.annotations = annotations;
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(spec));
  return dir;
}

/** One runtime under test: how to run a verb on a container id. */
interface Runtime { name: string; bundle: string; verb(verb: Verb, id: string): Cmd }

function runcRuntime(stateRoot: string, bundle: string, log: string): Runtime {
  return {
    name: 'runc', bundle,
    verb: (verb, id) => {
      const args = verb === 'create' ? ['create', '--bundle', bundle, id] : verb === 'kill' ? ['kill', id, 'KILL'] : [verb, id];
      return { file: 'runc', args: ['--root', stateRoot, ...args], ...(verb === 'create' ? { logFile: log } : {}) };
    },
  };
}

/** hutch through `launcher` (an installed `hutch` command), or node on the bundle when it is null. */
function hutchRuntime(name: string, launcher: string | null, ociRoot: string, bundle: string, log: string): Runtime {
  const [file, pre] = launcher === null ? [process.execPath, [HUTCH_CLI]] : [launcher, []];
  return {
    name, bundle,
    verb: (verb, id) => {
      const args = verb === 'create' ? ['create', '--bundle', bundle, id] : verb === 'kill' ? ['kill', id, 'KILL'] : [verb, id];
      return { file, args: [...pre, '--root', ociRoot, ...args], ...(verb === 'create' ? { logFile: log } : {}) };
    },
  };
}

/** Waits (untimed) until runc's state says the container stopped. */
async function waitStopped(stateRoot: string, id: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const r = await runQuiet({ file: 'runc', args: ['--root', stateRoot, 'state', id] });
    if (r.status === 0 && (JSON.parse(r.stdout) as { status: string }).status === 'stopped') return;
    await sleep(5);
  }
  throw new Error(`${id} did not stop`);
}

runBench('oci-verbs: hutch\'s OCI verbs against runc\'s', async () => {
  const n = intOption('n', 20);
  const warmup = intOption('warmup', 3);
  const br = makeBenchRoot();
  const log = path.join(br.root, 'containers.log');
  const runcRoot = path.join(br.root, 'runc');
  const ociRoot = path.join(br.root, 'oci');
  const hutchOption = stringOption('hutch', '/usr/local/bin/hutch');
  const launcher = hutchOption === 'node' ? null : hutchOption;
  if (launcher !== null && !fs.existsSync(launcher)) throw new Error(`${launcher} is not installed (run scripts/setup.sh, or pass --hutch node)`);
  console.log(`hutch: ${launcher ?? `node ${HUTCH_CLI}`}\n`);
  const runtimes: (Runtime & { executorRoot: string })[] = [
    { ...runcRuntime(runcRoot, makeBundle(path.join(br.root, 'bundle-plain'), {}), log), executorRoot: runcRoot },
    { ...hutchRuntime('hutch (profile off)', launcher, ociRoot, makeBundle(path.join(br.root, 'bundle-off'), { 'dev.hutch.profile': 'off' }), log), executorRoot: path.join(ociRoot, '.executor', 'runc') },
    { ...hutchRuntime('hutch (default profile)', launcher, ociRoot, path.join(br.root, 'bundle-plain'), log), executorRoot: path.join(ociRoot, '.executor', 'runc') },
  ];
  // Runs before sweepRoot (cleanups run last-registered first): containers hutch and runc made.
  onCleanup(async () => {
    for (const rt of runtimes) {
      const ids = (await runQuiet({ file: 'runc', args: ['--root', rt.executorRoot, 'list', '-q'] })).stdout.split('\n').filter(Boolean);
      for (const id of ids) {
        const r = rt.name === 'runc' ? await runQuiet({ file: 'runc', args: ['--root', rt.executorRoot, 'delete', '--force', id] })
          : await runQuiet({ file: process.execPath, args: [HUTCH_CLI, '--root', ociRoot, 'delete', '--force', id] });
        if (r.status !== 0) throw new Error(`delete ${id}: ${r.stderr.trim()}`);
      }
    }
  });
  const samples = new Map<string, number[]>();
  const add = (key: string, v: number) => { if (!samples.has(key)) samples.set(key, []); samples.get(key)!.push(v); };
  let seq = 0;
  for (let round = 0; round < warmup + n; round++) {
    const keep = round >= warmup;
    const node = await timeCommand(NODE_FLOOR);
    if (keep) add('node', node.ms);
    for (let k = 0; k < runtimes.length; k++) {
      const rt = runtimes[(round + k) % runtimes.length]!;
      // cgroups are named after the id: the tag prefix lets the sweep find a leaked one.
      const id = `${br.tag}-${seq++}`;
      for (const verb of VERBS) {
        if (verb === 'delete') await waitStopped(rt.executorRoot, id);
        const t = await timeCommand(rt.verb(verb, id));
        if (keep) add(`${rt.name}:${verb}`, t.ms);
      }
    }
  }
  const node = summarize(samples.get('node')!);
  console.log(`${n} rounds after ${warmup} warm-up; p50 (mean) in ms; node -e 0: ${ms(node.p50)} (${ms(node.mean)})\n`);
  const rows: string[][] = [];
  let allOk = true;
  for (const verb of VERBS) {
    const runc = summarize(samples.get(`runc:${verb}`)!);
    const row = [verb, `${ms(runc.p50)} (${ms(runc.mean)})`];
    for (const rt of runtimes.slice(1)) {
      const h = summarize(samples.get(`${rt.name}:${verb}`)!);
      row.push(`${ms(h.p50)} (${ms(h.mean)})`, ms(h.p50 - runc.p50 - node.p50));
      if (rt.name.includes('off')) allOk &&= h.p50 <= runc.p50 + node.p50 + TARGET_OVERHEAD_MS;
    }
    rows.push(row);
  }
  printTable(['verb', 'runc', 'hutch (profile off)', 'over runc+node', 'hutch (default profile)', 'over runc+node'], rows);
  verdict(`each verb ≤ runc + node + ${TARGET_OVERHEAD_MS} ms (profile off: the same config runc gets)`, allOk, 'p50');
});
