// envd's filesystem service (filesystem.Filesystem): Stat, ListDir, MakeDir, Move, Remove as unary
// calls and WatchDir as a stream, through the sandbox's agent. Relative paths resolve against the
// home of the call's user; entries carry owner and group by name.
import { posix } from 'node:path';
import type { AgentClient, FileStat, WatchChange, WatchHandle } from '../../agent/index.js';
import { isHutchError } from '../../errors.js';
import type { EnvdCall, EnvdHandler } from './types.js';
import { accountFor, accountsOf, resolvePath, type Accounts } from './accounts.js';
import { ConnectFault, ConnectStream, invalid, readStreamRequest, readUnary, sendUnary, sendUnaryError } from './connect.js';

/** Most entries one ListDir answers. */
const MAX_LIST = 100_000;
/** Deepest ListDir. */
const MAX_DEPTH = 64;

const TYPE_NAME: Record<string, string> = { file: 'FILE_TYPE_FILE', dir: 'FILE_TYPE_DIRECTORY', symlink: 'FILE_TYPE_SYMLINK' };

/** Permission text as Go prints a file mode ("drwxr-xr-x", "-rw-r--r--", "Lrwxrwxrwx"). */
function permissions(type: string, mode: number): string {
  const head = type === 'dir' ? 'd' : type === 'symlink' ? 'L' : type === 'file' ? '-' : '?';
  let out = head;
  for (let i = 8; i >= 0; i--) out += mode & (1 << i) ? 'rwx'[(8 - i) % 3] : '-';
  return out;
}

/** The EntryInfo message of a path and its (lstat) stat. */
export function entryInfo(p: string, st: FileStat, accounts: Accounts): Record<string, unknown> {
  return {
    name: posix.basename(p) || '/', type: TYPE_NAME[st.type] ?? 'FILE_TYPE_UNSPECIFIED', path: p, size: String(st.size),
    mode: st.mode & 0o777, permissions: permissions(st.type, st.mode), owner: accounts.userName.get(st.uid) ?? String(st.uid),
    group: accounts.groupName.get(st.gid) ?? String(st.gid), modifiedTime: new Date(st.mtimeMs).toISOString(),
    ...(st.type === 'symlink' && st.linkTarget !== null ? { symlinkTarget: st.linkTarget } : {}),
  };
}

/** What every filesystem call starts from: the agent, the accounts, the user's home. */
async function contextOf(call: EnvdCall): Promise<{ files: AgentClient; accounts: Accounts; home: string }> {
  const files = await call.s.calls.files(call.sandboxId);
  const accounts = await accountsOf(files);
  return { files, accounts, home: accountFor(accounts, call.user).home };
}

/** The stat of a path, not_found when there is none. */
async function mustStat(files: AgentClient, p: string, follow = false): Promise<FileStat> {
  try {
    return await files.stat(p, { follow });
  } catch (e) {
    if (isHutchError(e, 'ENOTFOUND')) throw new ConnectFault('not_found', `path ${p} does not exist`, { path: p });
    throw e;
  }
}

/** Lists `dir` to `depth` levels (1: its entries only). */
async function listTree(files: AgentClient, accounts: Accounts, dir: string, depth: number): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  let level = [dir];
  for (let d = 0; d < depth && level.length > 0; d++) {
    const next: string[] = [];
    for (const parent of level) {
      const entries = await files.list(parent, { maxEntries: MAX_LIST }).catch((e: unknown) => {
        if (parent !== dir && isHutchError(e, 'ENOTFOUND')) return []; // removed meanwhile
        throw e;
      });
      const stats = await Promise.all(entries.map(async (e) => {
        const p = posix.join(parent, e.name);
        return { p, st: await files.stat(p).catch(() => null) };
      }));
      for (const { p, st } of stats) {
        if (!st) continue;
        out.push(entryInfo(p, st, accounts));
        if (out.length > MAX_LIST) throw new ConnectFault('resource_exhausted', `${dir} has more than ${MAX_LIST} entries to list`);
        if (st.type === 'dir') next.push(p);
      }
    }
    level = next;
  }
  return out;
}

