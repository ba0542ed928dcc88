// The event bus: synchronous fan-out, filters, unsubscribe, failing subscribers, bounded history.
import test from 'node:test';
import assert from 'node:assert/strict';
import { EventBus, type LifecycleEvent } from '../src/server/events.js';

test('publish reaches every subscriber synchronously, stamped with an ISO time', () => {
  const bus = new EventBus();
  const a: LifecycleEvent[] = [];
  const b: LifecycleEvent[] = [];
  bus.subscribe((e) => a.push(e));
  bus.subscribe((e) => b.push(e));
  const before = Date.now();
  bus.publish({ type: 'created', sandboxId: 's1', data: { image: 'busybox' } });
  assert.equal(a.length, 1, 'delivered before publish returned');
  assert.deepEqual(b, a);
  assert.equal(a[0]!.type, 'created');
  assert.equal(a[0]!.sandboxId, 's1');
  assert.deepEqual(a[0]!.data, { image: 'busybox' });
  assert.match(a[0]!.at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.ok(Date.parse(a[0]!.at) >= before - 1 && Date.parse(a[0]!.at) <= Date.now() + 1);
});

test('a sandboxId filter delivers only that sandbox\'s events; unsubscribe stops delivery', () => {
  const bus = new EventBus();
  const got: string[] = [];
  const all: string[] = [];
  const off = bus.subscribe((e) => got.push(`${e.type}:${e.sandboxId}`), { sandboxId: 's2' });
  bus.subscribe((e) => all.push(e.sandboxId));
  bus.publish({ type: 'created', sandboxId: 's1' });
  bus.publish({ type: 'started', sandboxId: 's2' });
  off();
  bus.publish({ type: 'stopped', sandboxId: 's2' });
  assert.deepEqual(got, ['started:s2']);
  assert.deepEqual(all, ['s1', 's2', 's2']);
  off(); // twice is harmless
  assert.equal(bus.subscriberCount, 1);
});

test('a subscriber that throws is removed, reported, and does not stop the others or the publisher', (t) => {
  const bus = new EventBus();
  const written: string[] = [];
  t.mock.method(process.stderr, 'write', (chunk: string) => { written.push(String(chunk)); return true; });
  const got: string[] = [];
  let calls = 0;
  bus.subscribe(() => { calls++; throw new Error('boom'); });
  bus.subscribe((e) => got.push(e.type));
  bus.publish({ type: 'created', sandboxId: 's1' });
  bus.publish({ type: 'removed', sandboxId: 's1' });
  assert.equal(calls, 1, 'the failing subscriber got one event and was removed');
  assert.deepEqual(got, ['created', 'removed']);
  assert.equal(bus.subscriberCount, 1);
  assert.equal(written.length, 1);
  assert.match(written[0]!, /subscriber failed on created of s1.*boom/);
});

test('subscribing or unsubscribing during delivery does not change who gets the current event', () => {
  const bus = new EventBus();
  const got: string[] = [];
  let offB: () => void = () => {};
  bus.subscribe((e) => {
    got.push(`a:${e.type}`);
    offB();
    bus.subscribe((e2) => got.push(`late:${e2.type}`));
  });
  offB = bus.subscribe((e) => got.push(`b:${e.type}`));
  bus.publish({ type: 'created', sandboxId: 'x' });
  // b was unsubscribed by a before its turn: it gets nothing; late subscribers start with the next event.
  assert.deepEqual(got, ['a:created']);
  bus.publish({ type: 'started', sandboxId: 'x' });
  assert.deepEqual(got, ['a:created', 'a:started', 'late:started']);
});

test('the history is bounded and filterable', () => {
  const bus = new EventBus({ historySize: 5 });
  for (let i = 0; i < 12; i++) bus.publish({ type: 'exec-started', sandboxId: i % 2 ? 'odd' : 'even', data: { i } });
  const recent = bus.recent();
  assert.equal(recent.length, 5);
  assert.deepEqual(recent.map((e) => e.data!.i), [7, 8, 9, 10, 11]);
  assert.deepEqual(bus.recent({ sandboxId: 'odd' }).map((e) => e.data!.i), [7, 9, 11]);
  const none = new EventBus({ historySize: 0 });
  none.publish({ type: 'created', sandboxId: 'a' });
  assert.deepEqual(none.recent(), []);
});

test('many publishes with no subscribers keep memory bounded (default history)', () => {
  const bus = new EventBus();
  for (let i = 0; i < 10_000; i++) bus.publish({ type: 'exec-exited', sandboxId: 's', data: { code: 0 } });
  assert.equal(bus.recent().length, 256);
});
