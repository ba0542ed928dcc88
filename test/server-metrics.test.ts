// Metrics: the Prometheus text format 0.0.4 as a scraper parses it.
import test from 'node:test';
import assert from 'node:assert/strict';
import { LATENCY_BUCKETS, Metrics, escapeLabelValue } from '../src/server/metrics.js';

type Sample = { name: string; labels: Record<string, string>; value: number };

/** A strict parser of the text format: every line is a comment (HELP/TYPE) or a well-formed sample. */
function parse(text: string): { samples: Sample[]; types: Map<string, string>; helps: Map<string, string> } {
  assert.ok(text.endsWith('\n'), 'ends with a newline');
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  const helps = new Map<string, string>();
  for (const line of text.slice(0, -1).split('\n')) {
    let m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (m) {
      if (m[1] === 'TYPE') {
        assert.ok(['counter', 'gauge', 'histogram'].includes(m[3]!), `type of ${m[2]}`);
        assert.ok(!types.has(m[2]!), `one TYPE line for ${m[2]}`);
        types.set(m[2]!, m[3]!);
      } else helps.set(m[2]!, m[3]!);
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `malformed line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    if (m[2] !== undefined) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/y;
      let pos = 0;
      while (pos < m[2].length) {
        re.lastIndex = pos;
        const l = re.exec(m[2]);
        assert.ok(l, `malformed labels: ${m[2]}`);
        labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_s, c: string) => (c === 'n' ? '\n' : c));
        pos = re.lastIndex;
      }
    }
    const value = m[3] === '+Inf' ? Infinity : Number(m[3]);
    assert.ok(!Number.isNaN(value), `value of ${line}`);
    const base = m[1]!.replace(/_(bucket|sum|count)$/, '');
    assert.ok(types.has(m[1]!) || types.get(base) === 'histogram', `TYPE given before sample ${m[1]}`);
    assert.ok(helps.has(m[1]!) || helps.has(base), `HELP given for ${m[1]}`);
    samples.push({ name: m[1]!, labels, value });
  }
  return { samples, types, helps };
}

const find = (s: Sample[], name: string, labels: Record<string, string>) =>
  s.filter((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));

test('an empty registry renders gauges for every state and pool, and declares every metric', () => {
  const m = new Metrics();
  const { samples, types } = parse(m.render({ sandboxesByState: { running: 3 }, pools: { busybox: { ready: 2, target: 4 } } }));
  assert.equal(types.get('hutch_sandboxes'), 'gauge');
  assert.equal(types.get('hutch_pool_ready'), 'gauge');
  assert.equal(types.get('hutch_pool_target'), 'gauge');
  assert.equal(types.get('hutch_sandbox_create_seconds'), 'histogram');
  assert.equal(types.get('hutch_exec_seconds'), 'histogram');
  assert.equal(types.get('hutch_http_requests_total'), 'counter');
  assert.equal(types.get('hutch_http_request_duration_seconds'), 'histogram');
  assert.equal(find(samples, 'hutch_sandboxes', { state: 'running' })[0]!.value, 3);
  assert.equal(find(samples, 'hutch_sandboxes', { state: 'paused' })[0]!.value, 0, 'known states shown as 0');
  assert.equal(find(samples, 'hutch_pool_ready', { image: 'busybox' })[0]!.value, 2);
  assert.equal(find(samples, 'hutch_pool_target', { image: 'busybox' })[0]!.value, 4);
});

test('histograms: cumulative buckets from 1 ms to 10 s, +Inf equals count, sum adds up', () => {
  const m = new Metrics();
  for (const s of [0.0005, 0.003, 0.003, 0.2, 42]) m.observeCreate(s, 'cold');
  m.observeCreate(0.002, 'pool');
  m.observeExec(0.004);
  const { samples } = parse(m.render({ sandboxesByState: {}, pools: {} }));
  const cold = find(samples, 'hutch_sandbox_create_seconds_bucket', { source: 'cold' });
  assert.deepEqual(cold.map((x) => x.labels.le), [...LATENCY_BUCKETS.map(String), '+Inf']);
  assert.equal(LATENCY_BUCKETS[0], 0.001);
  assert.equal(LATENCY_BUCKETS.at(-1), 10);
  const at = (le: string) => cold.find((x) => x.labels.le === le)!.value;
  assert.equal(at('0.001'), 1);
  assert.equal(at('0.0025'), 1);
  assert.equal(at('0.005'), 3);
  assert.equal(at('0.25'), 4);
  assert.equal(at('10'), 4, '42 s is beyond the last bucket');
  assert.equal(at('+Inf'), 5);
  for (let i = 1; i < cold.length; i++) assert.ok(cold[i]!.value >= cold[i - 1]!.value, 'cumulative');
  assert.equal(find(samples, 'hutch_sandbox_create_seconds_count', { source: 'cold' })[0]!.value, 5);
  assert.ok(Math.abs(find(samples, 'hutch_sandbox_create_seconds_sum', { source: 'cold' })[0]!.value - 42.2065) < 1e-9);
  assert.equal(find(samples, 'hutch_sandbox_create_seconds_count', { source: 'pool' })[0]!.value, 1);
  assert.equal(find(samples, 'hutch_exec_seconds_bucket', { le: '0.005' })[0]!.value, 1);
  assert.equal(find(samples, 'hutch_exec_seconds_bucket', { le: '0.0025' })[0]!.value, 0);
  assert.equal(find(samples, 'hutch_exec_seconds_count', {})[0]!.value, 1);
});

test('requests are counted by method, route and status; durations by method and route', () => {
  const m = new Metrics();
  m.observeRequest('GET', '/sandboxes', 200, 0.002);
  m.observeRequest('GET', '/sandboxes', 200, 0.004);
  m.observeRequest('POST', '/sandboxes', 201, 0.3);
  m.observeRequest('POST', '/sandboxes', 400, 0.001);
  const { samples } = parse(m.render({ sandboxesByState: {}, pools: {} }));
  assert.equal(find(samples, 'hutch_http_requests_total', { method: 'GET', route: '/sandboxes', status: '200' })[0]!.value, 2);
  assert.equal(find(samples, 'hutch_http_requests_total', { method: 'POST', status: '201' })[0]!.value, 1);
  assert.equal(find(samples, 'hutch_http_requests_total', { method: 'POST', status: '400' })[0]!.value, 1);
  assert.equal(find(samples, 'hutch_http_request_duration_seconds_count', { method: 'POST', route: '/sandboxes' })[0]!.value, 2);
});

test('label values with quotes, backslashes and newlines are escaped and parse back', () => {
  const m = new Metrics();
  const image = 'reg.example/a"b\\c\nd:1';
  m.observeRequest('GET', '/x"\\\n', 404, 0.01);
  const text = m.render({ sandboxesByState: { 'odd"state': 1 }, pools: { [image]: { ready: 1, target: 1 } } });
  assert.equal(escapeLabelValue('a"b\\c\nd'), 'a\\"b\\\\c\\nd');
  const { samples } = parse(text);
  assert.equal(find(samples, 'hutch_pool_ready', { image })[0]!.value, 1);
  assert.equal(find(samples, 'hutch_sandboxes', { state: 'odd"state' })[0]!.value, 1);
  assert.equal(find(samples, 'hutch_http_requests_total', { route: '/x"\\\n' })[0]!.value, 1);
});

test('request series are bounded: new label sets beyond the cap are counted under route="other"', () => {
  const m = new Metrics();
  for (let i = 0; i < 1200; i++) m.observeRequest('GET', `/r/${i}`, 200, 0.001);
  const { samples } = parse(m.render({ sandboxesByState: {}, pools: {} }));
  const counted = samples.filter((s) => s.name === 'hutch_http_requests_total');
  assert.ok(counted.length <= 1001, `${counted.length} series`);
  assert.equal(counted.reduce((a, s) => a + s.value, 0), 1200, 'nothing is lost');
  assert.equal(find(samples, 'hutch_http_requests_total', { route: 'other' })[0]!.value, 200);
});

test('negative or non-finite observations count as 0 rather than breaking the output', () => {
  const m = new Metrics();
  m.observeExec(-1);
  m.observeExec(NaN);
  const { samples } = parse(m.render({ sandboxesByState: {}, pools: {} }));
  assert.equal(find(samples, 'hutch_exec_seconds_bucket', { le: '0.001' })[0]!.value, 2);
  assert.equal(find(samples, 'hutch_exec_seconds_sum', {})[0]!.value, 0);
});
