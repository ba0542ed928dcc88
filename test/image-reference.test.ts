// Image references: docker's normalisation, canonical text, and clear errors for malformed input.
import test from 'node:test';
import assert from 'node:assert/strict';
import { formatReference, parseReference } from '../src/image/reference.js';
import { isHutchError } from '../src/errors.js';

const D = `sha256:${'ab'.repeat(32)}`;

test('references are normalised like docker does', () => {
  const table: [string, string][] = [
    ['busybox', 'docker.io/library/busybox:latest'],
    ['busybox:1.36', 'docker.io/library/busybox:1.36'],
    ['library/busybox:1.36', 'docker.io/library/busybox:1.36'],
    ['docker.io/busybox', 'docker.io/library/busybox:latest'],
    ['index.docker.io/library/busybox', 'docker.io/library/busybox:latest'],
    ['registry-1.docker.io/foo/bar', 'docker.io/foo/bar:latest'],
    ['foo/bar', 'docker.io/foo/bar:latest'],
    ['foo/bar/baz:v1', 'docker.io/foo/bar/baz:v1'],
    ['localhost/x', 'localhost/x:latest'],
    ['localhost:5000/x', 'localhost:5000/x:latest'],
    [`localhost:5000/x@${D}`, `localhost:5000/x@${D}`],
    [`localhost:5000/x:1.0@${D}`, `localhost:5000/x:1.0@${D}`],
    ['quay.io/a/b-c_d.e__f:TAG_1.0-x', 'quay.io/a/b-c_d.e__f:TAG_1.0-x'],
    ['127.0.0.1:41000/hutch/test:v1', '127.0.0.1:41000/hutch/test:v1'],
    ['[::1]:5000/x', '[::1]:5000/x:latest'],
    ['Registry/x', 'Registry/x:latest'],
    ['a--b/c', 'docker.io/a--b/c:latest'],
  ];
  for (const [input, want] of table) assert.equal(formatReference(parseReference(input)), want, input);
});

test('parts of a reference are separate fields', () => {
  assert.deepEqual(parseReference('busybox'), { registry: 'docker.io', repository: 'library/busybox', tag: 'latest' });
  assert.deepEqual(parseReference(`localhost:5000/x@${D}`), { registry: 'localhost:5000', repository: 'x', digest: D });
  assert.deepEqual(parseReference(`h.io/x:t@${D}`), { registry: 'h.io', repository: 'x', tag: 't', digest: D });
});

test('malformed references are refused with EINVAL naming the input', () => {
  const bad = [
    '', ' ', 'busybox:', 'busybox:-x', ':tag', '/busybox', 'busybox/', 'a//b', 'Busybox', 'docker.io/Library/x',
    'x@', 'x@sha256:abc', `x@sha256:${'AB'.repeat(32)}`, `x@md5:${'a'.repeat(32)}x`, 'a b', 'x:' + 'a'.repeat(129),
    'bad_host_/x', 'a..b/c', '-a/b', 'a-/b', 'foo.com:port/x', `x/${'a'.repeat(260)}`, 'a___b', 'localhost:5000/',
  ];
  for (const text of bad) {
    assert.throws(() => parseReference(text), (e: unknown) => isHutchError(e, 'EINVAL') && e.message.includes(`"${text}"`), JSON.stringify(text));
  }
});

test('a digest of another algorithm is unsupported, not malformed', () => {
  assert.throws(() => parseReference(`x@sha512:${'a'.repeat(128)}`), (e: unknown) => isHutchError(e, 'EUNSUPPORTED') && /sha256/.test(e.message));
});
