// Rootfs dirs given by path: the agent starts on any of them (it brings node and its loader),
// a glibc rootfs made from host binaries runs, and the base is never written.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { cleanRoot, hutch, hutchOk, leftovers, makeRoot } from './helpers.js';

let root: string;
let tmp: string;
before(() => {
  root = makeRoot('rootfs');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-rootfs-'));
  fs.chmodSync(tmp, 0o755);
});
after(async () => {
  await cleanRoot(root);
  fs.rmSync(tmp, { recursive: true, force: true });
  assert.deepEqual(leftovers(root), []);
});

/** A rootfs with host binaries and the shared libraries they need (glibc), owned by host root. */
function glibcRootfs(dir: string, binaries: string[]): void {
  for (const bin of binaries) {
    const libs = execFileSync('ldd', [bin], { encoding: 'utf8' }).split('\n')
      .map((l) => /(\/\S+)\s+\(0x/.exec(l)?.[1]).filter((f): f is string => f !== undefined);
    for (const file of [bin, ...libs]) {
      const dest = path.join(dir, file);
      fs.mkdirSync(path.dirname(dest), { recursive: true });
      if (!fs.existsSync(dest)) fs.copyFileSync(fs.realpathSync(file), dest);
      fs.chmodSync(dest, 0o755);
    }
  }
}

test('an empty rootfs (no libc, no shell): the agent still starts and answers', async () => {
  const empty = path.join(tmp, 'empty');
  fs.mkdirSync(empty);
  const id = (await hutchOk(root, ['run', '-d', empty])).trim();
  const ps = JSON.parse(await hutchOk(root, ['ps', '--json', id])) as { pid: number }[];
  assert.deepEqual(ps.map((p) => p.pid), [1]);
  const r = await hutch(root, ['exec', id, '--', '/bin/sh']);
  assert.equal(r.code, 127);
  await hutchOk(root, ['rm', '-f', id]);
  assert.deepEqual(fs.readdirSync(empty), [], 'the base rootfs was not written');
});

test('a glibc rootfs made of host binaries: commands run, / is writable, the base stays untouched', async () => {
  const glibc = path.join(tmp, 'glibc');
  glibcRootfs(glibc, ['/bin/ls', '/bin/cat', '/bin/mkdir']);
  const before = execFileSync('find', [glibc], { encoding: 'utf8' });
  const id = (await hutchOk(root, ['run', '-d', glibc])).trim();
  assert.match(await hutchOk(root, ['exec', id, '--', '/bin/ls', '/']), /bin/);
  await hutchOk(root, ['exec', id, '--', '/bin/mkdir', '/made-inside']);
  assert.match(await hutchOk(root, ['exec', id, '--', '/bin/ls', '-d', '/made-inside']), /made-inside/);
  await hutchOk(root, ['rm', '-f', id]);
  assert.equal(execFileSync('find', [glibc], { encoding: 'utf8' }), before, 'the base rootfs was not written');
});
