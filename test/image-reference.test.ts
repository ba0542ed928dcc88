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
    assert.throws(() => parseReference(text), (e: unknown) => isHutchError(e, 'EINVAL') && e.id === text
      && e.message.startsWith(`invalid image reference "${text.slice(0, 120)}`) && !e.message.includes('\n'), JSON.stringify(text));
  }
});

test('a malformed reference says what is wrong with it, in one line', () => {
  const table: [string, RegExp][] = [
    ['', /: the name is empty$/],
    ['Busybox', /: repository name must be lowercase$/],
    ['docker.io/Library/x', /: repository name must be lowercase$/],
    ['busybox:', /: empty tag after ":"$/],
    ['busybox:-x', /: tag "-x" must start with a letter, digit or _$/],
    ['busybox:tag!', /: tag "tag!" has "!": tags are letters, digits, _ \. -$/],
    ['x:' + 'a'.repeat(129), /: tag is 129 characters, at most 128$/],
    ['busy$box', /: "\$" is not allowed in a repository name/],
    ['x:1:2', /: ":" may only come before a tag, or between a registry host and its port$/],
    ['/busybox', /: empty path component/],
    ['a___b', /: path component "a___b" joins words with a separator other than/],
    ['-a/b', /: path component "-a" must start and end with a letter or digit$/],
    [`x/${'a'.repeat(260)}`, /…": the name is 272 characters, at most 255$/],
    ['x@sha256:abc', /: bad digest: sha256 takes 64 hex digits, this has 3$/],
    [`x@sha256:${'a'.repeat(63)}`, /: bad digest: sha256 takes 64 hex digits, this has 63$/],
    [`x@sha256:${'a'.repeat(65)}`, /: bad digest: sha256 takes 64 hex digits, this has 65$/],
    [`x@sha256:${'AB'.repeat(32)}`, /: bad digest: hex digits must be lowercase$/],
    [`x@sha256:${'g'.repeat(64)}`, /: bad digest: "g" is not a hex digit$/],
    [`x@${'a'.repeat(64)}`, /: bad digest: no algorithm: write "sha256:" before the hex digits$/],
    [`x@sha256:${'a'.repeat(64)}@sha256:${'a'.repeat(64)}`, /: more than one "@"$/],
    [':5000/x', /: registry port ":5000" has no host before it$/],
    ['localhost:/x', /: registry "localhost:" has an empty port after ":"$/],
    ['localhost:abc/x', /: registry port "abc" is not a number$/],
    ['host.io:99999/x', /: registry port 99999 is out of range \(1-65535\)$/],
    ['a..b/c', /: registry host "a\.\.b" is not a DNS name/],
    ['localhost:5000/', /: no repository name after the registry$/],
    ['https://docker.io/busybox', /: a reference has no URL scheme: drop "https:\/\/"$/],
  ];
  for (const [text, why] of table) {
    assert.throws(() => parseReference(text), (e: unknown) => isHutchError(e, 'EINVAL') && why.test(e.message), `${JSON.stringify(text)} → ${why}`);
  }
});

test('a digest of another algorithm is unsupported, not malformed', () => {
  assert.throws(() => parseReference(`x@sha512:${'a'.repeat(128)}`), (e: unknown) => isHutchError(e, 'EUNSUPPORTED') && /sha256/.test(e.message));
});
