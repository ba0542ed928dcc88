// A user as `-u` and an image's `User` name it (NAME, UID, NAME:GROUP, UID:GID, NAME:GID, UID:GROUP),
// turned into ids by the rootfs's own /etc/passwd and /etc/group, as runc and docker do.
import { HutchError } from '../errors.js';

/** The ids (and home dir, when passwd names one) that a user spec stands for. */
export interface ResolvedUser { uid: number; gid: number; home?: string }

/** Reads a file of the rootfs (`etc/passwd`, `etc/group`); '' when it has none. */
export type RootfsFileReader = (rel: 'etc/passwd' | 'etc/group') => string;

/** The most of /etc/passwd or /etc/group that is read (a hostile rootfs's could be huge). */
export const MAX_USER_FILE_BYTES = 1024 * 1024;

/** The largest id inside a sandbox: its user namespace maps 65536 ids. */
const MAX_ID = 65535;
const NUMBER = /^\d+$/;
/** What a user or group name may be: POSIX portable names, plus what distributions allow ($ at the end). */
const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$/;

/** Checks the form of a user spec; true when it is all numbers (no lookup needed for its ids). */
export function checkUserSpec(spec: string): boolean {
  const [u, g, extra] = spec.split(':');
  const ok = (part: string | undefined) => part !== undefined && part.length <= 256 && (NUMBER.test(part) || NAME.test(part));
  if (extra !== undefined || !ok(u) || (g !== undefined && !ok(g))) {
    throw new HutchError('EINVAL', `invalid user "${spec.slice(0, 80)}": use NAME or UID, optionally with :GROUP or :GID`);
  }
  return NUMBER.test(u!) && (g === undefined || NUMBER.test(g));
}

/** The fields of each line of a passwd or group file. */
function entries(text: string): string[][] {
  return text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).map((l) => l.split(':'));
}

function checkId(spec: string, id: number): number {
  if (id > MAX_ID) throw new HutchError('EINVAL', `user ${spec.slice(0, 80)}: id ${id} is outside the sandbox's id range 0-${MAX_ID}`);
  return id;
}

/**
 * The ids of `spec`, names looked up in the rootfs's files. A uid alone takes its passwd entry's
 * group, or the same number when passwd has no entry for it (hutch's rule for bare numbers). An
 * unknown name is EINVAL naming it and the file it was looked for in.
 */
export function lookupUser(spec: string, read: RootfsFileReader): ResolvedUser {
  checkUserSpec(spec);
  const [u, g] = spec.split(':') as [string, string | undefined];
  const passwd = entries(NUMBER.test(u) && g !== undefined ? '' : read('etc/passwd'));
  const entry = NUMBER.test(u) ? passwd.find((f) => f[2] === u) : passwd.find((f) => f[0] === u);
  if (!NUMBER.test(u) && !entry) throw new HutchError('EINVAL', `unknown user "${u}": no such user in the sandbox's /etc/passwd`);
  if (entry && (!NUMBER.test(entry[2] ?? '') || !NUMBER.test(entry[3] ?? ''))) {
    throw new HutchError('EINVAL', `user "${u}": its /etc/passwd entry has no valid uid and gid`);
  }
  const uid = checkId(spec, Number(NUMBER.test(u) ? u : entry![2]));
  let gid = entry ? Number(entry[3]) : uid;
  if (g !== undefined && NUMBER.test(g)) gid = Number(g);
  else if (g !== undefined) {
    const group = entries(read('etc/group')).find((f) => f[0] === g);
    if (!group) throw new HutchError('EINVAL', `unknown group "${g}": no such group in the sandbox's /etc/group`);
    if (!NUMBER.test(group[2] ?? '')) throw new HutchError('EINVAL', `group "${g}": its /etc/group entry has no valid gid`);
    gid = Number(group[2]);
  }
  checkId(spec, gid);
  const home = entry?.[5];
  return { uid, gid, ...(home && home.startsWith('/') ? { home } : {}) };
}
