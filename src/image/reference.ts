// Image references, normalised the way docker and podman do it: `busybox` is
// docker.io/library/busybox:latest; a first component with `.` or `:` (or `localhost`) names a registry.
import { HutchError } from '../errors.js';
import type { ImageReference } from './types.js';

/** The registry short names go to. */
export const DEFAULT_REGISTRY = 'docker.io';

// One path component: lowercase alphanumerics joined by `.`, `_`, `__` or runs of `-`.
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
// A registry host: DNS labels (or an IPv6 literal in brackets) with an optional port.
const HOST = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::[0-9]{1,5})?$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;
const MAX_NAME = 255;
// A well-formed digest of an algorithm other than sha256 (sha512, blake3...).
const OTHER_ALGORITHM = /^(?!sha256:)[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-fA-F0-9]{32,}$/;

/** The input as a message shows it: long ones are cut (the error's id keeps all of it). */
function shown(text: string): string {
  return text.length > 120 ? `${text.slice(0, 120)}…` : text;
}

function invalid(text: string, why: string): HutchError {
  return new HutchError('EINVAL', `invalid image reference "${shown(text)}": ${why}`, { id: text });
}

/** Validates a `sha256:<64 hex>` digest; throws EINVAL saying what is wrong (other algorithms are EUNSUPPORTED). */
export function checkDigest(digest: string, what = digest): string {
  if (DIGEST.test(digest)) return digest;
  if (OTHER_ALGORITHM.test(digest)) {
    throw new HutchError('EUNSUPPORTED', `digest algorithm of ${what} is not supported (only sha256)`, { id: what });
  }
  throw new HutchError('EINVAL', `invalid digest "${shown(digest)}" in ${shown(what)}: ${digestFault(digest)}`, { id: what });
}

/** What is wrong with a digest that is not `sha256:` and 64 lowercase hex digits. */
function digestFault(digest: string): string {
  const colon = digest.indexOf(':');
  if (colon < 0) return /^[0-9a-fA-F]{64}$/.test(digest) ? 'no algorithm: write "sha256:" before the hex digits' : 'expected sha256: and 64 lowercase hex digits';
  const [algorithm, hex] = [digest.slice(0, colon), digest.slice(colon + 1)];
  if (algorithm !== 'sha256') return `expected sha256: and 64 lowercase hex digits, not "${shown(algorithm)}:"`;
  if (hex === '') return 'no hex digits after sha256:';
  const bad = /[^0-9a-f]/.exec(hex.toLowerCase());
  if (bad) return `"${bad[0]}" is not a hex digit`;
  if (hex !== hex.toLowerCase()) return 'hex digits must be lowercase';
  return `sha256 takes 64 hex digits, this has ${hex.length}`;
}

/** What is wrong with a tag that TAG refuses. */
function tagFault(tag: string): string {
  if (tag === '') return 'empty tag after ":"';
  if (tag.length > 128) return `tag is ${tag.length} characters, at most 128`;
  if (!/^\w/.test(tag)) return `tag "${shown(tag)}" must start with a letter, digit or _`;
  const bad = /[^\w.-]/.exec(tag)!;
  return `tag "${shown(tag)}" has "${bad[0]}": tags are letters, digits, _ . -`;
}

/** What is wrong with a registry host[:port] that HOST refuses. */
function hostFault(host: string): string {
  if (host.startsWith(':')) return `registry port "${host}" has no host before it`;
  const m = /^(.*?)(?::([^:\]]*))?$/.exec(host.startsWith('[') ? host.replace(/^\[[^\]]*\]/, 'h') : host)!;
  const port = m[2];
  if (port !== undefined) {
    if (port === '') return `registry "${host}" has an empty port after ":"`;
    if (!/^[0-9]+$/.test(port)) return `registry port "${port}" is not a number`;
  }
  return `registry host "${host}" is not a DNS name, IPv4 or [IPv6] address with an optional :port`;
}

/** What is wrong with one path component of a repository that COMPONENT refuses. */
function componentFault(part: string): string {
  if (part === '') return 'empty path component (a leading, trailing or doubled "/")';
  const bad = /[^a-z0-9._-]/.exec(part);
  if (bad) {
    if (bad[0] === ':') return '":" may only come before a tag, or between a registry host and its port';
    if (bad[0] === '@') return '"@" may only come before a digest';
    return `"${bad[0]}" is not allowed in a repository name (lowercase letters, digits, separators . _ __ - and /)`;
  }
  if (!/^[a-z0-9]/.test(part) || !/[a-z0-9]$/.test(part)) return `path component "${shown(part)}" must start and end with a letter or digit`;
  return `path component "${shown(part)}" joins words with a separator other than . _ __ or dashes`;
}

/** Parses `busybox`, `library/busybox:1.36`, `localhost:5000/x@sha256:…` into a reference. */
export function parseReference(text: string): ImageReference {
  if (typeof text !== 'string' || text.length === 0) throw invalid(String(text), 'the name is empty');
  if (/\s/.test(text)) throw invalid(text, 'contains white space');
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(text);
  if (scheme) throw invalid(text, `a reference has no URL scheme: drop "${scheme[0]}"`);
  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!digest) throw invalid(text, 'empty digest after "@"');
    if (digest.includes('@')) throw invalid(text, 'more than one "@"');
    if (!DIGEST.test(digest)) {
      if (OTHER_ALGORITHM.test(digest)) checkDigest(digest, text); // throws EUNSUPPORTED
      throw invalid(text, `bad digest: ${digestFault(digest)}`);
    }
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw invalid(text, tagFault(tag));
  }
  if (!rest) throw invalid(text, 'no repository name');
  let registry = DEFAULT_REGISTRY;
  let repository = rest;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    // Like docker: a first component is a registry when it has a dot, a port or is localhost (or has capitals).
    if (/[.:]/.test(first) || first === 'localhost' || first !== first.toLowerCase()) {
      if (!HOST.test(first)) throw invalid(text, hostFault(first));
      const port = /:([0-9]+)$/.exec(first)?.[1];
      if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) throw invalid(text, `registry port ${port} is out of range (1-65535)`);
      registry = first;
      repository = rest.slice(slash + 1);
    }
  }
  if (registry === 'index.docker.io' || registry === 'registry-1.docker.io') registry = DEFAULT_REGISTRY;
  if (!repository) throw invalid(text, 'no repository name after the registry');
  if (repository !== repository.toLowerCase()) throw invalid(text, 'repository name must be lowercase');
  for (const part of repository.split('/')) {
    if (!COMPONENT.test(part)) throw invalid(text, componentFault(part));
  }
  if (registry === DEFAULT_REGISTRY && !repository.includes('/')) repository = `library/${repository}`;
  const length = registry.length + 1 + repository.length;
  if (length > MAX_NAME) throw invalid(text, `the name is ${length} characters, at most ${MAX_NAME}`);
  if (!tag && !digest) tag = 'latest';
  const ref: ImageReference = { registry, repository };
  if (tag) ref.tag = tag;
  if (digest) ref.digest = digest;
  return ref;
}

/** The canonical text of a reference: `docker.io/library/busybox:latest`, `host/repo@sha256:…`. */
export function formatReference(ref: ImageReference): string {
  return `${ref.registry}/${ref.repository}${ref.tag ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}
