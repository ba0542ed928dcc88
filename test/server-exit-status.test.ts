// How a sandbox ended, through a real hutchd and the SDK: its view (get, list) and its 'stopped'
// event carry exitCode (128+N), signal and oomKilled, or agentDied when its agent was killed.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { hutchOk } from './helpers.js';
import { daemonFixture } from './server-kit.js';
import { events, Sandbox, type LifecycleEvent, type SandboxInfo } from '../src/sdk/index.js';
import { MANAGED_LABEL } from '../src/server/lifetime.js';

// The sweep notices sandboxes that stopped on their own: often, so that the events come quickly.
const fx = daemonFixture('exitapi', ['--sweep-interval', '100ms']);

/** Collects the 'stopped' events of hutchd until aborted. */
function stoppedEvents(signal: AbortSignal): { seen: LifecycleEvent[]; until: (id: string) => Promise<LifecycleEvent> } {
  const seen: LifecycleEvent[] = [];
  const listening = (async () => {
    for await (const e of events({ transport: fx.t, signal })) if (e.type === 'stopped') seen.push(e);
  })();
  listening.catch(() => undefined);
  return {
    seen,
    until: async (id) => {
      for (let i = 0; i < 400; i++) {
        const e = seen.find((x) => x.sandboxId === id);
        if (e) return e;
        await new Promise((r) => setTimeout(r, 25));
      }
      assert.fail(`no stopped event for ${id}`);
    },
  };
}

/** A sandbox of this hutchd with a main command (the API makes none: the CLI does, with hutchd's label). */
async function servedWithMain(args: string[]): Promise<string> {
  return (await hutchOk(fx.root, ['run', '-d', '--label', `${MANAGED_LABEL}=hutchd`, ...args])).trim();
}

const endOf = (i: SandboxInfo) => ({ status: i.status, exitCode: i.exitCode, signal: i.signal, oomKilled: i.oomKilled, agentDied: i.agentDied });

test('a main command killed by a signal or by the OOM killer: 137 + SIGKILL (+ oomKilled) in get, list and the stopped event', async () => {
  const abort = new AbortController();
  const stopped = stoppedEvents(abort.signal);
  // The sleep lets a sweep see them alive first: 'stopped' is for sandboxes that ended on their own.
  const killed = await servedWithMain(['busybox', '--', 'sh', '-c', 'sleep 1; kill -9 $$']);
  const hog = await servedWithMain(['--memory', '64m', 'busybox', '--', 'sh', '-c', 'sleep 1; x=a; while true; do x=$x$x; done']);
  const normal = await servedWithMain(['busybox', '--', 'sh', '-c', 'sleep 1; exit 7']);
  try {
    const [k, h, n] = [await stopped.until(killed), await stopped.until(hog), await stopped.until(normal)];
    assert.deepEqual([k.data?.exitCode, k.data?.signal, k.data?.oomKilled], [137, 'SIGKILL', undefined]);
    assert.deepEqual([h.data?.exitCode, h.data?.signal, h.data?.oomKilled], [137, 'SIGKILL', true]);
    assert.deepEqual([n.data?.exitCode, n.data?.signal], [7, undefined]);
    assert.deepEqual(endOf((await Sandbox.connect(killed, { transport: fx.t })).info), { status: 'stopped', exitCode: 137, signal: 'SIGKILL', oomKilled: undefined, agentDied: undefined });
    const listed = await Sandbox.list({ transport: fx.t, states: ['stopped'] });
    assert.deepEqual(endOf(listed.find((s) => s.id === hog)!), { status: 'stopped', exitCode: 137, signal: 'SIGKILL', oomKilled: true, agentDied: undefined });
    const seven = listed.find((s) => s.id === normal)!;
    assert.deepEqual(endOf(seven), { status: 'stopped', exitCode: 7, signal: undefined, oomKilled: undefined, agentDied: undefined });
    assert.ok(seven.finishedAt && Date.parse(seven.finishedAt) >= Date.parse(seven.startedAt!), 'finishedAt is set');
  } finally {
    abort.abort();
    await hutchOk(fx.root, ['rm', '-f', killed, hog, normal]);
  }
});

test('an SDK sandbox whose agent is killed from the host: stopped, agentDied, with a note, in get and the stopped event', async () => {
  const abort = new AbortController();
  const stopped = stoppedEvents(abort.signal);
  const sb = await Sandbox.create({ transport: fx.t });
  try {
    assert.deepEqual(endOf(sb.info), { status: 'running', exitCode: undefined, signal: undefined, oomKilled: undefined, agentDied: undefined });
    await new Promise((r) => setTimeout(r, 300)); // a sweep sees it alive
    process.kill(Number(fs.readFileSync(path.join(fx.root, 'sandboxes', sb.id, 'init.pid'), 'utf8')), 'SIGKILL');
    const e = await stopped.until(sb.id);
    assert.equal(e.data?.agentDied, true);
    assert.match(String(e.data?.note), /the agent died/);
    const info = await sb.refresh();
    assert.deepEqual(endOf(info), { status: 'stopped', exitCode: undefined, signal: undefined, oomKilled: undefined, agentDied: true });
    assert.match(info.note ?? '', /^the agent died \(killed or crashed\)$/);
  } finally {
    abort.abort();
    await sb.kill().catch(() => undefined);
    await hutchOk(fx.root, ['rm', '-f', sb.id]).catch(() => undefined);
  }
});
