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

function invalid(text: string, why: string): HutchError {
  return new HutchError('EINVAL', `invalid image reference "${text}": ${why}`, { id: text });
}

/** Validates a `sha256:<64 hex>` digest; throws EINVAL (other algorithms are EUNSUPPORTED). */
export function checkDigest(digest: string, what = digest): string {
  if (DIGEST.test(digest)) return digest;
  if (OTHER_ALGORITHM.test(digest)) {
    throw new HutchError('EUNSUPPORTED', `digest algorithm of ${what} is not supported (only sha256)`, { id: what });
  }
  throw new HutchError('EINVAL', `invalid digest "${digest}" in ${what}: expected sha256: and 64 lowercase hex digits`, { id: what });
}

/** Parses `busybox`, `library/busybox:1.36`, `localhost:5000/x@sha256:…` into a reference. */
export function parseReference(text: string): ImageReference {
  if (typeof text !== 'string' || text.length === 0) throw invalid(String(text), 'empty');
  if (/\s/.test(text)) throw invalid(text, 'contains white space');
  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!digest) throw invalid(text, 'empty digest after "@"');
    if (!DIGEST.test(digest)) {
      if (OTHER_ALGORITHM.test(digest)) checkDigest(digest, text); // throws EUNSUPPORTED
      throw invalid(text, `bad digest "${digest}" (expected sha256: and 64 lowercase hex digits)`);
    }
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw invalid(text, `bad tag "${tag}" (letters, digits, _ . -, at most 128, not starting with . or -)`);
  }
  if (!rest) throw invalid(text, 'no repository name');
  let registry = DEFAULT_REGISTRY;
  let repository = rest;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    // Like docker: a first component is a registry when it has a dot, a port or is localhost (or has capitals).
    if (/[.:]/.test(first) || first === 'localhost' || first !== first.toLowerCase()) {
      if (!HOST.test(first)) throw invalid(text, `bad registry host "${first}"`);
      registry = first;
      repository = rest.slice(slash + 1);
    }
  }
  if (registry === 'index.docker.io' || registry === 'registry-1.docker.io') registry = DEFAULT_REGISTRY;
  if (!repository) throw invalid(text, 'no repository name');
  if (repository !== repository.toLowerCase()) throw invalid(text, 'repository names must be lowercase');
  for (const part of repository.split('/')) {
    if (!COMPONENT.test(part)) throw invalid(text, `bad path component "${part}" (lowercase letters, digits and single separators . _ __ -)`);
  }
  if (registry === DEFAULT_REGISTRY && !repository.includes('/')) repository = `library/${repository}`;
  if (registry.length + 1 + repository.length > MAX_NAME) throw invalid(text, `name longer than ${MAX_NAME} characters`);
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
