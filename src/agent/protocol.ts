// The agent control protocol, shared by the agent and the host client: message types, limits,
// and a schema check for every message either side receives (see frame.ts for the framing).
//
// Calls: the host sends REQUEST {id, method, params}; the agent answers RESPONSE {id, result} or
// {id, error}, in any order (calls run concurrently). Processes: `exec` answers {pid} before any
// output; stdout/stderr then come as DATA (pid, fd 1|2), each stream ended by an empty DATA, and
// after both ends an EVENT {event: 'exit'} to the connection that started it. Stdin goes the other
// way as DATA (pid, 0); an empty one closes it. Flow control is by credit, per stream: the agent
// sends at most OUTPUT_WINDOW unacknowledged bytes of a stream (it pauses the process's pipe) and
// the host returns CREDIT (pid, fd, n) as its reader consumes; the host sends at most STDIN_WINDOW
// unacknowledged stdin bytes and the agent returns CREDIT (pid, 0, n) once they reached the pipe.
// Watches: `watch` answers {watchId} before any of its EVENTs {event: 'watch', changes}; `unwatch`
// stops it (no event of it follows the answer); a watch that ends by itself sends {event: 'watch-end'}.
// A connection's watches end with it.
// Forwards: `connect` {host, port} must be the only call of its connection; once the agent has
// answered it (and the host sends nothing before that answer), the connection carries the raw bytes
// of a TCP connection to that port on the sandbox's loopback, both ways, like HTTP CONNECT.
// Anything malformed ends the connection: the agent sends EVENT {event: 'error'} first.
import type { ErrorCode } from '../errors.js';
import {
  arr, bool, int, literal, nullable, num, obj, oneOf, optional, record, SchemaError, str, union,
  type Check, type Shape,
} from './check.js';

export * from './frame.js';
export { SchemaError, type Check } from './check.js';

/** Bumped on any incompatible change; `ping` reports it. */
export const PROTOCOL_VERSION = 1;
/** Bytes of one output stream (stdout/stderr) the agent may send ahead of the host's credits. */
export const OUTPUT_WINDOW = 1024 * 1024;
/** Bytes of stdin the host may send ahead of the agent's credits. */
export const STDIN_WINDOW = 1024 * 1024;
/** Most bytes one readFile/writeFile call carries (base64 in a JSON frame must stay under MAX_FRAME_BYTES). */
export const FILE_CHUNK = 512 * 1024;
/** Most entries one `list` call returns; page with offset. */
export const MAX_LIST_ENTRIES = 1000;
/** Most processes one `ps` call returns. */
export const MAX_PS_ENTRIES = 1000;
/** Most directories one watch may hold (like the poller's 10000 entries). */
export const MAX_WATCH_DIRS = 10_000;
/** Most changes in one watch event frame (paths of up to 4096 bytes stay under MAX_FRAME_BYTES). */
export const MAX_WATCH_BATCH = 200;
/** Most watches one connection may hold. */
export const MAX_WATCHES = 256;
/** Highest request id; ids are positive integers unique among a connection's calls in flight. */
export const MAX_REQUEST_ID = 0x7fffffff;

/** All error codes, as checked on the wire. */
export const ERROR_CODES = [
  'ENOTFOUND', 'EEXIST', 'EINVAL', 'ESTATE', 'ELOCKED', 'ETIMEDOUT', 'EPROTO', 'EEXEC', 'ENOEXEC', 'EPERM',
  'EUNSUPPORTED', 'EAUTH', 'ENETWORK', 'EINTEGRITY', 'ENOSPC', 'EBUSY', 'EINTERNAL',
] as const satisfies readonly ErrorCode[];
// Compile-time proof that the list above names every ErrorCode.
const allCodesListed: Exclude<ErrorCode, (typeof ERROR_CODES)[number]> extends never ? true : false = true;
void allCodesListed;

