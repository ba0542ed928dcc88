// envd's plain HTTP paths: GET /files (download), POST /files (upload: multipart with one or more
// files, or octet-stream; gzip per Content-Encoding) and GET /health. Errors are envd's JSON
// `{code, message}` with the HTTP status. Relative paths resolve against the user's home (the
// `username` query, else the call's user).
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import type { ServerResponse } from 'node:http';
import { isHutchError } from '../../errors.js';
import { capped, errorBody, readBody } from '../http.js';
import type { EnvdCall, EnvdHandler } from './types.js';
import { accountFor, accountsOf, resolvePath } from './accounts.js';
import { CONNECT_STATUS, connectErrorOf, ConnectFault } from './connect.js';

/** Answers with envd's JSON error. */
function sendFileError(res: ServerResponse, e: unknown): void {
  if (res.headersSent) return void res.destroy();
  const status = e instanceof ConnectFault || !isHutchError(e) ? CONNECT_STATUS[connectErrorOf(e).code] : errorBody(e).status;
  const text = JSON.stringify({ code: status, message: connectErrorOf(e).message });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** The user of a /files request: the `username` query, else the call's. */
function userOf(call: EnvdCall): string | undefined {
  return call.url.searchParams.get('username') || call.user;
}

/** GET /files: the file's bytes (gzip when the client accepts it). */
async function download(call: EnvdCall): Promise<void> {
  const files = await call.s.calls.files(call.sandboxId);
  const home = accountFor(await accountsOf(files), userOf(call)).home;
  const p = resolvePath(call.url.searchParams.get('path'), home);
  const st = await files.stat(p, { follow: true }).catch((e: unknown) => {
    if (isHutchError(e, 'ENOTFOUND')) throw new ConnectFault('not_found', `path '${p}' does not exist`, { path: p });
    throw e;
  });
  if (st.type !== 'file') throw new ConnectFault('invalid_argument', `path '${p}' is ${st.type === 'dir' ? 'a directory' : 'not a regular file'}`, { path: p });
  const gzip = /\bgzip\b/.test(String(call.req.headers['accept-encoding'] ?? ''));
  const headers: Record<string, string | number> = {
    'content-type': 'application/octet-stream', 'content-disposition': `attachment; filename=${JSON.stringify(posix.basename(p))}`,
  };
  const source = files.createReadStream(p, { length: st.size });
  if (gzip) {
    call.res.writeHead(200, { ...headers, 'content-encoding': 'gzip' });
    await pipeline(source, createGzip(), call.res);
  } else {
    call.res.writeHead(200, { ...headers, 'content-length': st.size });
    await pipeline(source, call.res);
  }
}

/** The parts of a multipart/form-data body: each file's name and bytes. */
function multipartFiles(body: Buffer, boundary: string): { filename: string | undefined; data: Buffer }[] {
  const delim = Buffer.from(`--${boundary}`);
  const out: { filename: string | undefined; data: Buffer }[] = [];
  let at = body.indexOf(delim);
  if (at < 0) throw new ConnectFault('invalid_argument', 'multipart body has no parts');
  for (;;) {
    at += delim.length;
    if (body.subarray(at, at + 2).toString() === '--') break;
    const headEnd = body.indexOf('\r\n\r\n', at);
    const next = body.indexOf(Buffer.from(`\r\n--${boundary}`), headEnd);
    if (headEnd < 0 || next < 0) throw new ConnectFault('invalid_argument', 'multipart body is cut short');
    const head = body.subarray(at, headEnd).toString('utf8');
    const disposition = /content-disposition:([^\r\n]*)/i.exec(head)?.[1] ?? '';
    const name = /\bname="([^"]*)"/i.exec(disposition)?.[1];
    const filename = /\bfilename="((?:[^"\\]|\\.)*)"/i.exec(disposition)?.[1];
    if (name === 'file') out.push({ filename: filename?.replace(/\\(.)/g, '$1'), data: body.subarray(headEnd + 4, next) });
    at = next + 2;
  }
  return out;
}

/** POST /files: writes the uploaded file(s), making missing parents; answers [{name, type, path}]. */
async function upload(call: EnvdCall): Promise<void> {
  const { s, req, url } = call;
  const files = await s.calls.files(call.sandboxId);
  const home = accountFor(await accountsOf(files), userOf(call)).home;
  const query = url.searchParams.get('path');
  const encoding = String(req.headers['content-encoding'] ?? 'identity').trim();
  if (encoding !== 'identity' && encoding !== 'gzip') throw new ConnectFault('invalid_argument', `content encoding ${encoding.slice(0, 40)} is not supported`);
  const body = (): AsyncIterable<Buffer> => {
    const raw = Readable.from(capped(req, s.limits.maxUploadBytes));
    return encoding === 'gzip' ? raw.pipe(createGunzip()) : raw;
  };
  const type = String(req.headers['content-type'] ?? '');
  const written: { name: string; type: 'file'; path: string }[] = [];
  const write = async (p: string, data: Buffer | AsyncIterable<Buffer>) => {
    const parent = posix.dirname(p);
    if ((await files.stat(parent, { follow: true }).catch(() => null))?.type !== 'dir') await files.mkdir(parent, { parents: true });
    await files.writeFile(p, data);
    written.push({ name: posix.basename(p), type: 'file', path: p });
  };
  const boundary = /^multipart\/form-data;.*\bboundary="?([^";]+)"?/i.exec(type)?.[1];
  if (boundary) {
    let raw = await readBody(req, s.limits.maxUploadBytes);
    if (encoding === 'gzip') raw = Buffer.concat(await Readable.from([raw]).pipe(createGunzip()).toArray() as Buffer[]);
    const parts = multipartFiles(raw, boundary);
    if (parts.length === 0) throw new ConnectFault('invalid_argument', 'the upload has no part named file');
    if (query !== null && parts.length > 1) throw new ConnectFault('invalid_argument', 'path is set but the upload has several files');
    for (const part of parts) await write(resolvePath(query ?? part.filename, home), part.data);
  } else {
    if (query === null) throw new ConnectFault('invalid_argument', 'path is required for an octet-stream upload');
    await write(resolvePath(query, home), body());
  }
  const text = JSON.stringify(written);
  call.res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  call.res.end(text);
}

/** A handler answering its failure as envd's JSON error. */
function plain(fn: (call: EnvdCall) => Promise<void>): EnvdHandler {
  return async (call) => {
    try {
      await fn(call);
    } catch (e) {
      sendFileError(call.res, e);
    }
  };
}

/** The plain paths' handlers. */
export const fileHandlers: Record<string, EnvdHandler> = {
  '/files': plain(async (call) => {
    if (call.req.method === 'GET') return download(call);
    if (call.req.method === 'POST') return upload(call);
    throw new ConnectFault('invalid_argument', `method ${String(call.req.method).slice(0, 10)} is not allowed on /files`);
  }),
  '/health': plain(async (call) => {
    call.res.writeHead(204).end();
  }),
};
