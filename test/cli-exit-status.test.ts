// How a sandbox ended, as docker reports it: 128+N and the signal's name for a main command (agent
// mode) or a one-shot init (direct mode) killed by a signal, oomKilled from the cgroup, normal
// codes kept, and an agent that died said so; in wait, ls (table and --json) and inspect.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { cleanRoot, hutch, hutchOk, leftovers, makeRoot } from './helpers.js';
import { brokenRecord } from '../src/engine/records.js';
import { describeEnd, recordAgentExit, recordDirectExit } from '../src/engine/exit-status.js';
import type { SandboxRecord } from '../src/engine/state.js';

let root: string;
before(() => { root = makeRoot('exit'); });
after(async () => {
  await cleanRoot(root);
  assert.deepEqual(leftovers(root), []);
});

/** What ls --json says of one sandbox. */
interface Listed { id: string; name: string; status: string; exitCode?: number | null; signal?: string; oomKilled?: boolean; agentDied?: boolean; note?: string; pid?: number }

async function listed(id: string): Promise<Listed> {
  const all = JSON.parse(await hutchOk(root, ['ls', '--json'])) as Listed[];
  const s = all.find((x) => x.id === id || x.name === id);
  assert.ok(s, `${id} is listed`);
  return s;
}

async function tableRow(id: string): Promise<string> {
  return (await hutchOk(root, ['ls'])).split('\n').find((l) => l.startsWith(id)) ?? '';
}

/** The end fields of ls --json. */
function endOf(s: Listed): Partial<Listed> {
  const { exitCode, signal, oomKilled, agentDied } = s;
  return Object.fromEntries(Object.entries({ exitCode, signal, oomKilled, agentDied }).filter(([, v]) => v !== undefined));
}

/** `hutch wait`: its stdout and exit code. */
async function waited(id: string): Promise<[string, number | null]> {
  const r = await hutch(root, ['wait', id]);
  return [r.stdout, r.code];
}

/** Polls until `hutch logs ID` has `text` (the main command got that far). */
async function untilLogged(id: string, text: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if ((await hutchOk(root, ['logs', id])).includes(text)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`${id} never printed ${text}`);
}

/** A one-shot init's pid, from the pid file the executor writes (its record has none). */
async function directInitPid(id: string): Promise<number> {
  const file = path.join(root, 'sandboxes', id, 'init.pid');
  for (let i = 0; i < 200 && !fs.existsSync(file); i++) await new Promise((r) => setTimeout(r, 25));
  return Number(fs.readFileSync(file, 'utf8'));
}

test('agent mode: a main command that kills itself with SIGKILL is 137 + SIGKILL in wait, ls and inspect', async () => {
  const id = (await hutchOk(root, ['run', '-d', 'busybox', '--', 'sh', '-c', 'kill -9 $$'])).trim();
  try {
    assert.deepEqual(await waited(id), ['137\n', 137]);
    assert.deepEqual(endOf(await listed(id)), { exitCode: 137, signal: 'SIGKILL' });
    assert.match(await tableRow(id), /stopped \(137, SIGKILL\)/);
    const [info] = JSON.parse(await hutchOk(root, ['inspect', id])) as Listed[];
    assert.deepEqual([info!.status, info!.exitCode, info!.signal, info!.oomKilled], ['stopped', 137, 'SIGKILL', undefined]);
  } finally {
    await hutchOk(root, ['rm', '-f', id]);
  }
});

test('agent mode: hutch kill ID TERM is 143 + SIGTERM; hutch stop of a TERM-ignoring command is 137 + SIGKILL', async () => {
  const killed = (await hutchOk(root, ['run', '-d', 'busybox', '--', 'sleep', '100'])).trim();
  const stubborn = (await hutchOk(root, ['run', '-d', 'busybox', '--', 'sh', '-c', 'trap "" TERM; echo ready; while true; do sleep 0.1; done'])).trim();
  try {
    await hutchOk(root, ['kill', killed, 'TERM']);
    assert.deepEqual(await waited(killed), ['143\n', 143]);
    assert.deepEqual(endOf(await listed(killed)), { exitCode: 143, signal: 'SIGTERM' });

    await untilLogged(stubborn, 'ready');
    await hutchOk(root, ['stop', '-t', '1', stubborn]);
    assert.deepEqual(await waited(stubborn), ['137\n', 137]);
    assert.deepEqual(endOf(await listed(stubborn)), { exitCode: 137, signal: 'SIGKILL' }, 'SIGKILL, not an OOM kill');
  } finally {
    await hutchOk(root, ['rm', '-f', killed, stubborn]);
  }
});

