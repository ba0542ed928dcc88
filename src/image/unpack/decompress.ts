// Opens a layer blob as a stream of uncompressed tar bytes. The compression is read from the blob's
// first bytes, not from a media type: gzip through node:zlib, zstd through the `zstd` tool (Node 20
// has no zstd), anything else is taken as a plain tar.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { pipeline, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { errnoCode, HutchError } from '../../errors.js';

/** How a blob is compressed. */
export type LayerCompression = 'gzip' | 'zstd' | 'none';

/** An open layer: its uncompressed bytes, and a way to learn how the decompressor ended. */
export interface LayerStream {
  compression: LayerCompression;
  stream: AsyncIterable<Buffer>;
  /** Resolves when the decompressor finished cleanly; rejects with what went wrong otherwise. */
  done(): Promise<void>;
  /** Stops reading (after an error elsewhere) and waits until every fd and process is gone. */
  close(): Promise<void>;
}

const GZIP_MAGIC = [0x1f, 0x8b];
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];
const READ_CHUNK = 1 << 20;

/** The compression of the blob whose first bytes are `head`. */
export function detectCompression(head: Buffer): LayerCompression {
  const starts = (magic: number[]): boolean => magic.every((b, i) => head[i] === b);
  if (starts(GZIP_MAGIC)) return 'gzip';
  if (starts(ZSTD_MAGIC)) return 'zstd';
  return 'none';
}

/** Opens `blob`; `label` names the layer in errors. */
export function openLayer(blob: string, label: string): LayerStream {
  let fd: number;
  try {
    fd = fs.openSync(blob, 'r');
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') throw new HutchError('ENOTFOUND', `layer ${label}: blob ${blob} does not exist`, { id: label, path: blob });
    throw new HutchError('EINTERNAL', `layer ${label}: cannot open ${blob}: ${(e as Error).message}`, { id: label, path: blob, cause: e });
  }
  const head = Buffer.alloc(4);
  let compression: LayerCompression;
  try {
    compression = detectCompression(head.subarray(0, fs.readSync(fd, head, 0, 4, 0)));
  } catch (e) {
    fs.closeSync(fd);
    throw new HutchError('EINTERNAL', `layer ${label}: cannot read ${blob}: ${(e as Error).message}`, { id: label, path: blob, cause: e });
  }
  return compression === 'zstd' ? openZstd(fd, label) : openNode(fd, label, compression);
}

/** Plain and gzip: a file stream, through zlib for gzip. */
function openNode(fd: number, label: string, compression: 'gzip' | 'none'): LayerStream {
  const file = fs.createReadStream('', { fd, start: 0, highWaterMark: READ_CHUNK });
  const fileClosed = new Promise<void>((resolve) => file.on('close', () => resolve()));
  let failure: Error | undefined;
  let stream: Readable = file;
  const finished = new Promise<void>((resolve) => {
    if (compression === 'none') {
      file.on('error', (e) => { failure = e; });
      void fileClosed.then(resolve);
    } else {
      stream = pipeline(file, createGunzip({ chunkSize: 256 * 1024 }), (e) => {
        if (e) failure = e;
        resolve();
      });
    }
  });
  const describe = (e: Error): HutchError => {
    const zlib = errnoCode(e)?.startsWith('Z_') ?? false;
    return zlib
      ? new HutchError('EINTEGRITY', `layer ${label} is truncated or corrupt: gzip: ${e.message}`, { id: label, cause: e })
      : new HutchError('EINTERNAL', `layer ${label}: reading failed: ${e.message}`, { id: label, cause: e });
  };
  return {
    compression,
    stream: iterate(stream, describe),
    async done() {
      await finished;
      await fileClosed;
      if (failure) throw describe(failure);
    },
    async close() {
      stream.destroy();
      file.destroy();
      await finished;
      await fileClosed;
    },
  };
}

/** Iterates `stream`, turning its errors into ones that name the layer. */
async function* iterate(stream: AsyncIterable<Buffer>, describe: (e: Error) => HutchError): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of stream) yield chunk;
  } catch (e) {
    throw describe(e as Error);
  }
}

/** zstd: `zstd -dc` reading the blob's fd itself, its output read here. */
function openZstd(fd: number, label: string): LayerStream {
  const child = spawn('zstd', ['-d', '-c', '-q'], { stdio: [fd, 'pipe', 'pipe'] });
  fs.closeSync(fd); // the child has its own copy
  const stdout = child.stdout!, childStderr = child.stderr!;
  let stderr = '';
  childStderr.setEncoding('utf8');
  childStderr.on('data', (d: string) => { if (stderr.length < 4096) stderr += d; });
  let spawnError: Error | undefined;
  const exited = new Promise<number | null>((resolve) => {
    child.on('error', (e) => { spawnError = e; resolve(null); });
    child.on('close', (code) => resolve(code));
  });
  const describe = (e: Error): HutchError => errnoCode(e) === 'ENOENT'
    ? new HutchError('EUNSUPPORTED', `layer ${label} is zstd-compressed and the zstd tool is not installed (apt install zstd)`, { id: label, cause: e })
    : new HutchError('EINTERNAL', `layer ${label}: reading zstd output failed: ${e.message}`, { id: label, cause: e });
  return {
    compression: 'zstd',
    stream: iterate(stdout, describe),
    async done() {
      const code = await exited;
      if (spawnError) throw describe(spawnError);
      if (code !== 0) {
        const why = stderr.trim().split('\n').pop()?.replace(/^(zstd:\s*)?\/\*stdin\*\\?\s*:\s*/, '') ?? `exit ${code}`;
        throw new HutchError('EINTEGRITY', `layer ${label} is truncated or corrupt: zstd: ${why || `exit ${code}`}`, { id: label });
      }
    },
    async close() {
      stdout.destroy();
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
