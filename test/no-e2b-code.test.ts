// hutch's E2B compatibility (docs/e2b.md) is written from E2B's public API, never copied from E2B's
// SDK: no tracked file may hold text that only E2B's code has (its license line, its generated
// protobuf descriptors, its own identifiers and messages). The markers are kept in pieces here, so
// that this file does not hold them itself.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import test from 'node:test';

const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');

/** Strings of E2B's SDK (its dist and sources) that hutch's own code has no reason to hold. */
const MARKERS: string[] = [
  ['FOUNDRY', 'LABS'], // the copyright line of its license
  ['protoc-gen', '-es'], ['protoc-gen', '-connect-es'], // headers of its generated protobuf and Connect files
  ['ChVwcm9jZXNzL3Byb2Nl', 'c3MucHJvdG8S'], ['ChtmaWxlc3lzdGVtL2ZpbGVz', 'eXN0ZW0ucHJvdG8S'], // its embedded descriptors of envd's .proto files
  ['e2b-js', '-sdk/'], // its User-Agent prefix
  ['formatSandbox', 'TimeoutError'], ['createEnvd', 'RpcFetch'], ['handleEnvd', 'ApiError'], // its identifiers
  ['dashboard?', 'tab=keys'], ['Please rebuild', ' your template'], // its messages
].map((parts) => parts.join(''));

test('no tracked file holds code of E2B\'s SDK', () => {
  const ls = spawnSync('git', ['-C', REPO, 'ls-files', '-z'], { encoding: 'utf8' });
  if (ls.status !== 0) return assert.fail(`git ls-files failed: ${ls.stderr}`);
  const files = ls.stdout.split('\0').filter((f) => f && !/^(node_modules|dist|bundle)\//.test(f) && !f.includes('/node_modules/'));
  assert.ok(files.length > 50, `only ${files.length} tracked files found in ${REPO}`);
  const found: string[] = [];
  for (const f of files) {
    let text: string;
    try {
      const buf = fs.readFileSync(path.join(REPO, f));
      if (buf.length > 8 * 1024 * 1024 || buf.includes(0)) continue; // large or binary: not source
      text = buf.toString('utf8');
    } catch {
      continue; // tracked but deleted in the work tree
    }
    for (const m of MARKERS) if (text.includes(m)) found.push(`${f}: ${m}`);
  }
  assert.deepEqual(found, [], `E2B's code in the repository:\n${found.join('\n')}`);
});