test('agent mode: a memory hog killed by the OOM killer is 137 + SIGKILL + oomKilled', async () => {
  // 64m: the hog outgrows the agent (~12 MiB) before the limit, so the OOM killer picks the hog.
  const id = (await hutchOk(root, ['run', '-d', '--memory', '64m', 'busybox', '--', 'sh', '-c', 'x=a; while true; do x=$x$x; done'])).trim();
  try {
    assert.deepEqual(await waited(id), ['137\n', 137]);
    assert.deepEqual(endOf(await listed(id)), { exitCode: 137, signal: 'SIGKILL', oomKilled: true });
    assert.match(await tableRow(id), /stopped \(137, OOM killed\)/);
  } finally {
    await hutchOk(root, ['rm', '-f', id]);
  }
});

test('normal exits keep their codes and have no signal', async () => {
  const zero = (await hutchOk(root, ['run', '-d', 'busybox', '--', 'true'])).trim();
  const three = (await hutchOk(root, ['run', '-d', '--memory', '64m', 'busybox', '--', 'sh', '-c', 'exit 3'])).trim();
  // 137 as a plain exit code of a one-shot init reads as SIGKILL: the executor reports both alike.
  const direct = await hutch(root, ['run', '--name', 'exit-direct-5', '--memory', '64m', 'busybox', '--', 'sh', '-c', 'exit 5']);
  try {
    assert.deepEqual(await waited(zero), ['0\n', 0]);
    assert.deepEqual(endOf(await listed(zero)), { exitCode: 0 });
    assert.deepEqual(await waited(three), ['3\n', 3]);
    assert.deepEqual(endOf(await listed(three)), { exitCode: 3 });
    assert.match(await tableRow(three), /stopped \(3\)/);
    assert.equal(direct.code, 5);
    assert.deepEqual(endOf(await listed('exit-direct-5')), { exitCode: 5 });
    assert.deepEqual(await waited('exit-direct-5'), ['5\n', 5]);
  } finally {
    await hutchOk(root, ['rm', '-f', zero, three, 'exit-direct-5']);
  }
});

test('direct mode: a one-shot init killed from outside exits 137 and is recorded as SIGKILL; run --rm exits 137 too', async () => {
  for (const rm of [false, true]) {
    const name = `exit-direct-killed-${rm ? 'rm' : 'kept'}`;
    const run = hutch(root, ['run', ...(rm ? ['--rm'] : []), '--name', name, 'busybox', '--', 'sleep', '30']);
    let id = '';
    for (let i = 0; i < 200 && !id; i++) {
      id = (JSON.parse(await hutchOk(root, ['ls', '--json'])) as Listed[]).find((s) => s.name === name && s.status === 'running')?.id ?? '';
      if (!id) await new Promise((r) => setTimeout(r, 25));
    }
    assert.ok(id, `${name} runs`);
    process.kill(await directInitPid(id), 'SIGKILL');
    const r = await run;
    assert.equal(r.code, 137, r.stderr);
    if (rm) {
      assert.deepEqual((await hutchOk(root, ['ls', '-q'])).split('\n').filter((x) => x === id), [], 'removed');
    } else {
      assert.deepEqual(endOf(await listed(id)), { exitCode: 137, signal: 'SIGKILL' });
      await hutchOk(root, ['rm', id]);
    }
  }
});

test('direct mode: an init killed by the OOM killer exits 137, recorded with oomKilled (seen before the executor removes the cgroup)', async () => {
  const hog = ['busybox', '--', 'sh', '-c', 'x=a; while true; do x=$x$x; done'];
  const kept = await hutch(root, ['run', '--name', 'exit-direct-oom', '--memory', '8m', ...hog]);
  const removed = await hutch(root, ['run', '--rm', '--memory', '8m', ...hog]);
  const crun = await hutch(root, ['--executor', 'crun', 'run', '--name', 'exit-direct-oom-crun', '--memory', '8m', ...hog]);
  try {
    assert.equal(kept.code, 137, kept.stderr);
    assert.equal(removed.code, 137, removed.stderr);
    assert.deepEqual(endOf(await listed('exit-direct-oom')), { exitCode: 137, signal: 'SIGKILL', oomKilled: true });
    const [info] = JSON.parse(await hutchOk(root, ['inspect', 'exit-direct-oom'])) as Listed[];
    assert.equal(info!.oomKilled, true);
    assert.equal(crun.code, 137, crun.stderr);
    assert.deepEqual(endOf(await listed('exit-direct-oom-crun')), { exitCode: 137, signal: 'SIGKILL', oomKilled: true }, 'crun too');
  } finally {
    await hutchOk(root, ['rm', '-f', 'exit-direct-oom', 'exit-direct-oom-crun']);
  }
});