export interface TtySize { cols: number; rows: number }
export interface ExecParams {
  argv: string[]; env: Record<string, string>; cwd: string; uid: number; gid: number;
  tty?: TtySize; stdin: boolean; main?: boolean;
}
export interface PidParams { pid: number }
export interface ExitStatus { exitCode: number | null; signal: string | null }
export interface ResizeParams { pid: number; cols: number; rows: number }
export type SignalTarget = { pid: number } | { pgid: number } | { all: true };
export interface SignalParams { signal: string | number; target: SignalTarget }
export interface ProcessInfo { pid: number; ppid: number; pgid: number; uid: number; state: string; comm: string; argv: string[] }
export interface StatsResult {
  processes: number; uptimeMs: number; systemUptimeMs: number; loadavg: number[];
  memory: { totalBytes: number; availableBytes: number };
  cgroup: { memoryCurrentBytes: number | null; memoryMaxBytes: number | null; pidsCurrent: number | null };
}
export type FileType = 'file' | 'dir' | 'symlink' | 'other';
export interface FileStat { type: FileType; size: number; mode: number; uid: number; gid: number; mtimeMs: number; linkTarget: string | null }
export interface DirEntry { name: string; type: FileType; size: number; mode: number; mtimeMs: number }
export interface ReadFileParams { path: string; offset?: number; length?: number }
export interface ReadFileResult { data: string; size: number; eof: boolean }
export interface WriteFileParams { path: string; data: string; mode?: number; append?: boolean }
export interface ListParams { path: string; offset?: number; limit?: number }
export interface ListResult { entries: DirEntry[]; total: number }
export interface StatParams { path: string; follow?: boolean }
export interface MkdirParams { path: string; parents?: boolean; mode?: number }
export interface RemoveParams { path: string; recursive?: boolean }
export interface SymlinkParams { path: string; target: string }
export interface LinkParams { path: string; existing: string }
/** rename(2): `from` becomes `path` (an existing file there is replaced, an empty dir too). */
export interface RenameParams { path: string; from: string }
/** Moves the staged file `staged` over `path` (through a symlink at `path`), with the owner of the file it replaces and its mode unless `mode` is given. */
export interface ReplaceFileParams { path: string; staged: string; mode?: number }
export interface WatchParams { path: string; recursive: boolean }
/** A started watch: its id (named by its events and unwatch), what it covers. */
export interface WatchResult { watchId: number; dirs: number; entries: number }
export type ChangeKind = 'created' | 'modified' | 'removed';
export interface WatchChange { kind: ChangeKind; path: string }
/** The loopback names a forward may connect to. */
export const LOOPBACK_HOSTS = ['127.0.0.1', '::1', 'localhost'] as const;
export type LoopbackHost = (typeof LOOPBACK_HOSTS)[number];
/** A TCP port on the sandbox's loopback to connect a forward to. */
export interface ConnectParams { host: LoopbackHost; port: number }
export interface PingResult { version: number; pid: number; uptimeMs: number }
export type Empty = Record<string, never>;

/** Every method with its params and result. */
export interface Methods {
  ping: { params: Empty; result: PingResult };
  exec: { params: ExecParams; result: { pid: number } };
  wait: { params: PidParams; result: ExitStatus };
  resize: { params: ResizeParams; result: Empty };
  signal: { params: SignalParams; result: { delivered: number } };
  ps: { params: Empty; result: { processes: ProcessInfo[]; truncated: boolean } };
  stats: { params: Empty; result: StatsResult };
  readFile: { params: ReadFileParams; result: ReadFileResult };
  writeFile: { params: WriteFileParams; result: { written: number } };
  list: { params: ListParams; result: ListResult };
  stat: { params: StatParams; result: FileStat };
  mkdir: { params: MkdirParams; result: Empty };
  remove: { params: RemoveParams; result: Empty };
  symlink: { params: SymlinkParams; result: Empty };
  link: { params: LinkParams; result: Empty };
  rename: { params: RenameParams; result: Empty };
  replaceFile: { params: ReplaceFileParams; result: Empty };
  shutdown: { params: { graceMs: number }; result: { killed: number } };
  /** Before a checkpoint: the agent closes its listener and every connection (this one after the reply), and listens again on SIGUSR2. */
  quiesce: { params: Empty; result: Empty };
  watch: { params: WatchParams; result: WatchResult };
  unwatch: { params: { watchId: number }; result: Empty };
  /** Turns the connection into a byte pipe to a TCP port on the sandbox's loopback (see the header). */
  connect: { params: ConnectParams; result: Empty };
}
export type MethodName = keyof Methods;
export type Params<M extends MethodName> = Methods[M]['params'];
export type Result<M extends MethodName> = Methods[M]['result'];

/** The error carried by a failed response. */
export interface WireError { code: ErrorCode; message: string; id?: string; path?: string }
export interface RequestMessage { id: number; method: string; params: unknown }
export type ResponseMessage = { id: number; result: unknown } | { id: number; error: WireError };
export interface ExitEvent { event: 'exit'; pid: number; exitCode: number | null; signal: string | null }
/** Sent by the agent just before it drops a connection that broke the protocol. */
export interface ErrorEvent { event: 'error'; code: ErrorCode; message: string }
/** Changes seen by a watch (only after its `watch` response). */
export interface WatchEvent { event: 'watch'; watchId: number; changes: WatchChange[] }
/** A watch ended by itself: error null means the watched path is gone; no event of it follows. */
export interface WatchEndEvent { event: 'watch-end'; watchId: number; error: WireError | null }
export type EventMessage = ExitEvent | ErrorEvent | WatchEvent | WatchEndEvent;

