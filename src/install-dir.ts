// hutch's own install dir (dist/ and node_modules/), wherever its code runs from.
import fs from 'node:fs';
import path from 'node:path';
import { errnoCode, HutchError } from './errors.js';

let installDirCache: string | undefined;

/** hutch's own install dir (holds dist/ and node_modules/): the nearest dir above this module with hutch's package.json. */
export function installDir(): string {
  if (installDirCache) return installDirCache;
  // This code runs from dist/src/... (tsc) or dist/bundle/ (esbuild): walk up rather than count.
  for (let dir = path.dirname(new URL(import.meta.url).pathname); dir !== '/'; dir = path.dirname(dir)) {
    try {
      if ((JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string }).name === 'hutch') return (installDirCache = dir);
    } catch (e) {
      if (errnoCode(e) !== 'ENOENT') throw e;
    }
  }
  throw new HutchError('ENOTFOUND', 'cannot find hutch\'s install dir (package.json) above its code');
}

