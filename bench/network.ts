// Benchmark of sandbox networks (issue M8): create on `bridge` against `none` (CLI and engine; the
// first sandbox's cold cost apart), TCP throughput host → sandbox over the bridge against a plain veth
// pair between two netns, egress policy change → new connections follow it (engine and CLI), and
// HTTP through hutchd's port forward against a direct GET to the same server over the bridge.
// Usage: node dist/bench/network.js [--quick] [--n 20] [--n-http 200] [--n-policy 10] [--iperf-repeats 3]
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Engine } from '../src/engine/index.js';
import { Sandbox, Transport } from '../src/sdk/index.js';
import { NetworkManager, type EgressPolicy } from '../src/net/index.js';
import { BenchNet, epochMs, iperfOnce, Probe, sandboxNetLeftovers, startHutchd, UPSTREAM_PORT, UPSTREAM_ADDR } from './net-kit.js';
import { checkInterrupted, hutchCmd, interleave, intOption, makeBenchRoot, ms, onCleanup, printTable, runBench, summarize, timeCommand, timingRow, verdict } from './common.js';

const quick = process.argv.includes('--quick');
const TARGET_CREATE_MS = 5;
const TARGET_THROUGHPUT = 0.9;
const TARGET_POLICY_MS = 100;

/** One GET with a fresh connection (no keep-alive); ms to the end of the body, which must be `hi`. */
function getOnce(opts: http.RequestOptions): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = http.request({ ...opts, method: 'GET', agent: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => (res.statusCode === 200 && body === 'hi\n' ? resolve(performance.now() - t0) : reject(new Error(`GET ${opts.path}: ${res.statusCode} ${body.slice(0, 200)}`))));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

runBench('networks: create on bridge vs none, throughput, policy change, port forward', async () => {
  const n = intOption('n', quick ? 3 : 20);
  const nHttp = intOption('n-http', quick ? 20 : 200);
  const nPolicy = intOption('n-policy', quick ? 2 : 10);
  const repeats = intOption('iperf-repeats', quick ? 1 : 3);
  const seconds = quick ? 1 : 3;
  const ids = new Set<string>();
  const bridgeAtStart = fs.existsSync('/sys/class/net/hutch0');
  // Registered first, so it runs last: after the sandboxes, netns and processes are gone.
  onCleanup(() => {
    const left = [...sandboxNetLeftovers([...ids], !bridgeAtStart), ...benchNet.leftovers()];
    if (left.length) throw new Error(`left behind: ${left.join('; ')}`);
    console.log(`cleanup: ${ids.size} sandboxes' netns and veths, the benchmark's netns, links and route gone${bridgeAtStart ? '' : '; no inet hutch table, no hutch0'}`);
  });
  const benchNet = new BenchNet(randomBytes(2).toString('hex'));
  const br = makeBenchRoot();
  const engine = new Engine({ root: br.root });
  await engine.setup();
  const hutch = (args: string[]) => hutchCmd(br.root, args);
  const cliRun = async (bridge: boolean) => {
    const r = await timeCommand(hutch(['run', '-d', ...(bridge ? ['--network', 'bridge'] : []), 'busybox']));
    const id = r.stdout.trim();
    ids.add(id);
    return { id, ms: r.ms };
  };
  const cliRm = async (id: string) => (await timeCommand(hutch(['rm', '-f', id]))).ms;
  const rows: string[][] = [];

  // 1a. Cold: the first sandbox on bridge makes hutch0 and the table; its removal drops them.
  if (bridgeAtStart) {
    console.log('hutch0 exists already (another user\'s sandbox): no cold figure in this run\n');
  } else {
    const cold: number[] = [], coldRm: number[] = [];
    for (let i = 0; i < Math.min(n, 5); i++) {
      checkInterrupted();
      if (fs.existsSync('/sys/class/net/hutch0')) { console.log('hutch0 appeared (another user): cold rounds stopped'); break; }
      const { id, ms: t } = await cliRun(true);
      cold.push(t);
      coldRm.push(await cliRm(id));
    }
    if (cold.length) {
      rows.push(timingRow('cold: run -d --network bridge (makes hutch0 + table)', summarize(cold)));
      rows.push(timingRow('cold: rm -f of the last bridge sandbox (drops them)', summarize(coldRm)));
    }
  }

  // 1b. Steady state: an anchor sandbox keeps the bridge.
  const anchor = await cliRun(true);
  const cli = await interleave(n, [
    { name: 'none', once: async () => { const r = await cliRun(false); await cliRm(r.id); return r.ms; } },
    { name: 'bridge', once: async () => { const r = await cliRun(true); await cliRm(r.id); return r.ms; } },
  ]);
  const rmTimes = new Map<string, number[]>([['none', []], ['bridge', []]]);
  const engineOnce = (network: 'none' | 'bridge') => async () => {
    const t0 = performance.now();
    const sb = await engine.create({ rootfs: 'busybox', network });
    ids.add(sb.id);
    await engine.start(sb.id);
    const t = performance.now() - t0;
    const t1 = performance.now();
    await engine.remove(sb.id, true);
    rmTimes.get(network)!.push(performance.now() - t1);
    return t;
  };
  const eng = await interleave(n, [{ name: 'none', once: engineOnce('none') }, { name: 'bridge', once: engineOnce('bridge') }]);
  const cs = { none: summarize(cli.get('none')!), bridge: summarize(cli.get('bridge')!) };
  const es = { none: summarize(eng.get('none')!), bridge: summarize(eng.get('bridge')!) };
  rows.push(timingRow('CLI run -d busybox (none)', cs.none), timingRow('CLI run -d --network bridge busybox', cs.bridge));
  rows.push(timingRow('engine.create + start (none)', es.none), timingRow('engine.create + start (bridge)', es.bridge));
  rows.push(timingRow('engine.remove(force) (none)', summarize(rmTimes.get('none')!)), timingRow('engine.remove(force) (bridge)', summarize(rmTimes.get('bridge')!)));
  console.log(`create: ${n} rounds each, interleaved; steady state with an anchor sandbox on bridge; cold rounds first\n`);
  printTable(['ms', 'n', 'p50', 'p90', 'mean'], rows);
  const dCli = cs.bridge.p50 - cs.none.p50, dEng = es.bridge.p50 - es.none.p50;
  console.log(`\n  bridge − none, p50: CLI +${ms(dCli)} ms (${(cs.bridge.p50 / cs.none.p50).toFixed(2)}×), engine +${ms(dEng)} ms (${(es.bridge.p50 / es.none.p50).toFixed(2)}×)`);
  verdict(`create on bridge ≤ none + ${TARGET_CREATE_MS} ms p50 (CLI)`, dCli <= TARGET_CREATE_MS, `+${ms(dCli)} ms`);
  verdict(`create on bridge ≤ none + ${TARGET_CREATE_MS} ms p50 (engine)`, dEng <= TARGET_CREATE_MS, `+${ms(dEng)} ms`);

  // 2. Throughput: host → the anchor sandbox's netns over the bridge, against netns A → netns B over a veth pair.
  const pair = benchNet.makePeerPair();
  const anchorAddr = engine.mustRead(anchor.id).network!.address!;
  const anchorNs = `hutch-${anchor.id}`;
  const bps = await interleave(repeats, [
    { name: 'bridge', once: () => iperfOnce(anchorNs, anchorAddr, null, seconds) },
    { name: 'veth', once: () => iperfOnce(pair.b, pair.addrB, pair.a, seconds) },
  ]);
  const gbit = (v: number) => (v / 1e9).toFixed(2);
  const tb = summarize(bps.get('bridge')!), tv = summarize(bps.get('veth')!);
  console.log(`\nTCP throughput, iperf3 -t ${seconds}, ${repeats} runs each, interleaved (Gbit/s received)\n`);
  printTable(['Gbit/s', 'n', 'p50', 'min', 'max'], [
    ['host → sandbox (its netns, veth, hutch0)', String(tb.n), gbit(tb.p50), gbit(tb.min), gbit(tb.max)],
    ['netns → netns, plain veth pair', String(tv.n), gbit(tv.p50), gbit(tv.min), gbit(tv.max)],
  ]);
  verdict(`throughput over the bridge ≥ ${TARGET_THROUGHPUT}× a plain veth`, tb.p50 >= TARGET_THROUGHPUT * tv.p50, `${(tb.p50 / tv.p50).toFixed(2)}×`);

  // 3. Policy change → a new connection from the sandbox is refused / accepted.
  await benchNet.makeUpstream();
  const net = new NetworkManager();
  const deny: EgressPolicy = { default: 'deny', allow: [], deny: [] };
  const allow: EgressPolicy = { default: 'deny', allow: [{ cidr: `${UPSTREAM_ADDR}/32`, protocol: 'tcp', ports: [UPSTREAM_PORT, UPSTREAM_PORT] }], deny: [] };
  const probe = new Probe(anchorNs);
  const lat = new Map<string, number[]>();
  const push = (k: string, v: number) => { lat.set(k, [...(lat.get(k) ?? []), v]); };
  const change = async (how: 'engine' | 'CLI', policy: EgressPolicy, record = true) => {
    const wantOk = policy === allow;
    await probe.arm(wantOk);
    const t0 = epochMs();
    if (how === 'engine') await net.setPolicy(anchor.id, policy);
    else await timeCommand(hutch(['network', 'policy', anchor.id, '--egress', 'deny', ...(wantOk ? ['--allow', `${UPSTREAM_ADDR}/32:tcp/${UPSTREAM_PORT}`] : [])]));
    const returned = epochMs() - t0;
    const seen = (await probe.result()) - t0;
    if (!record) return;
    push(`${how} ${wantOk ? 'accepted' : 'refused'}: call returns`, returned);
    push(`${how} ${wantOk ? 'accepted' : 'refused'}: first new connection`, seen);
  };
  await change('engine', allow, false); // a warm-up that also checks the upstream answers
  for (let i = 0; i < nPolicy; i++) {
    checkInterrupted();
    for (const how of (i % 2 ? ['CLI', 'engine'] : ['engine', 'CLI']) as ('engine' | 'CLI')[]) {
      await change(how, deny);
      await change(how, allow);
    }
  }
  await net.setPolicy(anchor.id, { default: 'allow', allow: [], deny: [] });
  console.log(`\nPolicy change → new connections from the sandbox follow it (${nPolicy} changes each way; probe: a connection every ms, 150 ms = refused)\n`);
  printTable(['ms from the call', 'n', 'p50', 'p90', 'mean'], [...lat].map(([k, v]) => timingRow(k, summarize(v))));
  for (const how of ['engine', 'CLI']) {
    const worst = Math.max(...['accepted', 'refused'].map((d) => summarize(lat.get(`${how} ${d}: first new connection`)!).p50));
    verdict(`policy change → new connections follow it ≤ ${TARGET_POLICY_MS} ms p50 (${how})`, worst <= TARGET_POLICY_MS, `${ms(worst)} ms (the slower direction)`);
  }

  // 4. HTTP through hutchd's port forward against a direct GET to the same busybox httpd over the bridge.
  const socket = path.join(br.root, 'hutchd.sock');
  // hutchd serves only sandboxes it made: this one is made through the API, on bridge (hutchd's --network).
  const hutchd = await startHutchd(br.root, socket, ['--network', 'bridge']);
  const transport = new Transport({ socketPath: socket });
  onCleanup(() => transport.close());
  const web = await Sandbox.create({ transport });
  ids.add(web.id);
  const www = await web.exec('mkdir -p /tmp/www && echo hi > /tmp/www/index.html && httpd -p 8080 -h /tmp/www');
  if (www.exitCode !== 0) throw new Error(`httpd did not start: ${www.stderr.trim()}`);
  const webAddr = (await engine.inspect(web.id)).network?.address;
  if (!webAddr) throw new Error(`the API's sandbox ${web.id} has no address: is it on bridge?`);
  const viaApi = () => getOnce({ socketPath: socket, path: `/v1/sandboxes/${web.id}/ports/8080/` });
  const direct = () => getOnce({ host: webAddr, port: 8080, path: '/' });
  for (let i = 0; i < 10; i++) { await viaApi(); await direct(); }
  const got = await interleave(nHttp, [{ name: 'api', once: viaApi }, { name: 'direct', once: direct }]);
  await web.kill();
  transport.close();
  await hutchd.stop();
  const ha = summarize(got.get('api')!), hd = summarize(got.get('direct')!);
  console.log(`\nGET / of busybox httpd in the sandbox, a new connection each, ${nHttp} each, interleaved after 10 untimed\n`);
  printTable(['ms', 'n', 'p50', 'p90', 'p99', 'mean'], [
    timingRow('hutchd /v1/sandboxes/ID/ports/8080/ (unix socket → agent → 127.0.0.1:8080)', ha, true),
    timingRow(`direct: host → ${webAddr}:8080 over hutch0 (a new TCP connection)`, hd, true),
  ]);
  console.log(`\n  port forward / direct, p50: ${(ha.p50 / hd.p50).toFixed(2)}× (+${ms(ha.p50 - hd.p50)} ms)`);
  await cliRm(anchor.id);
  console.log('');
});
