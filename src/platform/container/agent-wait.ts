// Waiting for a new sandbox's agent: its socket in the run dir, then a ping.
import fs from 'node:fs';
import path from 'node:path';
import { HutchError } from '../../errors.js';
import { processAlive } from '../../linux/index.js';
import { AGENT_SOCKET_NAME } from '../../agent/exit-file.js';
import { layout } from './handle.js';
import { initLogOf } from './disk.js';

/** Polls for the agent's socket and a successful ping; fails early when the init (pid `initPid`) is gone. */
export async function waitForAgent(id: string, dir: string, initPid: number | undefined, timeoutMs: number): Promise<void> {
  const runDir = layout(dir).run;
  const sock = path.join(runDir, AGENT_SOCKET_NAME);
  const deadline = Date.now() + timeoutMs;
  // Woken by inotify when the agent binds its socket (no polling delay on the create path); the
  // timer stays as a fallback, and to notice an agent that died.
  let wake: (() => void) | undefined;
  const watcher = fs.watch(runDir, () => wake?.());
  let lastError: unknown;
  try {
    while (Date.now() < deadline) {
      if (fs.existsSync(sock)) {
        try {
          const { AgentClient } = await import('../../agent/index.js');
          const client = await AgentClient.connectSocket(sock, { timeoutMs: Math.max(100, deadline - Date.now()) });
          await client.ping();
          client.close();
          return;
        } catch (e) {
          lastError = e;
        }
      }
      if (initPid !== undefined && !processAlive(initPid)) {
        throw new HutchError('EEXEC', `sandbox ${id}: the agent exited before it was ready${initLogTail(initLogOf(dir))}`, { id });
      }
      await new Promise<void>((r) => {
        const timer = setTimeout(r, 20);
        wake = () => { clearTimeout(timer); r(); };
      });
      wake = undefined;
    }
  } finally {
    watcher.close();
  }
  throw new HutchError('ETIMEDOUT', `sandbox ${id}: the agent did not answer within ${timeoutMs} ms${lastError instanceof Error ? ` (${lastError.message})` : ''}`, { id });
}

/** The last lines of an init's log, as ": a | b | c" for an error message; '' when there are none. */
export function initLogTail(file: string): string {
  try {
    const text = fs.readFileSync(file, 'utf8').trim().split('\n').slice(-3).join(' | ');
    return text ? `: ${text.slice(0, 500)}` : '';
  } catch {
    return ''; // no log written: nothing to add to the error
  }
}
