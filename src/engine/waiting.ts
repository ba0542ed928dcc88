// Waiting for a sandbox to stop: its init going away, seen from its pid and start time.
import type { EngineContext } from './context.js';
import type { SandboxInfo } from './types.js';

/** Polls (5 ms doubling to 100 ms) until the sandbox is stopped; records the final state once. */
export async function waitUntilStopped(engine: EngineContext, ref: string, signal?: AbortSignal): Promise<SandboxInfo> {
  const id = engine.store.resolve(ref);
  for (let delay = 5; ; delay = Math.min(delay * 2, 100)) {
    signal?.throwIfAborted();
    const info = await engine.inspect(id);
    if (info.status === 'stopped') {
      // Write the observed end down if nobody is changing the sandbox right now; ls shows it anyway.
      const lock = engine.store.tryLock(id, 'exclusive');
      if (lock) {
        try {
          const record = engine.store.read(id);
          if (record && record.phase !== 'stopped') {
            await engine.refresh(record);
            engine.store.write(record);
          }
        } finally {
          lock.release();
        }
      }
      return info;
    }
    await new Promise((r) => setTimeout(r, delay));
  }
}
