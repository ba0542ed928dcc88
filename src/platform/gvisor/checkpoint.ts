// Checkpoint and restore on gVisor: runsc saves the sentry's whole state (the processes' memory, its
// own tmpfs mounts) into one image file; the rootfs is re-opened from the bundle at restore, so
// hutch saves the writable layer beside it and gives every restored sandbox its own copy (a fork's
// copies share nothing writable). The agent must first close its listener: runsc cannot save a
// socket bound on the host (--host-uds), and a failed checkpoint kills the sandbox.
import fs from 'node:fs';
import path from 'node:path';
import { HutchError } from '../../errors.js';
import { AGENT_SOCKET_NAME } from '../../agent/exit-file.js';
import type { AgentClient } from '../../agent/index.js';
import type { OciExecutor } from '../container/executor.js';
import { layout } from '../container/handle.js';
import { DISK_DIR } from '../container/disk.js';

/** What a checkpoint dir holds, by name. */
export const CHECKPOINT_IMAGE_DIR = 'image';
export const CHECKPOINT_UPPER_DIR = 'upper';

/** The writable layer's upper dir of the sandbox in `dir` (on its disk tmpfs when it has a disk limit). */
export function upperDirOf(dir: string): string {
  const onDisk = path.join(dir, DISK_DIR, 'upper');
  return fs.existsSync(onDisk) ? onDisk : layout(dir).upper;
}

/** Asks the agent to close its listener and connections, and waits until its socket is gone. */
export async function quiesceAgent(id: string, dir: string, client: AgentClient): Promise<void> {
  try {
    await client.quiesce({ timeoutMs: 5000 });
  } finally {
    client.close();
  }
  const sock = path.join(layout(dir).run, AGENT_SOCKET_NAME);
  for (let delay = 1, waited = 0; fs.existsSync(sock); waited += delay, delay = Math.min(delay * 2, 20)) {
    if (waited > 5000) throw new HutchError('ETIMEDOUT', `sandbox ${id}: the agent did not close its socket for the checkpoint`, { id });
    await new Promise((r) => setTimeout(r, delay));
  }
}

/** Has a restored agent listen again (SIGUSR2 to the init). */
export async function wakeAgent(executor: OciExecutor, id: string): Promise<void> {
  await executor.kill(id, 'SIGUSR2', false);
}