/** A unary handler. */
function unary(fn: (call: EnvdCall, m: Record<string, unknown>) => Promise<object>): EnvdHandler {
  return async (call) => {
    try {
      sendUnary(call.res, await fn(call, await readUnary(call.req, call.s.limits.maxJsonBytes)));
    } catch (e) {
      sendUnaryError(call.res, e);
    }
  };
}

const EVENT_TYPE: Record<WatchChange['kind'], string> = { created: 'EVENT_TYPE_CREATE', modified: 'EVENT_TYPE_WRITE', removed: 'EVENT_TYPE_REMOVE' };

/** Streams the changes under a directory (recursive on request) as FilesystemEvents. */
async function watchDir(call: EnvdCall): Promise<void> {
  const st = new ConnectStream(call.req, call.res, { keepalive: {} });
  let handle: WatchHandle | undefined;
  st.gone.signal.addEventListener('abort', () => void handle?.close().catch(() => undefined));
  try {
    const m = await readStreamRequest(call.req, call.s.limits.maxJsonBytes);
    const { files, home } = await contextOf(call);
    const root = resolvePath(m['path'], home);
    if ((await mustStat(files, root, true)).type !== 'dir') throw invalid(`path ${root} is not a directory`);
    const prefix = root === '/' ? '/' : `${root}/`;
    handle = await files.watch({ path: root, recursive: m['recursive'] === true }, {
      change: (changes) => {
        for (const c of changes) {
          if (!c.path.startsWith(prefix)) continue; // the root itself or outside it (untrusted)
          st.send({ filesystem: { name: c.path.slice(prefix.length), type: EVENT_TYPE[c.kind] } });
        }
      },
      end: (error) => st.end(error ?? undefined),
    });
    if (st.gone.signal.aborted) return void handle.close().catch(() => undefined);
    st.send({ start: {} });
  } catch (e) {
    st.end(e);
  }
}

/** The filesystem service's handlers, by path. */
export const filesystemHandlers: Record<string, EnvdHandler> = {
  '/filesystem.Filesystem/Stat': unary(async (call, m) => {
    const { files, accounts, home } = await contextOf(call);
    const p = resolvePath(m['path'], home);
    return { entry: entryInfo(p, await mustStat(files, p), accounts) };
  }),
  '/filesystem.Filesystem/ListDir': unary(async (call, m) => {
    const depth = m['depth'] === undefined || m['depth'] === 0 ? 1 : m['depth'];
    if (!Number.isInteger(depth) || (depth as number) < 1 || (depth as number) > MAX_DEPTH) throw invalid(`depth must be an integer from 1 to ${MAX_DEPTH}`);
    const { files, accounts, home } = await contextOf(call);
    const p = resolvePath(m['path'], home);
    if ((await mustStat(files, p, true)).type !== 'dir') throw invalid(`path ${p} is not a directory`);
    return { entries: await listTree(files, accounts, p, depth as number) };
  }),
  '/filesystem.Filesystem/MakeDir': unary(async (call, m) => {
    const { files, accounts, home } = await contextOf(call);
    const p = resolvePath(m['path'], home);
    const old = await files.stat(p, { follow: true }).catch(() => null);
    if (old) throw new ConnectFault(old.type === 'dir' ? 'already_exists' : 'invalid_argument', `path ${p} already exists${old.type === 'dir' ? '' : ' and is not a directory'}`, { path: p });
    await files.mkdir(p, { parents: true });
    return { entry: entryInfo(p, await mustStat(files, p), accounts) };
  }),
  '/filesystem.Filesystem/Move': unary(async (call, m) => {
    const { files, accounts, home } = await contextOf(call);
    const from = resolvePath(m['source'], home, 'source');
    const to = resolvePath(m['destination'], home, 'destination');
    await mustStat(files, from);
    const parent = await files.stat(posix.dirname(to), { follow: true }).catch(() => null);
    if (parent?.type !== 'dir') throw new ConnectFault('not_found', `directory ${posix.dirname(to)} does not exist`, { path: to });
    await files.rename(from, to);
    return { entry: entryInfo(to, await mustStat(files, to), accounts) };
  }),
  '/filesystem.Filesystem/Remove': unary(async (call, m) => {
    const { files, home } = await contextOf(call);
    const p = resolvePath(m['path'], home);
    await mustStat(files, p);
    await files.remove(p, { recursive: true });
    return {};
  }),
  '/filesystem.Filesystem/WatchDir': watchDir,
};
