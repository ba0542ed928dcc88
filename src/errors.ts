/** Error codes that every layer uses; the CLI maps them to exit codes and the API to HTTP status. */
export type ErrorCode =
  | 'ENOTFOUND'      // unknown sandbox id / name, missing file
  | 'EEXIST'         // duplicate id or name
  | 'EINVAL'         // bad input: names, limits, flags, specs
  | 'ESTATE'         // operation not allowed in the current state
  | 'ELOCKED'        // could not take a lock in time
  | 'ETIMEDOUT'      // a call to the agent or executor timed out
  | 'EPROTO'         // the agent sent something that is not the protocol
  | 'EEXEC'          // an executor (runc, crun) or system tool failed
  | 'ENOEXEC'        // the command does not exist inside the sandbox
  | 'EPERM'          // not permitted (path escape, privileges)
  | 'EUNSUPPORTED'   // not available on this machine or platform
  | 'EAUTH'          // credentials missing or refused (a registry, the hutchd API)
  | 'ENETWORK'       // a remote (a registry) could not be reached or kept failing
  | 'EINTEGRITY'     // content does not match its digest or size
  | 'ENOSPC'         // out of disk space: a sandbox's disk limit, or the host's state root full
  | 'EBUSY'          // hutchd is at a limit of its own (connections, buffered output): try again later
  | 'EINTERNAL';

/** A typed error carrying the id or path it is about; `message` is one line meant for the user. */
export class HutchError extends Error {
  readonly code: ErrorCode;
  readonly id?: string;
  readonly path?: string;
  constructor(code: ErrorCode, message: string, about: { id?: string; path?: string; cause?: unknown } = {}) {
    super(message, about.cause === undefined ? undefined : { cause: about.cause });
    this.name = 'HutchError';
    this.code = code;
    if (about.id !== undefined) this.id = about.id;
    if (about.path !== undefined) this.path = about.path;
  }
}

/**
 * True when `e` is a HutchError, optionally with the given code. By name and code rather than
 * instanceof: the CLI's verbs are separate bundles, each with its own copy of this class.
 */
export function isHutchError(e: unknown, code?: ErrorCode): e is HutchError {
  return e instanceof Error && e.name === 'HutchError' && typeof (e as { code?: unknown }).code === 'string'
    && (code === undefined || (e as HutchError).code === code);
}

/** The errno-style code of a Node system error (ENOENT, EEXIST...), or undefined. */
export function errnoCode(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e && typeof (e as { code: unknown }).code === 'string'
    ? (e as { code: string }).code
    : undefined;
}
