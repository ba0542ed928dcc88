// Files of a sandbox, through its agent: raw read/write, list, stat, mkdir, remove, tar archives.
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { HutchError } from '../errors.js';
import { tarOf, untarInto } from './archive.js';
import { capped, optBool, optNumber, readJson, sandboxPath, sendJson } from './http.js';
import type { Route } from './router.js';
import { servedId, type Services } from './services.js';

/** A mode from the query (octal text such as 644 or 0755). */
function modeOf(url: URL): number | undefined {
  const m = url.searchParams.get('mode');
  if (m === null) return undefined;
  if (!/^0?[0-7]{3,4}$/.test(m)) throw new HutchError('EINVAL', `mode must be octal such as 644 or 0755: ${m.slice(0, 20)}`);
  return parseInt(m, 8);
}

/** A yes/no query flag. */
function flag(url: URL, key: string): boolean {
  const v = url.searchParams.get(key);
  if (v === null || v === 'false' || v === '0') return false;
  if (v === '' || v === 'true' || v === '1') return true;
  throw new HutchError('EINVAL', `${key} must be true or false`);
}

/** Streams a body to the client; an error before the first byte is a JSON error, later it cuts the stream. */
async function streamOut(res: import('node:http').ServerResponse, contentType: string, source: Readable, size?: number): Promise<void> {
  res.writeHead(200, { 'content-type': contentType, ...(size !== undefined ? { 'content-length': size } : {}) });
  await pipeline(source, res);
}

/** The routes. */
export function fileRoutes(s: Services): Route[] {
  const files = async (ref: string) => s.calls.files(await servedId(s, ref));
  return [
    {
      method: 'GET', path: '/v1/sandboxes/{id}/files', handle: async ({ res, url, params }) => {
        const p = sandboxPath(url);
        const f = await files(params['id']!);
        const st = await f.stat(p, { follow: true });
        if (st.type === 'dir') throw new HutchError('EINVAL', `${p} is a directory: list it with /files/list or download it with /archive`, { path: p });
        if (st.type !== 'file') throw new HutchError('EINVAL', `${p} is not a regular file`, { path: p });
        // Read to the size stat gave, so that content-length stays true if the file grows meanwhile.
        const stream = f.createReadStream(p, { length: st.size });
        let sent = 0;
        const exact = Readable.from((async function* () {
          for await (const c of stream) { sent += (c as Buffer).length; yield c as Buffer; }
          if (sent < st.size) yield Buffer.alloc(st.size - sent); // shrank meanwhile: the length was promised
        })());
        await streamOut(res, 'application/octet-stream', exact, st.size);
      },
    },
    {
      method: 'PUT', path: '/v1/sandboxes/{id}/files', handle: async ({ req, res, url, params }) => {
        const p = sandboxPath(url);
        const mode = modeOf(url);
        const f = await files(params['id']!);
        // The missing parents first (mode 0755, as mkdir -p): one more call, and only on request.
        if (flag(url, 'parents')) await f.mkdir(posix.dirname(p), { parents: true });
        const written = await f.writeFile(p, capped(req, s.limits.maxUploadBytes), { append: flag(url, 'append'), ...(mode !== undefined ? { mode } : {}) });
        sendJson(res, 200, { path: p, written });
      },
    },
    {
      method: 'DELETE', path: '/v1/sandboxes/{id}/files', handle: async ({ res, url, params }) => {
        const p = sandboxPath(url);
        await (await files(params['id']!)).remove(p, { recursive: flag(url, 'recursive') });
        res.writeHead(204).end();
      },
    },
    {
      method: 'GET', path: '/v1/sandboxes/{id}/files/list', handle: async ({ res, url, params }) => {
        const p = sandboxPath(url);
        sendJson(res, 200, { path: p, entries: await (await files(params['id']!)).list(p) });
      },
    },
    {
      method: 'GET', path: '/v1/sandboxes/{id}/files/stat', handle: async ({ res, url, params }) => {
        const p = sandboxPath(url);
        sendJson(res, 200, { path: p, ...(await (await files(params['id']!)).stat(p, { follow: flag(url, 'follow') })) });
      },
    },
    {
      method: 'POST', path: '/v1/sandboxes/{id}/files/mkdir', handle: async ({ req, res, params }) => {
        const body = await readJson(req, s.limits.maxJsonBytes);
        const p = typeof body['path'] === 'string' ? body['path'] : '';
        if (!p.startsWith('/')) throw new HutchError('EINVAL', 'path must be an absolute path inside the sandbox');
        const mode = optNumber(body, 'mode', 0, 0o7777);
        await (await files(params['id']!)).mkdir(p, { parents: optBool(body, 'parents') ?? false, ...(mode !== undefined ? { mode } : {}) });
        sendJson(res, 201, { path: p });
      },
    },
    {
      method: 'GET', path: '/v1/sandboxes/{id}/archive', handle: async ({ res, url, params }) => {
        const p = sandboxPath(url);
        const f = await files(params['id']!);
        const gen = tarOf(f, p);
        // The first piece (the top's header) is awaited here, so that a missing path is a 404, not a cut stream.
        const first = await gen.next();
        const all = Readable.from((async function* () {
          if (!first.done) yield first.value;
          yield* gen;
        })());
        await streamOut(res, 'application/x-tar', all);
      },
    },
    {
      method: 'PUT', path: '/v1/sandboxes/{id}/archive', handle: async ({ req, res, url, params }) => {
        const p = sandboxPath(url);
        const f = await files(params['id']!);
        sendJson(res, 200, { path: p, ...(await untarInto(f, p, capped(req, s.limits.maxUploadBytes))) });
      },
    },
  ];
}