test('recording an end: exit records (any signal name the sandbox writes), 128+N from the executor, OOM only with SIGKILL', () => {
  const rec = (): SandboxRecord => ({ ...brokenRecord('0123456789abcdef'), phase: 'stopped', mode: 'agent', mainPid: 7 });
  const agent = (exit: { exitCode: number | null; signal: string | null } | null, oomKills: number | null, end: 'stopped' | 'gone' = 'gone') => {
    const r = rec();
    delete r.note;
    recordAgentExit(r, exit, oomKills, end);
    return { exitCode: r.exitCode, signal: r.signal, oomKilled: r.oomKilled, agentDied: r.agentDied, note: r.note };
  };
  const none = { exitCode: undefined, signal: undefined, oomKilled: undefined, agentDied: undefined, note: undefined };
  assert.deepEqual(agent({ exitCode: 3, signal: null }, 0), { ...none, exitCode: 3 });
  assert.deepEqual(agent({ exitCode: 0, signal: null }, 2), { ...none, exitCode: 0 }, 'an OOM kill of another process does not make a clean exit OOM-killed');
  assert.deepEqual(agent({ exitCode: null, signal: 'SIGTERM' }, 1), { ...none, exitCode: 143, signal: 'SIGTERM' });
  assert.deepEqual(agent({ exitCode: null, signal: 'SIGKILL' }, 1), { ...none, exitCode: 137, signal: 'SIGKILL', oomKilled: true });
  assert.deepEqual(agent({ exitCode: null, signal: 'SIGKILL' }, null), { ...none, exitCode: 137, signal: 'SIGKILL' }, 'cgroup gone: not claimed');
  assert.deepEqual(agent({ exitCode: null, signal: 'SIGBOGUS' }, 0), { ...none, note: 'the exit record names an unknown signal "SIGBOGUS": exit status unknown' });
  assert.deepEqual(agent(null, 1), { ...none, oomKilled: true, agentDied: true, note: 'the agent was OOM-killed before the main command exited: its exit status is lost' });
  assert.match(agent(null, 0, 'stopped').note ?? '', /did not answer the stop/);
  assert.equal(agent(null, 0, 'stopped').agentDied, undefined, 'stopped by hutch: not a death');
  const direct = (code: number, oom: boolean) => {
    const r = rec();
    recordDirectExit(r, code, oom);
    return [r.exitCode, r.signal, r.oomKilled, describeEnd(r)];
  };
  assert.deepEqual(direct(0, false), [0, undefined, undefined, '0']);
  assert.deepEqual(direct(128, false), [128, undefined, undefined, '128']);
  assert.deepEqual(direct(143, false), [143, 'SIGTERM', undefined, '143, SIGTERM']);
  assert.deepEqual(direct(137, true), [137, 'SIGKILL', true, '137, OOM killed']);
  assert.deepEqual(direct(1, true), [1, undefined, undefined, '1'], 'the init itself was not the one killed');
  assert.deepEqual(direct(255, false), [255, undefined, undefined, '255'], 'no signal 127');
});

test('an agent killed from the host: wait says so in one line and exits 1; ls and inspect show agentDied', async () => {
  const withMain = (await hutchOk(root, ['run', '-d', 'busybox', '--', 'sleep', '100'])).trim();
  const noMain = (await hutchOk(root, ['run', '-d', 'busybox'])).trim();
  try {
    for (const id of [withMain, noMain]) {
      const pid = (await listed(id)).pid;
      assert.ok(pid, `${id} has an init pid`);
      process.kill(pid, 'SIGKILL');
      const r = await hutch(root, ['wait', id]);
      assert.equal(r.code, 1);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, new RegExp(`^hutch: sandbox ${id} has no exit status: the agent died \\(killed or crashed\\)[^\\n]*\\n$`));
      const s = await listed(id);
      assert.deepEqual([s.status, endOf(s)], ['stopped', { agentDied: true }]);
      assert.match(s.note ?? '', id === withMain ? /before the main command exited: its exit status is lost/ : /the agent died/);
      assert.match(await tableRow(id), /stopped: the agent died/);
      const [info] = JSON.parse(await hutchOk(root, ['inspect', id])) as Listed[];
      assert.equal(info!.agentDied, true);
    }
  } finally {
    await hutchOk(root, ['rm', '-f', withMain, noMain]);
  }
});

test('a sandbox without a main command that hutch stopped: wait prints an empty line and exits 0', async () => {
  const id = (await hutchOk(root, ['run', '-d', 'busybox'])).trim();
  try {
    await hutchOk(root, ['stop', id]);
    assert.deepEqual(await waited(id), ['\n', 0]);
    assert.deepEqual(endOf(await listed(id)), {});
  } finally {
    await hutchOk(root, ['rm', '-f', id]);
  }
});

test('inspect and wait: bad input', async () => {
  const none = await hutch(root, ['inspect']);
  assert.deepEqual([none.code, none.stderr], [1, 'hutch: inspect: missing sandbox ID\n']);
  for (const verb of ['inspect', 'wait']) {
    const r = await hutch(root, [verb, 'no-such-sandbox']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^hutch: [^\n]*no-such-sandbox[^\n]*\n$/);
  }
});
