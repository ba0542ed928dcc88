// One hutchd per state root: a second one would "recover" the first one's sandboxes (and remove its
// warm pool). The pid file is made with O_EXCL; one left by a hutchd that died is replaced.
import fs from 'node:fs';
import path from 'node:path';
import { errnoCode, HutchError } from '../errors.js';

const PID_FILE = 'hutchd.pid';

/** True when `pid` is a live process that runs hutch serve (not a reused pid of something else). */
function isHutchd(pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes('serve');
  } catch (e) {
    const code = errnoCode(e);
    if (code === 'ENOENT' || code === 'ESRCH') return false; // gone
    throw new HutchError('EINTERNAL', `cannot read /proc/${pid}/cmdline: ${(e as Error).message}`, { path: `/proc/${pid}/cmdline`, cause: e });
  }
}

/** Claims the state root for this process; returns the release. EEXIST names the hutchd that holds it. */
export function claimRoot(root: string): () => void {
  fs.mkdirSync(root, { recursive: true });
  const file = path.join(root, PID_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, `${process.pid}\n`, { flag: 'wx', mode: 0o644 });
      return () => {
        try {
          if (fs.readFileSync(file, 'utf8').trim() === String(process.pid)) fs.rmSync(file);
        } catch (e) {
          if (errnoCode(e) !== 'ENOENT') throw e;
        }
      };
    } catch (e) {
      if (errnoCode(e) !== 'EEXIST') throw e;
    }
    const pid = Number(fs.readFileSync(file, 'utf8').trim());
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isHutchd(pid)) {
      throw new HutchError('EEXIST', `another hutchd (pid ${pid}) serves the state root ${root}: one hutchd per root`, { path: root });
    }
    fs.rmSync(file, { force: true }); // left by a hutchd that died
  }
  throw new HutchError('EEXIST', `cannot claim the state root ${root}: another hutchd is starting on it`, { path: root });
}
