// Blob downloads: streamed to `<dest>.partial` while hashed, resumed with a Range request after an
// interruption, checked for size and sha256, then renamed into place. Bad content never stays on disk.
import { createHash, type Hash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { HutchError, errnoCode, isHutchError } from '../../errors.js';
import type { Descriptor, ProgressEvent } from '../types.js';
import { readBody, TransientFailure, withRetries, type Exchange, type RetryPolicy } from './transport.js';

/** `sha256:<hex>` of a buffer. */
export function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** Opens the blob from byte `offset` (a Range request when > 0); resolves with a 200, 206 or 416 answer. */
export type BlobOpener = (offset: number) => Promise<Exchange>;

/** Where a blob comes from and how hard to try. */
export interface BlobJob {
  desc: Descriptor;
  /** Names the blob in errors: `127.0.0.1:5000/x@sha256:…`. */
  what: string;
  host: string;
  policy: RetryPolicy;
  open: BlobOpener;
  onProgress?: (e: ProgressEvent) => void;
}

function mismatch(job: BlobJob, actual: string): HutchError {
  return new HutchError('EINTEGRITY', `blob ${job.desc.digest} of ${job.what} does not match its digest (the content has ${actual}); nothing was kept`, { id: job.desc.digest });
}

/** Fetches a small blob into memory, verified; refuses one larger than `maxBytes`. */
export async function fetchBlobToMemory(job: BlobJob, maxBytes: number): Promise<Buffer> {
  const { desc } = job;
  if (desc.size > maxBytes) {
    throw new HutchError('EINVAL', `blob ${desc.digest} of ${job.what} is ${desc.size} bytes, more than the ${maxBytes} allowed in memory`, { id: desc.digest });
  }
  return withRetries(`blob ${desc.digest} of ${job.what}`, job.host, job.policy, async () => {
    const ex = await job.open(0);
    if (ex.status !== 200) {
      ex.body.resume();
      throw new HutchError('EPROTO', `registry answered ${ex.status} for blob ${desc.digest} of ${job.what}`, { id: desc.digest });
    }
    let data: Buffer;
    try {
      data = await readBody(ex, desc.size, `blob ${desc.digest} of ${job.what}`);
    } catch (e) {
      if (isHutchError(e, 'EPROTO')) {
        throw new HutchError('EINTEGRITY', `blob ${desc.digest} of ${job.what} is larger than the ${desc.size} bytes its descriptor says`, { id: desc.digest });
      }
      throw e;
    }
    if (data.length !== desc.size) {
      throw new HutchError('EINTEGRITY', `blob ${desc.digest} of ${job.what} is ${data.length} bytes, not the ${desc.size} its descriptor says`, { id: desc.digest });
    }
    const actual = sha256(data);
    if (actual !== desc.digest) throw mismatch(job, actual);
    return data;
  });
}

/** Hashes the first bytes of a file (the part already downloaded). */
async function hashFile(file: string): Promise<{ hash: Hash; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of fs.createReadStream(file) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { hash, size };
}

function fileSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return 0;
    throw e;
  }
}

/** What one download did (for tests and logs). */
export interface DownloadReport {
  /** Bytes that were on disk from an earlier attempt and kept (resumed with Range). */
  resumedFrom: number;
  /** Requests made for the body. */
  requests: number;
}

/**
 * Downloads a blob to `dest` through `<dest>.partial`: resumes a partial file (hashing what it holds
 * first), falls back to a full download when the server ignores Range, verifies size and digest and
 * renames into place. A resumed download that fails verification is retried once from the start.
 */
export async function downloadToFile(job: BlobJob, dest: string): Promise<DownloadReport> {
  const { desc } = job;
  const partial = `${dest}.partial`;
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  const report: DownloadReport = { resumedFrom: 0, requests: 0 };
  const emit = (phase: ProgressEvent['phase'], done: number): void => job.onProgress?.({ digest: desc.digest, phase, done, total: desc.size });
  emit('waiting', 0);
  let lastEmit = 0;
  const what = `blob ${desc.digest} of ${job.what}`;
  for (let pass = 0; ; pass++) {
    let resumed = false;
    const hash = await withRetries(what, job.host, job.policy, async () => {
      let have = fileSize(partial);
      if (have > desc.size) { fs.rmSync(partial, { force: true }); have = 0; }
      let state = have > 0 ? await hashFile(partial) : { hash: createHash('sha256'), size: 0 };
      if (have > 0 && report.resumedFrom === 0) report.resumedFrom = have;
      if (have > 0) resumed = true;
      if (state.size === desc.size) return state.hash;
      report.requests++;
      let ex = await job.open(have);
      const start = ex.status === 206 ? Number(/^bytes (\d+)-/.exec(String(ex.headers['content-range'] ?? ''))?.[1] ?? NaN) : 0;
      if (ex.status === 416 || (ex.status === 206 && start !== have) || (ex.status === 200 && have > 0)) {
        // The server cannot (or will not) continue where we stopped: start over from byte 0.
        if (ex.status !== 200) { ex.body.resume(); report.requests++; ex = await job.open(0); }
        have = 0;
        state = { hash: createHash('sha256'), size: 0 };
        fs.rmSync(partial, { force: true });
      }
      if (ex.status !== 200 && ex.status !== 206) {
        ex.body.resume();
        throw new HutchError('EPROTO', `registry answered ${ex.status} for ${what}`, { id: desc.digest });
      }
      const fh = await fs.promises.open(partial, have > 0 ? 'a' : 'w', 0o644);
      let done = have;
      let oversized = false;
      try {
        emit('downloading', done);
        for await (const chunk of ex.body as AsyncIterable<Buffer>) {
          if (done + chunk.length > desc.size) { oversized = true; ex.body.destroy(); break; }
          await fh.write(chunk);
          state.hash.update(chunk);
          done += chunk.length;
          if (Date.now() - lastEmit > 200) { lastEmit = Date.now(); emit('downloading', done); }
        }
        await fh.sync();
      } finally {
        await fh.close();
      }
      if (oversized) {
        fs.rmSync(partial, { force: true });
        throw new HutchError('EINTEGRITY', `${what} is larger than the ${desc.size} bytes its descriptor says; nothing was kept`, { id: desc.digest });
      }
      emit('downloading', done);
      // A body that ended early is an interruption: the next attempt resumes from here.
      if (done < desc.size) throw new TransientFailure(`${what} ended after ${done} of ${desc.size} bytes`);
      return state.hash;
    });
    emit('verifying', desc.size);
    const actual = `sha256:${hash.digest('hex')}`;
    if (actual === desc.digest) break;
    fs.rmSync(partial, { force: true });
    // Bytes kept from an earlier attempt may be what is wrong: try once more from nothing.
    if (!resumed || pass > 0) throw mismatch(job, actual);
  }
  fs.renameSync(partial, dest);
  emit('done', desc.size);
  return report;
}
