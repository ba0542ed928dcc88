// What bench/network.ts makes on the host besides sandboxes: network namespaces joined by veth
// pairs (the plain-veth peer, and an upstream with a TCP server on 198.51.100.110), processes run
// in a netns (iperf3, a connection probe), hutchd, and the check that none of it is left.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { sandboxLinkNames } from '../src/net/index.js';
import { HUTCH_CLI, onCleanup } from './common.js';

/** The upstream's server address and port (not one the network tests use). */
export const UPSTREAM_ADDR = '198.51.100.110';
export const UPSTREAM_PORT = 8110;

/** High-resolution wall clock (ms since the epoch), comparable between processes. */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

function ip(args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
}

/** A process this benchmark started; killed at cleanup (or earlier), and waited for. */
export class Proc {
  readonly child: ChildProcess;
  out = '';
  err = '';
  private readonly exited: Promise<void>;

  constructor(file: string, args: string[]) {
    this.child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    this.child.stdout!.on('data', (d: Buffer) => { this.out += d.toString(); });
    this.child.stderr!.on('data', (d: Buffer) => { if (this.err.length < 8192) this.err += d.toString(); });
    this.child.stdin!.on('error', () => undefined);
    this.exited = new Promise((r) => this.child.once('close', () => r()));
    onCleanup(() => this.stop());
  }

