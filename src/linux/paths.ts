// Path checks shared by the cleanup code: a wrong path here means deleting or unmounting the wrong thing.
import * as path from 'node:path';
import { HutchError } from '../errors.js';

/** Throws EINVAL unless `p` is absolute and already normalised (no `..`, `.`, `//` or trailing slash). */
export function assertCleanAbsolute(p: string, what: string): void {
  if (typeof p !== 'string' || p.length === 0 || p.includes('\0')) {
    throw new HutchError('EINVAL', `${what}: not a valid path: ${JSON.stringify(p)}`, { path: String(p) });
  }
  if (!path.isAbsolute(p) || path.normalize(p) !== p || (p.length > 1 && p.endsWith('/'))) {
    throw new HutchError('EINVAL', `${what}: path must be absolute and normalised: ${p}`, { path: p });
  }
}

/** True when `child` is `parent` itself or lies below it (both clean absolute paths). */
export function isAtOrBelow(child: string, parent: string): boolean {
  if (parent === '/') return child.startsWith('/');
  return child === parent || child.startsWith(parent + '/');
}

/** The number of components of a clean absolute path: `/` has 0, `/a/b` has 2. */
export function pathDepth(p: string): number {
  return p === '/' ? 0 : p.split('/').length - 1;
}
