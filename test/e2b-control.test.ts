// The E2B control plane's mappings without a sandbox (docs/e2b.md): E2B's network options as hutch's
// network and egress policy, and the list's metadata filter and pages as E2B's SDK sends them.
import assert from 'node:assert/strict';
import test from 'node:test';
import type { SandboxInfo } from '../src/engine/index.js';
import { listPage, networkOf } from '../src/server/e2b/control.js';
import type { Services } from '../src/server/services.js';

const server = (defaultMode: string) => ({ network: { defaultMode, allowHost: false } }) as unknown as Services;

test('E2B network options: the server default, internet on and off, allow and deny lists', () => {
  assert.deepEqual(networkOf(server('none'), {}), { network: 'none' });
  assert.deepEqual(networkOf(server('bridge'), {}), { network: 'bridge' });
  assert.deepEqual(networkOf(server('none'), { allow_internet_access: true }), { network: 'bridge' });
  assert.deepEqual(networkOf(server('none'), { allow_internet_access: false }), { network: 'none' });
  assert.deepEqual(networkOf(server('bridge'), { allow_internet_access: false }), { network: 'bridge', policy: { default: 'deny', allow: [], deny: [] } });
  assert.deepEqual(networkOf(server('none'), { network: { denyOut: ['0.0.0.0/0'], allowOut: ['1.1.1.1', 'example.com'] } }),
    { network: 'bridge', policy: { default: 'deny', allow: [{ cidr: '1.1.1.1' }, { name: 'example.com' }], deny: [] } });
  assert.deepEqual(networkOf(server('bridge'), { network: { denyOut: ['10.0.0.0/8'] } }), { network: 'bridge', policy: { default: 'allow', allow: [], deny: [{ cidr: '10.0.0.0/8' }] } });
  assert.throws(() => networkOf(server('none'), { network: { rules: {} } }), /network.rules is not supported/);
  assert.throws(() => networkOf(server('none'), { network: { allowOut: 'x' } }), /allowOut must be a list/);
});

const sandbox = (id: string, labels: Record<string, string>, status = 'running', startedAt = '2026-01-01T00:00:00.000Z') =>
  ({ id, labels, status, createdAt: startedAt, startedAt, limits: {} }) as unknown as SandboxInfo;

/** The list URL as the SDK makes it: each key and value encoded, the pairs as a query string, that string encoded again. */
function listUrl(metadata: Record<string, string>, extra = ''): URL {
  const pairs = new URLSearchParams(Object.fromEntries(Object.entries(metadata).map(([k, v]) => [encodeURIComponent(k), encodeURIComponent(v)]))).toString();
  return new URL(`http://h/v2/sandboxes?metadata=${encodeURIComponent(pairs)}${extra}`);
}

test('E2B list: metadata with odd characters, state, pages', () => {
  const all = [
    sandbox('a', { 'team name': 'a&b=c', x: '1' }), sandbox('b', { 'team name': 'a&b=c' }, 'paused', '2026-01-02T00:00:00.000Z'),
    sandbox('c', { 'team name': 'other' }), sandbox('d', { 'team name': 'a&b=c' }, 'stopped'),
  ];
  assert.deepEqual(listPage(all, listUrl({ 'team name': 'a&b=c' })).page.map((i) => i.id), ['a', 'b']);
  assert.deepEqual(listPage(all, listUrl({ 'team name': 'a&b=c', x: '1' })).page.map((i) => i.id), ['a']);
  assert.deepEqual(listPage(all, listUrl({ 'team name': 'a&b=c' }, '&state=paused')).page.map((i) => i.id), ['b']);
  const first = listPage(all, new URL('http://h/v2/sandboxes?limit=2&order=desc'));
  assert.deepEqual(first.page.map((i) => i.id), ['b', 'c']);
  assert.equal(first.next, '2');
  const second = listPage(all, new URL(`http://h/v2/sandboxes?limit=2&order=desc&nextToken=${first.next}`));
  assert.deepEqual(second.page.map((i) => i.id), ['a']);
  assert.equal(second.next, undefined);
  assert.throws(() => listPage(all, new URL('http://h/v2/sandboxes?limit=0')), /limit must be/);
});
