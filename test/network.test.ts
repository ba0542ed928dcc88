// Sandbox networks (src/net): NAT to a stand-in internet, isolation, egress policy, published
// ports, named networks, bad input and cleanup. Only loopback and namespaces the test makes are
// ever a target (test/net-kit.ts).
import test, { after, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { cleanRoot, cleanUpAll, hutch, hutchOk, leftovers, platformRoot, testPlatforms } from './helpers.js';
import { networkLeftovers, Upstream, UPSTREAM } from './net-kit.js';

let upstream: Upstream;
const made: string[] = [];
const roots: string[] = [];
const NET = `tnet${process.pid % 100000}`;
const DNS_ENV = { HUTCH_DNS: UPSTREAM.dns };

before(async () => { upstream = await Upstream.start(); });
after(async () => {
  await cleanUpAll(...roots.map((r) => () => cleanRoot(r)), () => hutch(roots[0]!, ['network', 'rm', NET]), () => upstream.stop());
  for (const r of roots) assert.deepEqual(leftovers(r), []);
  assert.deepEqual(networkLeftovers(made), [], 'no netns, rule or network file of the test\'s sandboxes is left');
});

/** Runs a shell command in a new detached sandbox; returns its id. */
async function sandbox(root: string, flags: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const id = (await hutchOk(root, ['run', '-d', ...flags, 'busybox'], { env })).trim();
  made.push(id);
  return id;
}

/** `nc` from inside a sandbox to host:port; its output, or '' when it could not connect. */
async function connectFrom(root: string, id: string, host: string, port: number): Promise<string> {
  const r = await hutch(root, ['exec', id, 'sh', '-c', `nc -w 2 ${host} ${port} </dev/null`]);
  return r.code === 0 ? r.stdout : '';
}

for (const p of testPlatforms()) {
  describe(`on ${p.name}`, { skip: p.skip }, () => {
    let root: string;
    before(() => { root = platformRoot('net', p.name); roots.push(root); });

    test('bridge: the internet through NAT, with the sandbox\'s own resolv.conf and hosts; none reaches nothing', async () => {
      const id = await sandbox(root, ['--network', 'bridge', '--name', `web-${p.name}`], DNS_ENV);
      const out = await connectFrom(root, id, UPSTREAM.web1, UPSTREAM.port);
      // The upstream has no route to hutch's subnet: it saw the host's address, so NAT did its job.
      assert.match(out, new RegExp(`upstream ${UPSTREAM.web1} saw ${UPSTREAM.hostSide}`));
      // hutch's DNS service on the gateway answers it, forwarding to the upstream ($HUTCH_DNS).
      assert.equal((await hutchOk(root, ['exec', id, 'cat', '/etc/resolv.conf'])).trim(), 'nameserver 10.77.0.1');
      assert.match(await hutchOk(root, ['exec', id, 'cat', '/etc/hosts']), new RegExp(`^10\\.77\\.\\d+\\.\\d+\\tweb-${p.name}$`, 'm'));
      upstream.setRecords({ 'web1.upstream.test': UPSTREAM.web1 });
      assert.match(await hutchOk(root, ['exec', id, 'nslookup', 'web1.upstream.test']), new RegExp(UPSTREAM.web1.replace(/\./g, '\\.')));
      const info = JSON.parse(await hutchOk(root, ['inspect', id]))[0];
      assert.equal(info.network.name, 'bridge');
      assert.match(info.network.address, /^10\.77\./);
      if (p.name === 'gvisor') {
        const r = await hutch(root, ['checkpoint', id]);
        assert.match(r.stderr, /is on a network: gVisor's host network mode.*cannot be checkpointed/, 'refused in one line, before anything is stopped');
        assert.match(await connectFrom(root, id, UPSTREAM.web1, UPSTREAM.port), /upstream/, 'and it still runs');
      }
      const none = await sandbox(root, []);
      assert.equal(await connectFrom(root, none, UPSTREAM.web1, UPSTREAM.port), '', 'a sandbox on none reaches nothing');
      await hutchOk(root, ['rm', '-f', id, none]);
      assert.deepEqual(networkLeftovers([id]), []);
    });

    test('egress policy: allow lists of blocks and ports, deny first, a DNS name, changed while it runs', async () => {
      const id = await sandbox(root, ['--network', 'bridge', '--egress', 'deny', '--allow', `${UPSTREAM.web1}:tcp/${UPSTREAM.port}`], DNS_ENV);
      assert.match(await connectFrom(root, id, UPSTREAM.web1, UPSTREAM.port), /upstream/);
      assert.equal(await connectFrom(root, id, UPSTREAM.web2, UPSTREAM.port), '', 'an address no rule allows is dropped');
      const stats = JSON.parse(await hutchOk(root, ['stats', '--json', id]));
      assert.ok(stats.networkDroppedPackets > 0, `dropped packets are counted (${stats.networkDroppedPackets})`);
      // Changed while it runs: the whole block is allowed but web1 is denied; deny wins.
      const t0 = Date.now();
      await hutchOk(root, ['network', 'policy', id, '--egress', 'deny', '--allow', '198.51.100.0/24', '--deny', UPSTREAM.web1]);
      const changeMs = Date.now() - t0;
      assert.equal(await connectFrom(root, id, UPSTREAM.web1, UPSTREAM.port), '');
      assert.match(await connectFrom(root, id, UPSTREAM.web2, UPSTREAM.port), /upstream/);
      // A DNS name: the addresses it resolves to when the policy is set, and those the sandbox's own
      // lookups get as the record moves; names the policy does not allow are refused by hutch's DNS.
      upstream.setRecords({ 'allowed.upstream.test': UPSTREAM.web2, 'other.test': UPSTREAM.web1 });
      await hutchOk(root, ['network', 'policy', id, '--egress', 'deny', '--allow', `allowed.upstream.test:tcp/${UPSTREAM.port}`], { env: DNS_ENV });
      assert.match(await connectFrom(root, id, UPSTREAM.web2, UPSTREAM.port), /upstream/);
      assert.equal(await connectFrom(root, id, UPSTREAM.web1, UPSTREAM.port), '');
      upstream.setRecords({ 'allowed.upstream.test': UPSTREAM.web1, 'other.test': UPSTREAM.web1 });
      assert.match(await connectFrom(root, id, 'allowed.upstream.test', UPSTREAM.port), new RegExp(`upstream ${UPSTREAM.web1.replace(/\./g, '\\.')}`), 'the moved record, as the sandbox looked it up');
      const refused = await hutch(root, ['exec', id, 'nslookup', 'other.test']);
      assert.match(refused.stdout + refused.stderr, /REFUSED/, 'a name no rule allows is not even resolved');
      await hutchOk(root, ['network', 'policy', id, '--allow', '*.upstream.test:tcp/8080', '--deny', 'other.test']);
      assert.match(await hutchOk(root, ['exec', id, 'nslookup', 'allowed.upstream.test']), new RegExp(UPSTREAM.web1));
      assert.match((await hutch(root, ['exec', id, 'nslookup', 'other.test'])).stdout, /REFUSED/, 'deny names are refused');
      await hutchOk(root, ['network', 'policy', id, '--egress', 'deny', '--allow', `allowed.upstream.test:tcp/${UPSTREAM.port}`]);
      const shown = JSON.parse(await hutchOk(root, ['network', 'policy', id]));
      assert.deepEqual(shown, { default: 'deny', allow: [{ name: 'allowed.upstream.test', protocol: 'tcp', ports: [UPSTREAM.port, UPSTREAM.port] }], deny: [] });
      assert.ok(changeMs < 5000, `policy change took ${changeMs} ms (CLI included)`);
      await hutchOk(root, ['rm', '-f', id]);
    });

    test('the default policy keeps the host and its other networks out; the sandbox cannot change its network', async () => {
      const server = net.createServer((c) => c.end('host service\n'));
      await new Promise<void>((r) => server.listen(0, '0.0.0.0', r));
      const port = (server.address() as net.AddressInfo).port;
      try {
        const id = await sandbox(root, ['--network', 'bridge']);
        assert.equal(await connectFrom(root, id, '10.77.0.1', port), '', 'the host\'s own services, by the gateway');
        assert.equal(await connectFrom(root, id, UPSTREAM.hostSide, port), '', 'the host\'s other networks');
        assert.equal(await connectFrom(root, id, '169.254.169.254', 80), '', 'the metadata address');
        // No CAP_NET_ADMIN or CAP_NET_RAW over its netns: no route, address or link change, no raw or packet socket.
        for (const cmd of ['ip route del default', 'ip addr add 10.77.200.200/16 dev eth0', 'ip link set eth0 down', 'arping -c 1 -w 1 -I eth0 10.77.0.1']) {
          const r = await hutch(root, ['exec', id, 'sh', '-c', cmd]);
          assert.notEqual(r.code, 0, `${cmd} is refused inside`);
        }
        assert.match(await connectFrom(root, id, UPSTREAM.web1, UPSTREAM.port), /upstream/, 'and it is still online');
        await hutchOk(root, ['rm', '-f', id]);
      } finally {
        server.close();
      }
    });
  });
}

describe('networks, ports and bad input (container platform)', () => {
  let root: string;
  before(() => { root = platformRoot('net-misc', 'container'); roots.push(root); });

  test('two default-bridge sandboxes cannot talk; two on a named network can, by name; network rm waits for them', async () => {
    const a = await sandbox(root, ['--network', 'bridge']);
    const b = await sandbox(root, ['--network', 'bridge']);
    await hutchOk(root, ['exec', '-d', a, 'sh', '-c', 'nc -l -p 7000 -e echo hello-from-a']);
    const addrA = JSON.parse(await hutchOk(root, ['inspect', a]))[0].network.address;
    assert.equal(await connectFrom(root, b, addrA, 7000), '');
    await hutchOk(root, ['network', 'create', NET]);
    const ls = await hutchOk(root, ['network', 'ls']);
    assert.match(ls, new RegExp(`^${NET}\\s+10\\.78\\.\\d+\\.0/24`, 'm'));
    const c = await sandbox(root, ['--network', NET, '--name', `alpha-${process.pid}`]);
    const d = await sandbox(root, ['--network', NET, '--name', `beta-${process.pid}`]);
    await hutchOk(root, ['exec', '-d', c, 'sh', '-c', 'nc -l -p 7000 -e echo hello-from-alpha']);
    await new Promise((r) => setTimeout(r, 300));
    assert.match(await connectFrom(root, d, `alpha-${process.pid}`, 7000), /hello-from-alpha/, 'by name, through /etc/hosts');
    assert.match(await hutchOk(root, ['exec', d, 'nslookup', `alpha-${process.pid}`]), /10\.78\./, 'and through hutch\'s DNS');
    assert.equal(await connectFrom(root, a, JSON.parse(await hutchOk(root, ['inspect', c]))[0].network.address, 7000), '', 'a sandbox of another network cannot reach it');
    const rm = await hutch(root, ['network', 'rm', NET]);
    assert.notEqual(rm.code, 0);
    assert.match(rm.stderr, /in use by 2 sandbox/);
    await hutchOk(root, ['rm', '-f', a, b, c, d]);
    await hutchOk(root, ['network', 'rm', NET]);
    assert.doesNotMatch(await hutchOk(root, ['network', 'ls']), new RegExp(NET));
  });

  test('a published port reaches busybox httpd inside; a taken host port is refused in one line', async () => {
    const port = 20000 + (process.pid % 20000);
    const id = await sandbox(root, ['--network', 'bridge', '-p', `127.0.0.1:${port}:8080`]);
    await hutchOk(root, ['exec', id, 'sh', '-c', 'mkdir -p /www && echo hello-published > /www/index.html']);
    await hutchOk(root, ['exec', '-d', id, '--', 'httpd', '-f', '-p', '8080', '-h', '/www']);
    let body = '';
    for (let i = 0; i < 30 && !body; i++) {
      body = await new Promise<string>((resolve) => {
        http.get({ host: '127.0.0.1', port, path: '/' }, (res) => { let s = ''; res.on('data', (d) => { s += d; }); res.on('end', () => resolve(s)); }).on('error', () => resolve(''));
      });
      if (!body) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(body.trim(), 'hello-published');
    const clash = await hutch(root, ['run', '-d', '--network', 'bridge', '-p', `${port}:80`, 'busybox']);
    assert.notEqual(clash.code, 0);
    assert.match(clash.stderr, new RegExp(`${port}/tcp is published by sandbox ${id}`));
    assert.equal(clash.stderr.trim().split('\n').length, 1);
    await hutchOk(root, ['rm', '-f', id]);
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    try {
      const taken = await hutch(root, ['run', '-d', '--network', 'bridge', '-p', `127.0.0.1:${port}:80`, 'busybox']);
      assert.notEqual(taken.code, 0);
      assert.match(taken.stderr, /the host port is in use/);
    } finally {
      server.close();
    }
  });

  test('bad input gets one clear line: CIDRs, rules, ports, networks, names', async () => {
    const cases: [string[], RegExp][] = [
      [['run', '--network', 'bridge', '--allow', '300.1.1.1/8', 'busybox', 'true'], /invalid block "300\.1\.1\.1\/8"/],
      [['run', '--network', 'bridge', '--allow', '10.0.0.0/33', 'busybox', 'true'], /invalid block/],
      [['run', '--network', 'bridge', '--allow', 'tcp/99999', 'busybox', 'true'], /invalid ports "tcp\/99999"|want 1-65535|ports/],
      [['run', '--network', 'bridge', '--egress', 'maybe', 'busybox', 'true'], /invalid --egress "maybe"/],
      [['run', '--network', 'bridge', '--allow', 'bad_name!', 'busybox', 'true'], /invalid DNS name/],
      [['run', '--network', 'bridge', '-p', 'abc', 'busybox', 'true'], /invalid host port "abc"/],
      [['run', '--network', 'bridge', '-p', '1.2.3:80:80', 'busybox', 'true'], /invalid host address/],
      [['run', '-p', '8080:80', 'busybox', 'true'], /published ports need a network/],
      [['run', '--network', 'no-such-net', 'busybox', 'true'], /no network named "no-such-net"/],
      [['network', 'create', 'Bad Name'], /invalid network name/],
      [['network', 'create', 'bridge'], /reserved/],
      [['network', 'create', `x${process.pid}`, '--subnet', '10.1.0.0/40'], /invalid --subnet/],
      [['network', 'create', `x${process.pid}`, '--subnet', '10.77.5.0/24'], /overlaps 10\.77\.0\.0\/16/],
      [['network', 'rm', 'no-such-net'], /no network named/],
      [['network', 'policy', 'no-such-sandbox'], /no-such-sandbox/],
      [['network', 'frobnicate'], /unknown subcommand frobnicate/],
    ];
    for (const [args, re] of cases) {
      const r = await hutch(root, args);
      assert.notEqual(r.code, 0, `${args.join(' ')} fails`);
      assert.match(r.stderr, re, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, `${args.join(' ')}: one line`);
    }
    const none = await sandbox(root, []);
    const r = await hutch(root, ['network', 'policy', none, '--egress', 'deny']);
    assert.match(r.stderr, /is on no network/);
    await hutchOk(root, ['rm', '-f', none]);
  });

  test('addresses are never given out twice: 20 sandboxes made at once', async () => {
    const results = await Promise.all(Array.from({ length: 20 }, () => hutch(root, ['run', '-d', '--network', 'bridge', 'busybox'])));
    const ids = results.map((r) => { assert.equal(r.code, 0, r.stderr); return r.stdout.trim(); });
    made.push(...ids);
    const addrs = await Promise.all(ids.map(async (id) => JSON.parse(await hutchOk(root, ['inspect', id]))[0].network.address as string));
    assert.equal(new Set(addrs).size, 20, `distinct addresses: ${addrs.join(' ')}`);
    await hutchOk(root, ['rm', '-f', ...ids]);
    assert.deepEqual(networkLeftovers(ids), []);
  });

  test('kill -9 at the network points: rm -f leaves nothing', async () => {
    const known = async () => (JSON.parse(await hutchOk(root, ['ls', '--json'])) as { id: string }[]).map((x) => x.id);
    for (const point of ['create:allocated', 'create:network', 'create:executor', 'delete:deleting', 'delete:destroyed']) {
      const before = await known();
      if (point.startsWith('create')) {
        const r = await hutch(root, ['create', '--network', 'bridge', '-p', `127.0.0.1:${30000 + (process.pid % 20000)}:80`, 'busybox'], { env: { HUTCH_CRASH_AT: point } });
        assert.equal(r.signal, 'SIGKILL', `${point}: killed there (${r.code}: ${r.stderr.trim()})`);
      } else {
        const id = (await hutchOk(root, ['create', '--network', 'bridge', 'busybox'])).trim();
        const r = await hutch(root, ['rm', '-f', id], { env: { HUTCH_CRASH_AT: point } });
        assert.equal(r.signal, 'SIGKILL', `${point}: killed there (${r.code}: ${r.stderr.trim()})`);
      }
      const left = (await known()).filter((id) => !before.includes(id));
      made.push(...left);
      if (left.length) await hutchOk(root, ['rm', '-f', ...left]);
      assert.deepEqual(networkLeftovers(made), [], `after a crash at ${point}`);
    }
  });
});
