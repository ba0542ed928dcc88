// Stopping a sandbox: ask its agent to shut down, then signal the init, then kill it.
import { HutchError, isHutchError } from '../errors.js';
import type { EngineContext } from './context.js';
import type { SandboxRecord } from './state.js';
import { observeInit } from './liveness.js';

/** Stops a sandbox whose lock the caller holds: the agent's shutdown, then SIGTERM, then SIGKILL. */
export async function stopSandbox(engine: EngineContext, record: SandboxRecord, graceMs: number): Promise<void> {
  const platform = await engine.platformOf(record);
  const handle = record.handle!;
  if (record.phase === 'paused') await platform.resume(handle);
  let stopped = false;
  if (record.mode === 'agent' && record.phase !== 'ready') {
    try {
      const client = await platform.connect(handle, 2000);
      try {
        await client.shutdown({ graceMs }, { timeoutMs: graceMs + 3000 });
      } finally {
        client.close();
      }
      stopped = await waitInitGone(engine, record, 3000);
    } catch (e) {
      if (!isHutchError(e)) throw e; // the agent did not answer: fall through to signals
    }
  }
  // A kill that fails because the init is gone meanwhile has nothing left to do: seen from the init
  // itself, not from the executor's words.
  const signalAll = (signal: string) => platform.kill(handle, signal, true).catch((e: unknown) => {
    if (observeInit(platform, record, engine.store.dir(record.id)).alive) throw e;
  });
  if (!stopped && record.phase !== 'ready') {
    await signalAll('SIGTERM');
    stopped = await waitInitGone(engine, record, graceMs);
  }
  if (!stopped) {
    await signalAll('SIGKILL');
    if (!(await waitInitGone(engine, record, 5000))) {
      throw new HutchError('ETIMEDOUT', `sandbox ${record.id} did not stop after SIGKILL`, { id: record.id });
    }
  }
  record.phase = 'stopped';
  record.finishedAt = new Date().toISOString();
  await engine.recordEnd(record, 'stopped');
}

async function waitInitGone(engine: EngineContext, record: SandboxRecord, timeoutMs: number): Promise<boolean> {
  const platform = await engine.platformOf(record);
  const deadline = Date.now() + timeoutMs;
  for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
    if (!observeInit(platform, record, engine.store.dir(record.id)).alive) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, delay));
  }
}