const U32 = 0xffffffff;
const pid = int(1, 0x7fffffff);
const ugid = int(0, U32 - 1);
const count = int(0, Number.MAX_SAFE_INTEGER);
const absPath: Check<string> = (v, where) => {
  const p = str({ max: 4096, nonEmpty: true, noNul: true })(v, where);
  if (!p.startsWith('/')) throw new SchemaError(where, `path must be absolute: ${p.slice(0, 80)}`);
  return p;
};
const empty: Check<Empty> = obj<Empty>({});
const signalValue: Check<string | number> = (v, where) =>
  typeof v === 'number' ? int(1, 64)(v, where) : str({ max: 16, nonEmpty: true })(v, where);
const signalTarget: Check<SignalTarget> = union<SignalTarget>(
  (v) => ('pid' in v ? obj<{ pid: number }>({ pid }) : 'pgid' in v ? obj<{ pgid: number }>({ pgid: pid })
    : 'all' in v ? obj<{ all: true }>({ all: literal(true) }) : undefined),
  '{pid} | {pgid} | {all: true}');
const ttySize = obj<TtySize>({ cols: int(1, 4096), rows: int(1, 4096) });
const fileType = oneOf<FileType>(['file', 'dir', 'symlink', 'other']);
const base64Chunk: Check<string> = (v, where) => {
  const s = str({ max: Math.ceil(FILE_CHUNK / 3) * 4 })(v, where);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) throw new SchemaError(where, 'not canonical base64');
  return s;
};
const mode = int(0, 0o7777);
const exitStatus = obj<ExitStatus>({ exitCode: nullable(int(0, 255)), signal: nullable(str({ max: 16 })) });

/** The check for each method's params (the agent runs these on every request). */
export const paramChecks: { [M in MethodName]: Check<Params<M>> } = {
  ping: empty,
  exec: obj<ExecParams>({
    argv: arr(str({ max: 65536, noNul: true }), { max: 4096, nonEmpty: true }),
    env: record(str({ max: 1024, nonEmpty: true, noNul: true }), str({ max: 65536, noNul: true }), 1024),
    cwd: absPath, uid: ugid, gid: ugid, tty: optional(ttySize), stdin: bool, main: optional(bool),
  }),
  wait: obj<PidParams>({ pid }),
  resize: obj<ResizeParams>({ pid, cols: int(1, 4096), rows: int(1, 4096) }),
  signal: obj<SignalParams>({ signal: signalValue, target: signalTarget }),
  ps: empty,
  stats: empty,
  readFile: obj<ReadFileParams>({ path: absPath, offset: optional(count), length: optional(int(0, FILE_CHUNK)) }),
  writeFile: obj<WriteFileParams>({ path: absPath, data: base64Chunk, mode: optional(mode), append: optional(bool) }),
  list: obj<ListParams>({ path: absPath, offset: optional(count), limit: optional(int(1, MAX_LIST_ENTRIES)) }),
  stat: obj<StatParams>({ path: absPath, follow: optional(bool) }),
  mkdir: obj<MkdirParams>({ path: absPath, parents: optional(bool), mode: optional(mode) }),
  remove: obj<RemoveParams>({ path: absPath, recursive: optional(bool) }),
  symlink: obj<SymlinkParams>({ path: absPath, target: str({ max: 4096, nonEmpty: true, noNul: true }) }),
  link: obj<LinkParams>({ path: absPath, existing: absPath }),
  rename: obj<RenameParams>({ path: absPath, from: absPath }),
  replaceFile: obj<ReplaceFileParams>({ path: absPath, staged: absPath, mode: optional(mode) }),
  shutdown: obj<{ graceMs: number }>({ graceMs: int(0, 600_000) }),
  quiesce: empty,
  watch: obj<WatchParams>({ path: absPath, recursive: bool }),
  unwatch: obj<{ watchId: number }>({ watchId: pid }),
  connect: obj<ConnectParams>({ host: oneOf<LoopbackHost>(LOOPBACK_HOSTS), port: int(1, 65535) }),
};

/** A directory entry's name: one path component (the host joins it to paths it then asks about). */
const name: Check<string> = (v, where) => {
  const n = str({ max: 4096, nonEmpty: true, noNul: true })(v, where);
  if (n.includes('/') || n === '.' || n === '..') throw new SchemaError(where, `not a single name: ${JSON.stringify(n.slice(0, 80))}`);
  return n;
};
const fileStatShape: Shape<FileStat> = {
  type: fileType, size: count, mode, uid: ugid, gid: ugid, mtimeMs: num(-1e15, 1e15), linkTarget: nullable(str({ max: 4096 })),
};

