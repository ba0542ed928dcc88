// A stand-in for the internet in a network namespace the test makes: routed from the host over a
// veth pair, with no route back to hutch's subnets (so only NAT lets a sandbox's packets return),
// TCP servers that say which address was asked and who asked, and a DNS server whose records the
// test changes. Only TEST-NET-2 addresses (198.51.100.0/24) and a /30 of the shared range are used.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** The upstream's addresses: two web servers and a DNS server. */
export const UPSTREAM = { web1: '198.51.100.10', web2: '198.51.100.11', dns: '198.51.100.53', port: 8080 } as const;

function ip(args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
}

const SERVER = `
const net = require('node:net'), dgram = require('node:dgram'), fs = require('node:fs');
const [records, log] = process.argv.slice(1);
for (const host of ${JSON.stringify([UPSTREAM.web1, UPSTREAM.web2])}) {
  net.createServer((c) => { fs.appendFileSync(log, host + ' ' + c.remoteAddress + '\\n'); c.end('upstream ' + host + ' saw ' + c.remoteAddress + '\\n'); }).listen(${UPSTREAM.port}, host);
}
// DNS: A records from the records file (name -> address), TTL 5.
const sock = dgram.createSocket('udp4');
sock.on('message', (q, rinfo) => {
  let i = 12, labels = [];
  while (q[i]) { labels.push(q.subarray(i + 1, i + 1 + q[i]).toString()); i += q[i] + 1; }
  const name = labels.join('.').toLowerCase(), qEnd = i + 5;
  const table = JSON.parse(fs.readFileSync(records, 'utf8'));
  const known = name in table, addr = q.readUInt16BE(i + 1) === 1 ? table[name] : undefined;
  const head = Buffer.from(q.subarray(0, qEnd)); head[2] = 0x81; head[3] = known ? 0x80 : 0x83; head.writeUInt16BE(addr ? 1 : 0, 6);
  const ans = addr ? Buffer.concat([Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4]), Buffer.from(addr.split('.').map(Number))]) : Buffer.alloc(0);
  sock.send(Buffer.concat([head, ans]), rinfo.port, rinfo.address);
});
sock.bind(53, ${JSON.stringify(UPSTREAM.dns)}, () => process.stdout.write('ready\\n'));
`;

/** The upstream netns with its servers; stop() removes all of it. */
export class Upstream {
  readonly ns: string;
  readonly hostLink: string;
  readonly dir: string;
  private server?: ChildProcess;
  /** The host routes this one added (stop removes only these: another Upstream's stay). */
  private readonly routes: string[] = [];

  private constructor(tag: string) {
    this.ns = `htest-up-${tag}`;
    this.hostLink = `htu${tag}`.slice(0, 15);
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-upstream-'));
  }

  /** Makes it: netns, veth, addresses, routes on the host to its servers, and the servers. */
  static async start(): Promise<Upstream> {
    const other = spawnSync('ip', ['route', 'show', `${UPSTREAM.web1}/32`], { encoding: 'utf8' }).stdout.trim();
    if (other) throw new Error(`another test's upstream is on this host (${other}): its addresses are fixed, run the network test files one at a time`);
    const u = new Upstream(String(process.pid % 100000));
    try {
      ip(['netns', 'add', u.ns]);
      ip(['link', 'add', u.hostLink, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', u.ns]);
      ip(['addr', 'add', '100.127.255.1/30', 'dev', u.hostLink]);
      ip(['link', 'set', u.hostLink, 'up']);
      for (const a of ['addr add 100.127.255.2/30 dev eth0', 'link set eth0 up', 'link set lo up', ...[UPSTREAM.web1, UPSTREAM.web2, UPSTREAM.dns].map((x) => `addr add ${x}/32 dev lo`)]) ip(['-n', u.ns, ...a.split(' ')]);
      for (const x of [UPSTREAM.web1, UPSTREAM.web2, UPSTREAM.dns]) {
        ip(['route', 'add', `${x}/32`, 'via', '100.127.255.2']);
        u.routes.push(x);
      }
      u.setRecords({});
      fs.writeFileSync(u.logFile, '');
      u.server = spawn('ip', ['netns', 'exec', u.ns, process.execPath, '-e', SERVER, u.recordsFile, u.logFile], { stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('the upstream servers did not start')), 10_000);
        u.server!.stdout!.once('data', () => { clearTimeout(timer); resolve(); });
        u.server!.once('exit', (c) => { clearTimeout(timer); reject(new Error(`the upstream servers exited ${c}`)); });
      });
      return u;
    } catch (e) {
      await u.stop();
      throw e;
    }
  }

  get recordsFile(): string { return path.join(this.dir, 'records.json'); }
  get logFile(): string { return path.join(this.dir, 'connections.log'); }

  /** Sets the DNS server's A records (name → address). */
  setRecords(records: Record<string, string>): void {
    fs.writeFileSync(`${this.recordsFile}.tmp`, JSON.stringify(records));
    fs.renameSync(`${this.recordsFile}.tmp`, this.recordsFile);
  }

  /** The connections its web servers saw: `server-address peer-address` lines. */
  connections(): string[] {
    return fs.readFileSync(this.logFile, 'utf8').split('\n').filter(Boolean);
  }

  /** Removes servers, routes, links, netns and files. */
  async stop(): Promise<void> {
    if (this.server && this.server.exitCode === null) {
      const gone = new Promise((r) => this.server!.once('exit', r));
      this.server.kill('SIGKILL');
      await gone;
    }
    for (const x of this.routes.splice(0)) spawnSync('ip', ['route', 'del', `${x}/32`, 'dev', this.hostLink], { stdio: 'ignore' });
    spawnSync('ip', ['link', 'del', this.hostLink], { stdio: 'ignore' });
    spawnSync('ip', ['netns', 'del', this.ns], { stdio: 'ignore' });
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** hutch's own network objects on the host that name one of `ids`: netns, host links, nftables chains. */
export function networkLeftovers(ids: string[]): string[] {
  const out: string[] = [];
  const netns = spawnSync('ip', ['netns', 'ls'], { encoding: 'utf8' }).stdout;
  const nft = spawnSync('nft', ['list', 'table', 'inet', 'hutch'], { encoding: 'utf8' }).stdout ?? '';
  for (const id of ids) {
    if (netns.includes(`hutch-${id}`)) out.push(`netns hutch-${id}`);
    if (nft.includes(`sb_${id}`)) out.push(`nftables objects of ${id}`);
    if (fs.existsSync(`/run/hutch-net/sandboxes/${id}`)) out.push(`network files of ${id}`);
  }
  return out;
}
