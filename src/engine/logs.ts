// `hutch logs`: the output of a sandbox's main command, from main.log (and its rotated part) in the
// sandbox's run dir. That dir is the sandbox's to write, so the files are read as untrusted input:
// never through a symlink, regular files only, and no more than asked for.
import fs from 'node:fs';
import { HutchError } from '../errors.js';
// The agent's file formats, imported directly: the agent's index brings its client (net, streams),
// which a one-shot run never needs and the engine bundle must not initialise at load.
import { openSandboxWritten } from '../agent/exit-file.js';
import { MAIN_LOG_CAP_BYTES } from '../agent/main-log.js';
import type { EngineContext } from './context.js';
import { handleOf } from './liveness.js';

/** What `sandboxLogs` reads and how. */
export interface LogOptions {
  /** Only the last this many lines. */
  tailLines?: number;
  /** Keep reading new output until the sandbox stops (or `signal` aborts). */
  follow?: boolean;
  signal?: AbortSignal;
  /** How often a follow looks for new output. */
  pollMs?: number;
}

const MAX_READ_BYTES = 2 * MAIN_LOG_CAP_BYTES + 1024 * 1024;

/** Opens a log file of the sandbox (its own to write) without following links; null when there is none. */
function openLog(file: string): number | null {
  return openSandboxWritten(file, "the sandbox's log");
}

/** Bytes of `fd` from `from` to its end (at most MAX_READ_BYTES). */
function readFrom(fd: number, from: number): Buffer {
  const size = fs.fstatSync(fd).size;
  const start = Math.max(from, size - MAX_READ_BYTES);
  if (size <= start) return Buffer.alloc(0);
  const buf = Buffer.alloc(size - start);
  const n = fs.readSync(fd, buf, 0, buf.length, start);
  return buf.subarray(0, n);
}

/** The last `n` lines of `data`. */
function lastLines(data: Buffer, n: number): Buffer {
  let at = data.length;
  if (at > 0 && data[at - 1] === 0x0a) at--; // a final newline ends the last line, it does not start one
  for (let seen = 0; at > 0; at--) {
    if (data[at - 1] === 0x0a && ++seen === n) break;
  }
  return n === 0 ? Buffer.alloc(0) : data.subarray(at);
}

/**
 * Writes the main command's output of sandbox `ref` to `out`: what is logged so far, then with
 * `follow` what comes until the sandbox stops. A sandbox without an agent (a foreground run) has none.
 */
export async function sandboxLogs(engine: EngineContext, ref: string, out: (chunk: Buffer) => void, opts: LogOptions = {}): Promise<void> {
  const info = await engine.inspect(ref);
  if (info.mode !== 'agent') throw new HutchError('EUNSUPPORTED', `sandbox ${info.id} ran its command in the foreground: its output went to the terminal, not to a log`, { id: info.id });
  const platform = await engine.platformOf(info);
  const file = platform.mainLogPath(handleOf(platform, info, engine.store.dir(info.id)));
  if (file === null) throw new HutchError('EUNSUPPORTED', `sandbox ${info.id}: the ${platform.name} platform keeps no log of its main command on the host`, { id: info.id });
  const older = openLog(`${file}.1`);
  let fd = openLog(file);
  let offset = 0;
  try {
    let first: Buffer = Buffer.concat([older === null ? Buffer.alloc(0) : readFrom(older, 0), fd === null ? Buffer.alloc(0) : readFrom(fd, 0)]);
    if (fd !== null) offset = fs.fstatSync(fd).size;
    if (opts.tailLines !== undefined) first = lastLines(first, opts.tailLines);
    if (first.length) out(first);
    if (!opts.follow) return;
    for (;;) {
      const stopped = (await engine.inspect(info.id)).status === 'stopped';
      // The agent rotates main.log by renaming it: a new file at the name means start again at 0.
      const now = openLog(file);
      if (now !== null && (fd === null || fs.fstatSync(now).ino !== fs.fstatSync(fd).ino)) {
        if (fd !== null) {
          const rest = readFrom(fd, offset);
          if (rest.length) out(rest);
          fs.closeSync(fd);
        }
        fd = now;
        offset = 0;
      } else if (now !== null) {
        fs.closeSync(now);
      }
      if (fd !== null) {
        const fresh = readFrom(fd, offset);
        offset += fresh.length;
        if (fresh.length) out(fresh);
      }
      if (stopped || opts.signal?.aborted) return;
      await new Promise((r) => setTimeout(r, opts.pollMs ?? 200));
    }
  } finally {
    if (older !== null) fs.closeSync(older);
    if (fd !== null) fs.closeSync(fd);
  }
}
