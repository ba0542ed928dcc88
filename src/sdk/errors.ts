// Typed errors of the SDK: everything hutchd refuses arrives as a HutchApiError with its code and
// HTTP status; a call that ran out of time or was aborted on the client side has its own class.

/** An error answered by hutchd (or a failure to reach it): `code` as in hutch (ENOTFOUND, EINVAL...). */
export class HutchApiError extends Error {
  constructor(readonly code: string, readonly status: number, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'HutchApiError';
  }
}

/** The sandbox (or process, or file) does not exist: code ENOTFOUND, status 404. */
export class NotFoundError extends HutchApiError {
  constructor(message: string) {
    super('ENOTFOUND', 404, message);
    this.name = 'NotFoundError';
  }
}

/** The token was missing or refused: code EAUTH, status 401. */
export class AuthError extends HutchApiError {
  constructor(message: string) {
    super('EAUTH', 401, message);
    this.name = 'AuthError';
  }
}

/** The call did not finish within its timeout (client side; status 0) or the server's (504). */
export class TimeoutError extends HutchApiError {
  constructor(message: string, status = 0) {
    super('ETIMEDOUT', status, message);
    this.name = 'TimeoutError';
  }
}

/** The call was aborted through its AbortSignal: code EABORTED. */
export class AbortError extends HutchApiError {
  constructor(message = 'the call was aborted') {
    super('EABORTED', 0, message);
    this.name = 'AbortError';
  }
}

/** The error class for a code and status from hutchd's JSON error. */
export function apiError(code: string, status: number, message: string): HutchApiError {
  if (code === 'ENOTFOUND' && status === 404) return new NotFoundError(message);
  if (code === 'EAUTH') return new AuthError(message);
  if (code === 'ETIMEDOUT') return new TimeoutError(message, status);
  return new HutchApiError(code, status, message);
}