  /** Resolves once stdout holds `text`; throws on exit or after `timeoutMs`. */
  async waitFor(text: string, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.out.includes(text)) {
      if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(`${this.child.spawnargs.join(' ').slice(0, 200)} exited: ${this.err.trim().slice(0, 400)}`);
      if (Date.now() > deadline) throw new Error(`no "${text}" from ${this.child.spawnargs.join(' ').slice(0, 200)} within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 2));
    }
  }

  /** Waits for its exit. */
  done(): Promise<void> {
    return this.exited;
  }

  /** Kills its process group (it has its own session) and waits for it. */
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null && this.child.pid) {
      try { process.kill(-this.child.pid, 'SIGKILL'); } catch { /* gone already */ }
    }
    await this.exited;
  }
}

/** The benchmark's own netns and links, named by `tag`; remove() deletes them (idempotent). */
export class BenchNet {
  readonly peerA: string;
  readonly peerB: string;
  readonly up: string;
  readonly links: string[];
  readonly routes = [`${UPSTREAM_ADDR}/32`];

  constructor(readonly tag: string) {
    this.peerA = `hbench-a-${tag}`;
    this.peerB = `hbench-b-${tag}`;
    this.up = `hbench-up-${tag}`;
    this.links = [`hbU${tag}`];
    onCleanup(() => this.remove());
  }

  /** Two netns joined by a veth pair: 100.127.253.1 in A, .2 in B. */
  makePeerPair(): { a: string; b: string; addrA: string; addrB: string } {
    ip(['netns', 'add', this.peerA]);
    ip(['netns', 'add', this.peerB]);
    ip(['-n', this.peerA, 'link', 'add', 'veth0', 'type', 'veth', 'peer', 'name', 'veth0', 'netns', this.peerB]);
    for (const [ns, addr] of [[this.peerA, '100.127.253.1/30'], [this.peerB, '100.127.253.2/30']] as const) {
      for (const a of [`addr add ${addr} dev veth0`, 'link set veth0 up', 'link set lo up']) ip(['-n', ns, ...a.split(' ')]);
    }
    return { a: this.peerA, b: this.peerB, addrA: '100.127.253.1', addrB: '100.127.253.2' };
  }

  /** An upstream netns routed from the host (no route back to hutch's subnets: NAT answers), with a TCP server that accepts and closes. */
  async makeUpstream(): Promise<Proc> {
    const hostLink = this.links[0]!;
    ip(['netns', 'add', this.up]);
    ip(['link', 'add', hostLink, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', this.up]);
    ip(['addr', 'add', '100.127.254.1/30', 'dev', hostLink]);
    ip(['link', 'set', hostLink, 'up']);
    for (const a of ['addr add 100.127.254.2/30 dev eth0', 'link set eth0 up', 'link set lo up', `addr add ${UPSTREAM_ADDR}/32 dev lo`]) ip(['-n', this.up, ...a.split(' ')]);
    ip(['route', 'add', `${UPSTREAM_ADDR}/32`, 'via', '100.127.254.2']);
    const server = `require('node:net').createServer((c) => c.end()).listen(${UPSTREAM_PORT}, '${UPSTREAM_ADDR}', () => console.log('ready'));`;
    const p = new Proc('ip', ['netns', 'exec', this.up, process.execPath, '-e', server]);
    await p.waitFor('ready');
    return p;
  }

  /** Deletes routes, links and netns it made. */
  remove(): void {
    for (const r of this.routes) spawnSync('ip', ['route', 'del', r], { stdio: 'ignore' });
    for (const l of this.links) if (fs.existsSync(`/sys/class/net/${l}`)) spawnSync('ip', ['link', 'del', l], { stdio: 'ignore' });
    for (const ns of [this.peerA, this.peerB, this.up]) if (fs.existsSync(`/run/netns/${ns}`)) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  }

  /** Its own objects still on the host. */
  leftovers(): string[] {
    const out: string[] = [];
    for (const ns of [this.peerA, this.peerB, this.up]) if (fs.existsSync(`/run/netns/${ns}`)) out.push(`netns ${ns}`);
    for (const l of this.links) if (fs.existsSync(`/sys/class/net/${l}`)) out.push(`link ${l}`);
    const routes = spawnSync('ip', ['route', 'show', `${UPSTREAM_ADDR}/32`], { encoding: 'utf8' }).stdout.trim();
    if (routes) out.push(`route ${routes}`);
    return out;
  }
}

/** What hutch's network layer left of these sandboxes: netns, host veths; and the table when `tableMustGo`. */
export function sandboxNetLeftovers(ids: string[], tableMustGo: boolean): string[] {
  const out: string[] = [];
  for (const id of ids) {
    const { netns, hostInterface } = sandboxLinkNames(id);
    if (fs.existsSync(`/run/netns/${netns}`)) out.push(`netns ${netns}`);
    if (fs.existsSync(`/sys/class/net/${hostInterface}`)) out.push(`link ${hostInterface}`);
  }
  // Another user's sandbox (a concurrent test run) keeps the table and the bridge: only then may they stay.
  const others = fs.existsSync('/run/netns') && fs.readdirSync('/run/netns').some((n) => n.startsWith('hutch-'));
  if (tableMustGo && !others) {
    if (spawnSync('nft', ['list', 'table', 'inet', 'hutch'], { stdio: 'ignore' }).status === 0) out.push('nftables table inet hutch');
    if (fs.existsSync('/sys/class/net/hutch0')) out.push('bridge hutch0');
  }
  return out;
}

/** Runs `iperf3 -c` (in `clientNs` when given) against a one-shot server in `serverNs` on `addr`; received bits/s. */
export async function iperfOnce(serverNs: string, addr: string, clientNs: string | null, seconds: number): Promise<number> {
  const port = '5311';
  const server = new Proc('ip', ['netns', 'exec', serverNs, 'iperf3', '-s', '-1', '-B', addr, '-p', port, '--forceflush']);
  try {
    await server.waitFor('listening');
    const args = ['iperf3', '-c', addr, '-p', port, '-t', String(seconds), '-J'];
    const client = clientNs ? new Proc('ip', ['netns', 'exec', clientNs, ...args]) : new Proc(args[0]!, args.slice(1));
    await client.done();
    if (client.child.exitCode !== 0) throw new Error(`iperf3 -c ${addr} exited ${client.child.exitCode}: ${(client.err || client.out).trim().slice(0, 400)}`);
    const j = JSON.parse(client.out) as { end?: { sum_received?: { bits_per_second?: number } } };
    const bps = j.end?.sum_received?.bits_per_second;
    if (typeof bps !== 'number') throw new Error(`iperf3 gave no sum_received: ${client.out.slice(0, 300)}`);
    await server.done();
    return bps;
  } finally {
    await server.stop();
  }
}

/**
 * Runs in the sandbox's netns: told `watch ok` or `watch refused` on stdin, it answers `ready`, then starts a
 * connection to the upstream every ms (150 ms timeout: a dropped SYN is a refusal) until three in a row, in
 * the order they started, have the outcome watched for and none before them is pending; it prints
 * `done <epoch ms at which the first of them started>`.
 */
const PROBE = `
const net = require('node:net');
const { performance } = require('node:perf_hooks');
const now = () => performance.timeOrigin + performance.now();
const [host, port] = process.argv.slice(1);
let buf = '';
process.stdin.on('data', (d) => {
  buf += d; let i;
  while ((i = buf.indexOf('\\n')) >= 0) { const line = buf.slice(0, i); buf = buf.slice(i + 1); watch(line.split(' ')[1] === 'ok'); }
});
function watch(wantOk) {
  const tries = [];
  process.stdout.write('ready\\n');
  const timer = setInterval(() => {
    const t = { start: now(), ok: null };
    tries.push(t);
    const s = net.connect({ host, port: Number(port) });
    const end = (ok) => { if (t.ok === null) { t.ok = ok; s.destroy(); check(); } };
    s.setTimeout(150, () => end(false));
    s.once('connect', () => end(true));
    s.once('error', () => end(false));
  }, 1);
  let finished = false;
  function check() {
    if (finished) return;
    for (let i = 0; i + 3 <= tries.length; i++) {
      if (tries[i].ok === null) return;
      if ([0, 1, 2].every((k) => tries[i + k].ok === wantOk)) { finished = true; clearInterval(timer); process.stdout.write('done ' + tries[i].start + '\\n'); return; }
    }
  }
}
`;

/** The probe above, started in a netns. */
export class Probe {
  private readonly p: Proc;
  private seen = 0;

  constructor(netns: string) {
    this.p = new Proc('ip', ['netns', 'exec', netns, process.execPath, '-e', PROBE, UPSTREAM_ADDR, String(UPSTREAM_PORT)]);
  }

  /** Starts watching for `ok` (accepted) or refused connections; resolves once the probe runs. */
  async arm(wantOk: boolean): Promise<void> {
    const before = this.p.out.length;
    this.p.child.stdin!.write(`watch ${wantOk ? 'ok' : 'refused'}\n`);
    const deadline = Date.now() + 10_000;
    while (!this.p.out.slice(before).includes('ready')) {
      if (Date.now() > deadline || this.p.child.exitCode !== null) throw new Error(`the probe did not start: ${this.p.err.trim().slice(0, 400)}`);
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  /** The epoch ms at which the first connection with the watched outcome started. */
  async result(timeoutMs = 10_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const lines = this.p.out.split('\n').filter((l) => l.startsWith('done '));
      if (lines.length > this.seen) return Number(lines[this.seen++]!.slice(5));
      if (Date.now() > deadline) throw new Error(`the probe saw no change within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 1));
    }
  }
}

/** Starts `hutch serve` on a socket (with `flags`); resolves once it serves; stopped at cleanup. */
export async function startHutchd(root: string, socket: string, flags: string[]): Promise<Proc> {
  const p = new Proc(process.execPath, [HUTCH_CLI, '--root', root, 'serve', '--socket', socket, ...flags]);
  const deadline = Date.now() + 15_000;
  while (!p.err.includes('serving on')) {
    if (p.child.exitCode !== null || Date.now() > deadline) throw new Error(`hutchd did not start: ${p.err.trim().slice(0, 400)}`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return p;
}
