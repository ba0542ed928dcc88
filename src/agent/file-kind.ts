// What a file is called in an error message, on either side (the agent's view, or the host's in cp).
import type { Stats } from 'node:fs';

/** `a fifo`, `a socket`, `a character device`…: what a file that is not a regular one is. */
export function fileKind(st: Stats): string {
  return st.isFile() ? 'a regular file' : st.isDirectory() ? 'a directory' : st.isSymbolicLink() ? 'a symlink'
    : st.isFIFO() ? 'a fifo' : st.isSocket() ? 'a socket' : st.isCharacterDevice() ? 'a character device'
      : st.isBlockDevice() ? 'a block device' : 'an unknown kind of file';
}