/** The check for each method's result (the host runs these on every response). */
export const resultChecks: { [M in MethodName]: Check<Result<M>> } = {
  ping: obj<PingResult>({ version: int(0, 1000), pid, uptimeMs: count }),
  exec: obj<{ pid: number }>({ pid }),
  wait: exitStatus,
  resize: empty,
  signal: obj<{ delivered: number }>({ delivered: count }),
  ps: obj<Result<'ps'>>({
    processes: arr(obj<ProcessInfo>({
      pid, ppid: int(0, 0x7fffffff), pgid: int(0, 0x7fffffff), uid: ugid, state: str({ max: 4 }), comm: str({ max: 64 }),
      argv: arr(str({ max: 4096 }), { max: 256 }),
    }), { max: MAX_PS_ENTRIES }),
    truncated: bool,
  }),
  stats: obj<StatsResult>({
    processes: count, uptimeMs: count, systemUptimeMs: count, loadavg: arr(num(0, 1e9), { max: 3 }),
    memory: obj<StatsResult['memory']>({ totalBytes: count, availableBytes: count }),
    cgroup: obj<StatsResult['cgroup']>({
      memoryCurrentBytes: nullable(count), memoryMaxBytes: nullable(count), pidsCurrent: nullable(count),
    }),
  }),
  readFile: obj<ReadFileResult>({ data: base64Chunk, size: count, eof: bool }),
  writeFile: obj<{ written: number }>({ written: int(0, FILE_CHUNK) }),
  list: obj<ListResult>({
    entries: arr(obj<DirEntry>({ name, type: fileType, size: count, mode, mtimeMs: num(-1e15, 1e15) }), { max: MAX_LIST_ENTRIES }),
    total: count,
  }),
  stat: obj<FileStat>(fileStatShape),
  mkdir: empty,
  remove: empty,
  symlink: empty,
  link: empty,
  rename: empty,
  replaceFile: empty,
  shutdown: obj<{ killed: number }>({ killed: count }),
  quiesce: empty,
  watch: obj<WatchResult>({ watchId: pid, dirs: int(0, MAX_WATCH_DIRS), entries: count }),
  unwatch: empty,
  connect: empty,
};

/** True when `m` names a method of the protocol. */
export function isMethodName(m: string): m is MethodName {
  return Object.prototype.hasOwnProperty.call(paramChecks, m);
}

const requestId = int(1, MAX_REQUEST_ID);

/** Checks the envelope of a request (the agent then checks params with paramChecks[method]). */
export const checkRequest: Check<RequestMessage> = (v, where) => {
  const r = obj<{ id: number; method: string; params: unknown }>({
    id: requestId, method: str({ max: 64, nonEmpty: true }), params: (p) => p,
  })(v, where);
  return { id: r.id, method: r.method, params: r.params ?? {} };
};

/**
 * An error message from the agent, on its way to a user: one line, without control characters (a
 * hostile agent's terminal escapes or extra lines would otherwise reach whoever prints it).
 */
const agentMessage: Check<string> = (v, where) => str({ max: 8192 })(v, where).replace(/[\x00-\x1f\x7f-\x9f]+/g, ' ');

const wireError = obj<WireError>({
  code: oneOf(ERROR_CODES), message: agentMessage, id: optional(str({ max: 256 })), path: optional(str({ max: 4096 })),
});

/** Checks the envelope of a response (the host then checks result with resultChecks[method]). */
export const checkResponse: Check<ResponseMessage> = union<ResponseMessage>(
  (v) => ('error' in v ? obj<{ id: number; error: WireError }>({ id: requestId, error: wireError })
    : 'result' in v ? obj<{ id: number; result: unknown }>({ id: requestId, result: (r) => r }) : undefined),
  '{id, result} | {id, error}');

const watchChange = obj<WatchChange>({ kind: oneOf<ChangeKind>(['created', 'modified', 'removed']), path: absPath });

/** Checks an event from the agent. */
export const checkEvent: Check<EventMessage> = union<EventMessage>(
  (v) => (v.event === 'exit' ? obj<ExitEvent>({ event: literal('exit'), pid, exitCode: nullable(int(0, 255)), signal: nullable(str({ max: 16 })) })
    : v.event === 'error' ? obj<ErrorEvent>({ event: literal('error'), code: oneOf(ERROR_CODES), message: agentMessage })
      : v.event === 'watch' ? obj<WatchEvent>({ event: literal('watch'), watchId: pid, changes: arr(watchChange, { max: MAX_WATCH_BATCH, nonEmpty: true }) })
        : v.event === 'watch-end' ? obj<WatchEndEvent>({ event: literal('watch-end'), watchId: pid, error: nullable(wireError) })
          : undefined),
  '{event: "exit" | "error" | "watch" | "watch-end", ...}');
