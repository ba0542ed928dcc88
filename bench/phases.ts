// Where a CLI call's time goes: runs hutch verbs with HUTCH_TRACE=1 (each phase mark prints the ms since
// the process started) and reports the p50/mean of every phase between consecutive marks, with node's
// own boot (to the first line of user code) and the wall-clock tail (last mark to exit as the parent sees
// it) from the same runs. Labels come from hutch's marks, so the table follows whatever hutch marks.
// Usage: node dist/bench/phases.js [--n 20]
import path from 'node:path';
import { Engine } from '../src/engine/index.js';
import { hutchSpec, RuncPeer } from './runc-peer.js';
import { hutchCmd, interleave, intOption, makeBenchRoot, ms, printTable, runBench, summarize, timeCommand, type Cmd } from './common.js';

/** A traced run: its marks (label, ms since process start) and its wall time. */
interface Traced { marks: { label: string; at: number }[]; wall: number }

/** Runs `cmd` with HUTCH_TRACE=1 and collects its marks and wall time. */
async function traced(cmd: Cmd): Promise<Traced> {
  // Marks go to stderr; a tiny wrapper moves them to stdout so that timeCommand hands them back.
  const wrapped: Cmd = { file: process.execPath, args: ['-e', WRAPPER, cmd.file, ...cmd.args] };
  const r = await timeCommand(wrapped);
  const lines = r.stdout.split('\n');
  const wall = Number(lines.find((l) => l.startsWith('wall '))?.slice(5));
  const marks = lines.flatMap((l) => {
    const m = /^\[hutch ([\d.]+) ms\] (.*)$/.exec(l);
    return m ? [{ label: m[2]!, at: Number(m[1]) }] : [];
  });
  return { marks, wall };
}

/**
 * Spawns the traced command with HUTCH_TRACE=1, copies its stderr marks to stdout and prints its wall time
 * as seen from here, so that the wrapper's own start-up is not in the figure.
 */
const WRAPPER = `
const { spawn } = require('node:child_process');
const t0 = performance.now();
const c = spawn(process.argv[1], process.argv.slice(2), { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, HUTCH_TRACE: '1' } });
let err = '';
c.stderr.on('data', (d) => { err += d; });
let wall = 0;
c.on('exit', () => { wall = performance.now() - t0; });
c.on('close', (code) => {
  process.stdout.write(err + '\\nwall ' + wall + '\\n');
  if (code !== 0) { process.stderr.write(err); process.exitCode = 1; }
});
`;

/** Reports the phases of one verb, with its peer's wall time from the same runs for reference. */
function report(title: string, runs: Traced[], bootMs: number[], nodeTailMs: number[], peer: { label: string; ms: number[] }): void {
  const labels = runs[0]!.marks.map((m) => m.label);
  const rows: string[][] = [];
  const boot = summarize(bootMs);
  rows.push(['node boot to user code (`node -e`, same runs)', ms(boot.p50), ms(boot.mean)]);
  const first = summarize(runs.map((r) => r.marks[0]!.at));
  rows.push([`start → ${labels[0]} (node boot + loading the CLI)`, ms(first.p50), ms(first.mean)]);
  for (let i = 1; i < labels.length; i++) {
    const d = summarize(runs.map((r) => r.marks[i]!.at - r.marks[i - 1]!.at));
    rows.push([`${labels[i - 1]} → ${labels[i]}`, ms(d.p50), ms(d.mean)]);
  }
  const tail = summarize(runs.map((r) => r.wall - r.marks[r.marks.length - 1]!.at));
  rows.push([`${labels[labels.length - 1]} → exit seen by the parent`, ms(tail.p50), ms(tail.mean)]);
  const nodeTail = summarize(nodeTailMs);
  rows.push(['for reference: `node -p` from its code to its exit seen by the parent', ms(nodeTail.p50), ms(nodeTail.mean)]);
  const wall = summarize(runs.map((r) => r.wall));
  rows.push(['wall time', ms(wall.p50), ms(wall.mean)]);
  const p = summarize(peer.ms);
  rows.push([`for reference: ${peer.label}, wall time`, ms(p.p50), ms(p.mean)]);
  console.log(`## ${title} (${runs.length} runs)\n`);
  printTable(['phase, ms', 'p50', 'mean'], rows);
  console.log('');
}

runBench('phases: where a hutch call spends its time (HUTCH_TRACE=1)', async () => {
  const n = intOption('n', 20);
  const br = makeBenchRoot();
  const engine = new Engine({ root: br.root });
  const sb = await engine.create({ rootfs: 'busybox' });
  await engine.start(sb.id);
  const peer = new RuncPeer(br);
  const spec = await hutchSpec(engine, 'direct');
  const runcRun = async () => {
    const c = peer.prepare(spec, ['true']);
    try {
      return (await timeCommand(peer.runCmd(c))).ms;
    } finally {
      await peer.remove(c);
    }
  };
  const runcExec = async () => (await timeCommand(peer.execCmd(sb.id, ['true'], path.join(br.root, 'runc')))).ms;
  const verbs: { title: string; cmd: Cmd; peer: string; peerOnce: () => Promise<number> }[] = [
    { title: 'hutch run --rm busybox -- true', cmd: hutchCmd(br.root, ['run', '--rm', 'busybox', '--', 'true']), peer: 'runc run, same config', peerOnce: runcRun },
    { title: 'hutch exec ID -- true', cmd: hutchCmd(br.root, ['exec', sb.id, '--', 'true']), peer: 'runc exec ID true', peerOnce: runcExec },
  ];
  const peerMs = new Map<string, number[]>(verbs.map((v) => [v.title, []]));
  const runs = new Map<string, Traced[]>(verbs.map((v) => [v.title, []]));
  const bootMs: number[] = [];
  const nodeTailMs: number[] = [];
  const variants = [
    ...verbs.map((v) => ({ name: v.title, once: async () => { runs.get(v.title)!.push(await traced(v.cmd)); return 0; } })),
    ...verbs.map((v) => ({ name: v.peer, once: async () => { peerMs.get(v.title)!.push(await v.peerOnce()); return 0; } })),
    {
      name: 'boot',
      once: async () => {
        const r = await timeCommand({ file: process.execPath, args: ['-p', 'performance.now()'] });
        bootMs.push(Number(r.stdout));
        nodeTailMs.push(r.ms - Number(r.stdout));
        return 0;
      },
    },
  ];
  await interleave(2, variants);
  for (const r of [...runs.values(), ...peerMs.values()]) r.length = 0;
  bootMs.length = nodeTailMs.length = 0;
  await interleave(n, variants);
  for (const v of verbs) {
    const all = runs.get(v.title)!;
    const labels = all[0]!.marks.map((m) => m.label).join('|');
    if (!labels) throw new Error(`${v.title}: no HUTCH_TRACE marks (does this build print them?)`);
    // Runs that took another path (other marks) cannot be lined up with the rest.
    report(v.title, all.filter((r) => r.marks.map((m) => m.label).join('|') === labels), bootMs, nodeTailMs, { label: v.peer, ms: peerMs.get(v.title)! });
  }
  await engine.remove(sb.id, true);
});
