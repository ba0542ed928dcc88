// The README's two opening commands are exactly what CI runs, in that order.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

const top = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');

test('.ci/run runs the README\'s set-up command, then its test command', () => {
  const readme = fs.readFileSync(path.join(top, 'README.md'), 'utf8');
  const block = /```sh\n([\s\S]*?)```/.exec(readme);
  assert.ok(block, 'README has a sh block');
  const [setup, tests] = block[1]!.trim().split('\n');
  assert.match(setup!, /^bash scripts\/setup\.sh && hutch run /);
  assert.equal(tests, 'npm test');
  const ci = fs.readFileSync(path.join(top, '.ci/run'), 'utf8').split('\n');
  const at = ci.indexOf(setup!);
  assert.ok(at >= 0, '.ci/run has the set-up command verbatim');
  assert.ok(ci.indexOf(tests!) > at, '.ci/run runs the tests after the set-up');
});
