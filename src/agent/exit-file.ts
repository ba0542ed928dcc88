// The exit record of a sandbox's main process: written by the agent next to its socket, read by the
// host. The directory is shared with the sandbox, so the host reads it as untrusted input: no symlink
// following, regular files only, size-limited, schema-checked.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errnoCode, HutchError } from '../errors.js';
import { int, nullable, obj, SchemaError, str } from './check.js';
import type { ExitStatus } from './protocol.js';

/** File name of the agent's socket in the sandbox's run dir (/.hutch/run inside). */
export const AGENT_SOCKET_NAME = 'agent.sock';
/** File name of the main process's exit record, in the same dir. */
export const EXIT_FILE_NAME = 'exit.json';
/** Largest exit record the host accepts. */
export const MAX_EXIT_FILE_BYTES = 4096;

const checkExitStatus = obj<ExitStatus>({ exitCode: nullable(int(0, 255)), signal: nullable(str({ max: 16, nonEmpty: true })) });

/** Writes `status` to `file` atomically (temp file, fsync, rename, fsync of the dir). */
export function writeExitFile(file: string, status: ExitStatus): void {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.tmp`);
  const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_NOFOLLOW, 0o644);
  try {
    fs.writeSync(fd, JSON.stringify(status) + '\n');
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  const dfd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    fs.fsyncSync(dfd);
  } finally {
    fs.closeSync(dfd);
  }
}

/**
 * Opens for reading a file in a sandbox's run dir, which the sandbox can write: never through a
 * symlink, never a fifo or device (O_NONBLOCK: opening one cannot hang), regular files only; null
 * when there is none. EPROTO, naming `what`, for anything else.
 */
export function openSandboxWritten(file: string, what: string): number | null {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY);
  } catch (e) {
    const c = errnoCode(e);
    if (c === 'ENOENT') return null;
    if (c === 'ELOOP') throw new HutchError('EPROTO', `${what} ${file} is a symlink: not read`, { path: file, cause: e });
    throw new HutchError('EPROTO', `cannot open ${what} ${file}: ${c}`, { path: file, cause: e });
  }
  if (!fs.fstatSync(fd).isFile()) {
    fs.closeSync(fd);
    throw new HutchError('EPROTO', `${what} ${file} is not a regular file: not read`, { path: file });
  }
  return fd;
}

/**
 * Reads and checks an exit record the agent wrote. ENOTFOUND when there is none; EPROTO when it is a
 * symlink, not a regular file, larger than MAX_EXIT_FILE_BYTES, or not {exitCode, signal}.
 */
export function readExitFile(file: string): ExitStatus {
  const fd = openSandboxWritten(file, 'exit record');
  if (fd === null) throw new HutchError('ENOTFOUND', `no exit record at ${file}`, { path: file });
  try {
    const st = fs.fstatSync(fd);
    if (st.size > MAX_EXIT_FILE_BYTES) throw new HutchError('EPROTO', `exit record ${file} is larger than ${MAX_EXIT_FILE_BYTES} bytes`, { path: file });
    const buf = Buffer.alloc(MAX_EXIT_FILE_BYTES + 1);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    if (n > MAX_EXIT_FILE_BYTES) throw new HutchError('EPROTO', `exit record ${file} is larger than ${MAX_EXIT_FILE_BYTES} bytes`, { path: file });
    let value: unknown;
    try {
      value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(0, n)));
      const status = checkExitStatus(value, 'exit record');
      if ((status.exitCode === null) === (status.signal === null)) throw new SchemaError('exit record', 'exactly one of exitCode and signal must be set');
      return status;
    } catch (e) {
      const why = e instanceof SchemaError || e instanceof SyntaxError || e instanceof TypeError ? e.message : String(e);
      throw new HutchError('EPROTO', `exit record ${file} is malformed: ${why.slice(0, 200)}`, { path: file, cause: e });
    }
  } finally {
    fs.closeSync(fd);
  }
}
