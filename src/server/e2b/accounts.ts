// The users and groups of a sandbox as E2B's envd uses them: a call's user (by name) gives its home,
// against which relative paths resolve, and entries show their owner and group by name.
import { posix } from 'node:path';
import type { AgentClient } from '../../agent/index.js';
import { invalid } from './connect.js';

/** One passwd entry. */
export interface Account { name: string; uid: number; gid: number; home: string }

/** The accounts of a sandbox, read from its /etc/passwd and /etc/group. */
export interface Accounts { byName: Map<string, Account>; userName: Map<number, string>; groupName: Map<number, string> }

/** Reads a small text file of the sandbox, or '' when it cannot be read. */
async function small(files: AgentClient, p: string): Promise<string> {
  return (await files.readFile(p, { maxBytes: 4 * 1024 * 1024 }).catch(() => Buffer.alloc(0))).toString('utf8');
}

/** The sandbox's accounts, as its files say now. */
export async function accountsOf(files: AgentClient): Promise<Accounts> {
  const [passwd, group] = await Promise.all([small(files, '/etc/passwd'), small(files, '/etc/group')]);
  const out: Accounts = { byName: new Map(), userName: new Map(), groupName: new Map() };
  for (const line of passwd.split('\n')) {
    const f = line.split(':');
    if (f.length < 7 || !/^\d+$/.test(f[2]!) || !/^\d+$/.test(f[3]!)) continue;
    const a = { name: f[0]!, uid: Number(f[2]), gid: Number(f[3]), home: f[5] || '/' };
    if (!out.byName.has(a.name)) out.byName.set(a.name, a);
    if (!out.userName.has(a.uid)) out.userName.set(a.uid, a.name);
  }
  for (const line of group.split('\n')) {
    const f = line.split(':');
    if (f.length < 3 || !/^\d+$/.test(f[2]!)) continue;
    if (!out.groupName.has(Number(f[2]))) out.groupName.set(Number(f[2]), f[0]!);
  }
  return out;
}

/** The account a call runs as: the named user (invalid_argument if unknown), else root. */
export function accountFor(accounts: Accounts, user: string | undefined): Account {
  if (user === undefined || user === '') return accounts.byName.get('root') ?? { name: 'root', uid: 0, gid: 0, home: '/root' };
  const a = accounts.byName.get(user);
  if (!a) throw invalid(`unknown user ${JSON.stringify(user.slice(0, 64))}: no such user in the sandbox's /etc/passwd`);
  return a;
}

/** An absolute path: `p` itself, or relative to `home`; invalid_argument when empty. */
export function resolvePath(p: unknown, home: string, field = 'path'): string {
  if (typeof p !== 'string' || p === '') throw invalid(`${field} must be a non-empty string`);
  if (p.includes('\0')) throw invalid(`${field} must not contain NUL`);
  const abs = p.startsWith('/') ? posix.normalize(p) : posix.join(home, p);
  return abs.length > 1 && abs.endsWith('/') ? abs.slice(0, -1) : abs;
}
