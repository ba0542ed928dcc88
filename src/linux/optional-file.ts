// Reading a file that may legitimately be missing (a cgroup, a subid file, a slot file, a probe).
import * as fs from 'node:fs';
import { HutchError, errnoCode } from '../errors.js';

/** The file's text, or null when it does not exist; EINTERNAL naming it for any other failure. */
export function readFileIfExists(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return null;
    throw new HutchError('EINTERNAL', `cannot read ${file}: ${(e as Error).message}`, { path: file, cause: e });
  }
}
