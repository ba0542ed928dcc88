// An image's files as a user lookup reads them: /etc/passwd and /etc/group through its layers.
import fs from 'node:fs';
import { HutchError } from '../errors.js';
import { MAX_USER_FILE_BYTES, type RootfsFileReader } from '../linux/users.js';
import { findInLayers } from './unpack/layers.js';

/**
 * Reads small files of an image through its layers. Only regular files, never through a symlink (one
 * could point at the host's files: a linked path counts as absent); larger than 1 MiB is EINVAL.
 */
export function layersFileReader(lowerDirs: string[]): RootfsFileReader {
  return (rel) => {
    const found = findInLayers(rel, lowerDirs, 'image', rel, 'absent');
    if (!found || found.stat.isSymbolicLink()) return '';
    if (!found.stat.isFile() || found.stat.size > MAX_USER_FILE_BYTES) {
      throw new HutchError('EINVAL', `the image's /${rel} is not a regular file of at most ${MAX_USER_FILE_BYTES} bytes`, { path: `/${rel}` });
    }
    return fs.readFileSync(found.path, 'utf8');
  };
}
