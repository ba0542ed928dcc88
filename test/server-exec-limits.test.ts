// A `wait: true` exec stays within what hutchd promises: its timeoutMs holds even when the sandbox's
// agent hangs, and the output it holds is bounded per command and across all commands together.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { HutchApiError, Sandbox } from '../src/sdk/index.js';
import { daemonFixture } from './server-kit.js';

// 8 MiB for all wait:true commands together, so that three chatty commands pass it.
const fx = daemonFixture('exec-limits', ['--max-buffered-output', '8m']);

/** The host pid of a sandbox's init (its agent), from the pid file runc wrote. */
function agentPid(id: string): number {
  return Number(fs.readFileSync(path.join(fx.root, 'sandboxes', id, 'init.pid'), 'utf8'));
}

/** POSTs a wait:true exec; resolves with the status, body and time it took. */
async function execWait(id: string, json: Record<string, unknown>): Promise<{ status: number; body: Record<string, unknown>; ms: number }> {
  const t0 = Date.now();
  try {
    const body = await fx.t.json<Record<string, unknown>>({ method: 'POST', path: `/v1/sandboxes/${id}/processes`, json: { wait: true, ...json } });
    return { status: 200, body, ms: Date.now() - t0 };
  } catch (e) {
    if (!(e instanceof HutchApiError)) throw e;
    return { status: e.status, body: { code: e.code, message: e.message }, ms: Date.now() - t0 };
  }
}

test('timeoutMs holds when the agent hangs before the command starts', async () => {
  const sb = await Sandbox.create({ transport: fx.t });
  const pid = agentPid(sb.id);
  try {
    process.kill(pid, 'SIGSTOP');
    const r = await execWait(sb.id, { cmd: 'echo never', timeoutMs: 1500 });
    assert.equal(r.status, 504, JSON.stringify(r.body));
    assert.equal(r.body['code'], 'ETIMEDOUT');
    assert.match(String(r.body['message']), /did not start within its timeoutMs/);
    assert.ok(r.ms < 3500, `answered after ${r.ms} ms`);
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  // Thawed, the agent serves again, and the late start was killed rather than left running.
  assert.equal((await sb.exec('echo back')).stdout, 'back\n');
  await sb.kill();
});

test('timeoutMs holds when the agent hangs while the command runs', async () => {
  const sb = await Sandbox.create({ transport: fx.t });
  const pid = agentPid(sb.id);
  try {
    const pending = execWait(sb.id, { cmd: 'sleep 30', timeoutMs: 1500 });
    await new Promise((r) => setTimeout(r, 500));
    process.kill(pid, 'SIGSTOP'); // the kill at the deadline then goes unanswered
    const r = await pending;
    assert.equal(r.status, 504, JSON.stringify(r.body));
    assert.match(String(r.body['message']), /ran longer than its timeoutMs and was killed \(the sandbox's agent did not confirm the kill\)/);
    assert.ok(r.ms < 1500 + 2000 + 1500, `answered after ${r.ms} ms`);
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  // The kill reached the agent once it ran again.
  let ps = '';
  for (let i = 0; i < 50; i++) {
    ps = (await sb.exec('ps -o args')).stdout;
    if (!/sleep 30/.test(ps)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.doesNotMatch(ps, /sleep 30/);
  await sb.kill();
});

test('a timeout with a live agent kills the command and answers at once', async () => {
  const sb = await Sandbox.create({ transport: fx.t });
  const r = await execWait(sb.id, { cmd: 'sleep 30', timeoutMs: 500 });
  assert.equal(r.status, 504);
  assert.match(String(r.body['message']), /ran longer than its timeoutMs and was killed$/);
  assert.ok(r.ms < 2000, `answered after ${r.ms} ms`);
  await sb.kill();
});

test('output held for wait:true commands is bounded in total: past it one gets 503 EBUSY, others are served', async () => {
  const sb = await Sandbox.create({ transport: fx.t });
  // Each writes 4 MiB and then waits, so that all three hold their output at once.
  const chatty = { cmd: 'head -c 4194304 /dev/zero; sleep 2' };
  const rs = await Promise.all([execWait(sb.id, chatty), execWait(sb.id, chatty), execWait(sb.id, chatty)]);
  const busy = rs.filter((r) => r.status === 503);
  const served = rs.filter((r) => r.status === 200);
  assert.equal(busy.length, 1, `statuses ${rs.map((r) => r.status).join(',')}: the one holding the most is killed, not every one`);
  assert.equal(served.length, 2);
  for (const r of busy) {
    assert.equal(r.body['code'], 'EBUSY');
    assert.match(String(r.body['message']), /was killed: it held the most of the 8 MiB of output for wait:true commands \(--max-buffered-output\)/);
  }
  for (const r of served) assert.equal(String(r.body['stdout']).length, 4194304);
  // Once they ended, the budget is free again.
  const after = await execWait(sb.id, { cmd: 'head -c 4194304 /dev/zero' });
  assert.equal(after.status, 200);
  assert.equal(String(after.body['stdout']).length, 4194304);
  // A killed command is not left running.
  assert.doesNotMatch((await sb.exec('ps -o args')).stdout, /sleep 2/);
  await sb.kill();
});

test('hutchd refuses a non-positive output budget', async () => {
  const { serveFails } = await import('./server-kit.js');
  const r = await serveFails(fx.root + '-bad', ['--max-buffered-output', '0']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /output limits .* must be positive/);
  fs.rmSync(fx.root + '-bad', { recursive: true, force: true });
});
