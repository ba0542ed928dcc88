// Image references, parsed the way docker and podman parse them. (Stub: the registry helper fills it in.)
import { HutchError } from '../errors.js';
import type { ImageReference } from './types.js';

/** Parses `busybox`, `library/busybox:1.36`, `localhost:5000/x@sha256:…` into a reference. */
export function parseReference(text: string): ImageReference {
  throw new HutchError('EUNSUPPORTED', `image references are not implemented yet: ${text}`);
}

/** The canonical text of a reference: `docker.io/library/busybox:latest`, `host/repo@sha256:…`. */
export function formatReference(ref: ImageReference): string {
  return `${ref.registry}/${ref.repository}${ref.tag ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}
