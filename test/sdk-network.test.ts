// The SDK's network calls against a real hutchd: create on bridge (to a test-made upstream), the
// egress policy read and changed while it runs, published ports, host refused unless allowed,
// hutchd --network for plain creates and warm pools, named networks, bad input. Uses the one
// Upstream of the host (test/net-kit.ts): run this file alone, not beside test/network.test.ts.
import test, { after, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { daemonFixture } from './server-kit.js';
import { testPlatforms } from './helpers.js';
import { networkLeftovers, Upstream, UPSTREAM } from './net-kit.js';
import { HutchApiError, NotFoundError, Sandbox, type Transport } from '../src/sdk/index.js';

let upstream: Upstream;
const made: string[] = [];
const DNS_ENV = { HUTCH_DNS: UPSTREAM.dns };

before(async () => { upstream = await Upstream.start(); });
after(async () => {
  await upstream.stop();
  assert.deepEqual(networkLeftovers(made), [], 'no netns, rule or network file of the test\'s sandboxes is left');
});

/** Creates a sandbox and remembers its id for the leftover check. */
async function create(t: Transport, opts: Parameters<typeof Sandbox.create>[0] = {}): Promise<Sandbox> {
  const sb = await Sandbox.create({ transport: t, ...opts });
  made.push(sb.id);
  return sb;
}

/** `nc` from inside the sandbox to host:port: its output, or '' when it could not connect. */
async function connectFrom(sb: Sandbox, host: string, port: number): Promise<string> {
  const r = await sb.exec(`nc -w 2 ${host} ${port} </dev/null`);
  return r.exitCode === 0 ? r.stdout : '';
}

/** [status, code] of a call that must fail with a HutchApiError. */
async function refused(p: Promise<unknown>): Promise<[number, string, string]> {
  try {
    await p;
  } catch (e) {
    if (e instanceof HutchApiError) return [e.status, e.code, e.message];
    throw e;
  }
  throw new Error('the call did not fail');
}

/** GET http://127.0.0.1:port/ from the host, retried until something answers (or ~3 s). */
async function httpGet(port: number): Promise<string> {
  for (let i = 0; i < 30; i++) {
    const body = await new Promise<string>((resolve) => {
      http.get({ host: '127.0.0.1', port, path: '/' }, (res) => { let s = ''; res.on('data', (d) => { s += d; }); res.on('end', () => resolve(s)); }).on('error', () => resolve(''));
    });
    if (body) return body;
    await new Promise((r) => setTimeout(r, 100));
  }
  return '';
}

/** The text of hutchd's /metrics. */
async function metrics(t: Transport): Promise<string> {
  const res = await t.request({ method: 'GET', path: '/metrics' });
  let text = '';
  for await (const c of res) text += String(c);
  return text;
}

for (const [i, { name: platform, skip }] of testPlatforms().entries()) describe(`on ${platform}`, { ...(skip ? { skip } : {}) }, () => {
  const fx = daemonFixture(`sdknet-${platform}`, ['--platform', platform], DNS_ENV);

  test('bridge reaches the upstream through NAT; the policy set through the SDK takes effect and reads back', async () => {
    const sb = await create(fx.t, { network: 'bridge' });
    try {
      assert.equal(sb.info.network.name, 'bridge');
      assert.match(sb.info.network.address ?? '', /^10\.77\./);
      assert.deepEqual(sb.info.network.ports, []);
      assert.match(await connectFrom(sb, UPSTREAM.web1, UPSTREAM.port), new RegExp(`upstream ${UPSTREAM.web1} saw ${UPSTREAM.hostSide}`));
      assert.deepEqual(await sb.network.getPolicy(), { default: 'allow', allow: [], deny: [] });
      const deny = { default: 'deny' as const, allow: [{ cidr: `${UPSTREAM.web2}/32`, protocol: 'tcp' as const, ports: [UPSTREAM.port, UPSTREAM.port] as [number, number] }], deny: [] };
      assert.deepEqual(await sb.network.setPolicy(deny), deny);
      assert.deepEqual(await sb.network.getPolicy(), deny);
      assert.equal(await connectFrom(sb, UPSTREAM.web1, UPSTREAM.port), '', 'denied by the default');
      assert.match(await connectFrom(sb, UPSTREAM.web2, UPSTREAM.port), /upstream/, 'allowed by its rule');
      const dropped = new RegExp(`hutch_network_dropped_packets\\{sandbox="${sb.id}"\\} ([1-9]\\d*)`);
      assert.match(await metrics(fx.t), dropped, 'the dropped packets are in /metrics');
      // Absent fields take their defaults; deny wins over allow.
      assert.deepEqual(await sb.network.setPolicy({ deny: [{ cidr: UPSTREAM.web2 }] }), { default: 'allow', allow: [], deny: [{ cidr: `${UPSTREAM.web2}/32` }] }, 'an address is kept as its /32');
      assert.match(await connectFrom(sb, UPSTREAM.web1, UPSTREAM.port), /upstream/);
      assert.equal(await connectFrom(sb, UPSTREAM.web2, UPSTREAM.port), '');
      assert.equal((await sb.refresh()).network.name, 'bridge');
    } finally {
      await sb.kill();
    }
    // A policy given at create.
    const strict = await create(fx.t, { network: 'bridge', policy: { default: 'deny', allow: [{ cidr: UPSTREAM.web1 }] } });
    try {
      assert.match(await connectFrom(strict, UPSTREAM.web1, UPSTREAM.port), /upstream/);
      assert.equal(await connectFrom(strict, UPSTREAM.web2, UPSTREAM.port), '');
      assert.deepEqual(await strict.network.getPolicy(), { default: 'deny', allow: [{ cidr: `${UPSTREAM.web1}/32` }], deny: [] });
    } finally {
      await strict.kill();
    }
  });

  test('a create with ports publishes: busybox httpd inside answers on 127.0.0.1:PORT', async () => {
    const port = 21000 + ((process.pid + i * 7) % 20000);
    const ports = i % 2 === 0 ? [`127.0.0.1:${port}:8080`] : [{ hostIp: '127.0.0.1', hostPort: port, port: 8080 }];
    const sb = await create(fx.t, { network: 'bridge', ports });
    try {
      assert.deepEqual(sb.info.network.ports, [{ hostIp: '127.0.0.1', hostPort: port, port: 8080, protocol: 'tcp' }]);
      await sb.exec(`mkdir -p /www && echo hello-${platform} > /www/index.html`);
      await sb.spawn(['httpd', '-f', '-p', '8080', '-h', '/www'], { detached: true });
      assert.equal((await httpGet(port)).trim(), `hello-${platform}`);
    } finally {
      await sb.kill();
    }
  });

  test('host is refused without --allow-host-network; none has no policy; bad input is a clear 400/404', async () => {
    const [status, code, message] = await refused(create(fx.t, { network: 'host' }));
    assert.deepEqual([status, code], [403, 'EPERM']);
    assert.match(message, /--allow-host-network/);
    const none = await create(fx.t);
    try {
      assert.equal(none.info.network.name, 'none', 'no --network: none');
      assert.deepEqual((await refused(none.network.getPolicy())).slice(0, 2), [409, 'ESTATE']);
    } finally {
      await none.kill();
    }
    const cases: [Parameters<typeof Sandbox.create>[0], number, string, RegExp][] = [
      [{ network: 'bridge', policy: { default: 'deny', allow: [], deny: [], extra: 1 } as never }, 400, 'EINVAL', /unknown field "extra" in a policy/],
      [{ network: 'bridge', policy: { allow: [{ cidr: '10.0.0.0/8', port: 80 } as never] } }, 400, 'EINVAL', /unknown field "port" in a policy rule/],
      [{ network: 'bridge', policy: { allow: [{ cidr: '300.1.1.1/8' }] } }, 400, 'EINVAL', /invalid block in a policy rule "300\.1\.1\.1\/8"/],
      [{ network: 'bridge', policy: { allow: [{ cidr: '10.0.0.0/8', ports: [0, 5] }] } }, 400, 'EINVAL', /ports must be \[LOW, HIGH\], 1-65535/],
      [{ network: 'bridge', policy: { default: 'maybe' as never } }, 400, 'EINVAL', /invalid policy default "maybe"/],
      [{ network: 'bridge', ports: ['abc'] }, 400, 'EINVAL', /invalid host port "abc"/],
      [{ network: 'bridge', ports: [{ hostPort: 0, port: 80 }] }, 400, 'EINVAL', /port/],
      [{ network: 'bridge', ports: [{ hostPort: 8080, port: 80, protocol: 'sctp' as never }] }, 400, 'EINVAL', /protocol|tcp|udp/],
      [{ network: 'bridge', ports: 'abc' as never }, 400, 'EINVAL', /ports must be a list/],
      [{ ports: ['8080:80'] }, 400, 'EINVAL', /published ports need a network/],
      [{ network: 'no-such-net' }, 404, 'ENOTFOUND', /no network named "no-such-net"/],
    ];
    for (const [opts, wantStatus, wantCode, re] of cases) {
      const [s, c, m] = await refused(create(fx.t, opts));
      assert.deepEqual([s, c], [wantStatus, wantCode], `${JSON.stringify(opts)}: ${m}`);
      assert.match(m, re, JSON.stringify(opts));
      assert.ok(!m.includes('\n'), 'one line');
    }
    const sb = await create(fx.t, { network: 'bridge' });
    try {
      assert.deepEqual((await refused(sb.network.setPolicy({ allow: [{ cidr: '10.0.0.0/33' }] }))).slice(0, 2), [400, 'EINVAL']);
      assert.deepEqual((await refused(sb.network.setPolicy({ allow: [{ cidr: '10.0.0.0/8', ports: [9, 5] }] }))).slice(0, 2), [400, 'EINVAL']);
      assert.deepEqual(await sb.network.getPolicy(), { default: 'allow', allow: [], deny: [] }, 'a refused policy changed nothing');
    } finally {
      await sb.kill();
    }
    await assert.rejects(Sandbox.connect('no-such-sandbox', { transport: fx.t }).then((s) => s.network.getPolicy()), NotFoundError);
  });
});

describe('hutchd --network bridge --allow-host-network --pool busybox=1 (container platform)', () => {
  const fx = daemonFixture('sdknet-default', ['--platform', 'container', '--network', 'bridge', '--allow-host-network', '--pool', 'busybox=1'], DNS_ENV);
  const NET = `sdknet${process.pid % 100000}`;

  test('a create naming no network is on the bridge, a warm pool claim too; host is allowed', async () => {
    for (let n = 0; n < 300 && !/hutch_pool_ready\{image="busybox"\} 1/.test(await metrics(fx.t)); n++) await new Promise((r) => setTimeout(r, 100));
    const claimed = await create(fx.t);
    try {
      assert.match(await metrics(fx.t), /hutch_sandbox_create_seconds_count\{source="pool"\} 1/, 'it was a claim');
      assert.equal(claimed.info.network.name, 'bridge');
      assert.match(claimed.info.network.address ?? '', /^10\.77\./);
      assert.match(await connectFrom(claimed, UPSTREAM.web1, UPSTREAM.port), /upstream/);
      await claimed.network.setPolicy({ default: 'deny' });
      assert.equal(await connectFrom(claimed, UPSTREAM.web1, UPSTREAM.port), '', 'a claimed sandbox\'s policy changes too');
    } finally {
      await claimed.kill();
    }
    const cold = await create(fx.t, { name: `cold-${process.pid}` });
    const host = await create(fx.t, { network: 'host' });
    try {
      assert.equal(cold.info.network.name, 'bridge', 'a cold create too');
      assert.deepEqual(host.info.network, { name: 'host' });
      assert.deepEqual((await refused(host.network.setPolicy({ default: 'deny' }))).slice(0, 2), [409, 'ESTATE']);
    } finally {
      await cold.kill();
      await host.kill();
    }
  });

  test('named networks: create, list, sandboxes on it, remove refused while in use, then removed', async () => {
    const def = await Sandbox.createNetwork(NET, { transport: fx.t });
    try {
      assert.equal(def.name, NET);
      assert.match(def.subnet, /^10\.78\.\d+\.0\/24$/);
      assert.equal(def.isolated, false);
      assert.equal(def.sandboxes, 0);
      const listed = await Sandbox.listNetworks({ transport: fx.t });
      assert.ok(listed.some((n) => n.name === 'bridge' && n.isolated), JSON.stringify(listed));
      assert.deepEqual(listed.find((n) => n.name === NET), def);
      assert.deepEqual((await refused(Sandbox.createNetwork(NET, { transport: fx.t }))).slice(0, 2), [409, 'EEXIST']);
      assert.deepEqual((await refused(Sandbox.createNetwork('Bad Name', { transport: fx.t }))).slice(0, 2), [400, 'EINVAL']);
      assert.deepEqual((await refused(Sandbox.createNetwork(`x${process.pid}`, { transport: fx.t, subnet: '10.1.0.0/40' }))).slice(0, 2), [400, 'EINVAL']);
      const a = await create(fx.t, { network: NET, name: `alpha-${process.pid}` });
      const b = await create(fx.t, { network: NET });
      try {
        assert.equal(a.info.network.name, NET);
        await a.spawn('nc -l -p 7000 -e echo hello-from-alpha', { detached: true });
        await new Promise((r) => setTimeout(r, 300));
        assert.match(await connectFrom(b, `alpha-${process.pid}`, 7000), /hello-from-alpha/, 'by name');
        assert.equal((await Sandbox.listNetworks({ transport: fx.t })).find((n) => n.name === NET)?.sandboxes, 2);
        const [s, c, m] = await refused(Sandbox.removeNetwork(NET, { transport: fx.t }));
        assert.deepEqual([s, c], [409, 'ESTATE']);
        assert.match(m, /in use by 2 sandbox/);
      } finally {
        await a.kill();
        await b.kill();
      }
      await Sandbox.removeNetwork(NET, { transport: fx.t });
      assert.ok(!(await Sandbox.listNetworks({ transport: fx.t })).some((n) => n.name === NET));
    } finally {
      await Sandbox.removeNetwork(NET, { transport: fx.t }).catch(() => undefined);
    }
    assert.deepEqual((await refused(Sandbox.removeNetwork('no-such-net', { transport: fx.t }))).slice(0, 2), [404, 'ENOTFOUND']);
    const [bridgeStatus] = await refused(Sandbox.removeNetwork('bridge', { transport: fx.t }));
    assert.ok(bridgeStatus >= 400 && bridgeStatus < 500, `removing bridge is refused (${bridgeStatus})`);
  });
});
