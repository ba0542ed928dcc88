// Attacks from inside a sandbox that once got through (docs/security.md): each must now fail, and
// each check would pass again if its defence were taken out.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { cleanRoot, hutch, hutchOk, leftovers, makeRoot } from './helpers.js';

let root: string;
let id: string;
before(async () => {
  root = makeRoot('escapes');
  id = (await hutchOk(root, ['run', '-d', 'busybox', '--', 'sleep', '600'])).trim();
});
after(async () => {
  await cleanRoot(root);
  assert.deepEqual(leftovers(root), []);
});

test("the agent's host-side stdio cannot be reopened through /proc/<agent>/fd", async () => {
  const initLog = path.join(root, 'sandboxes', id, 'init.log');
  const before = fs.existsSync(initLog) ? fs.statSync(initLog).size : 0;
  // The agent is the sandbox's pid 1, running as the sandbox's root: same uid as this shell.
  const write = await hutch(root, ['exec', id, '--', 'sh', '-c', 'echo planted >> /proc/1/fd/1']);
  assert.notEqual(write.code, 0, 'appending to the agent\'s stdout must fail');
  const link = await hutch(root, ['exec', id, '--', 'readlink', '/proc/1/fd/1']);
  assert.notEqual(link.code, 0, `the agent's stdout must not name its host path: ${link.stdout}`);
  const mem = await hutch(root, ['exec', id, '--', 'sh', '-c', 'head -c 1 /proc/1/environ']);
  assert.notEqual(mem.code, 0, 'the agent\'s environment must not be readable');
  if (fs.existsSync(initLog)) {
    assert.ok(!fs.readFileSync(initLog, 'utf8').includes('planted'), 'nothing reached the host file');
    assert.ok(fs.statSync(initLog).size - before < 4096);
  }
  // The sandbox's own processes stay inspectable to each other, as before.
  assert.equal((await hutchOk(root, ['exec', id, '--', 'sh', '-c', 'sleep 30 & readlink /proc/$!/fd/0 >/dev/null && echo ok; kill $!'])).trim(), 'ok');
});
