// Bearer tokens from a file (one per line, # comments), compared in constant time on their hashes
// (equal-length inputs for timingSafeEqual, and no early exit on the first matching token).
import { createHash, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { HutchError } from '../errors.js';

/** Checks the Authorization header of requests against the tokens of a file. */
export class TokenAuth {
  private constructor(private readonly hashes: Buffer[]) {}

  /** Loads tokens; an unreadable or empty file is an error that names it. */
  static fromFile(file: string): TokenAuth {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      throw new HutchError('EINVAL', `cannot read token file ${file}: ${e instanceof Error ? e.message : String(e)}`, { path: file, cause: e });
    }
    const tokens = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
    if (tokens.length === 0) throw new HutchError('EINVAL', `token file ${file} has no tokens (one per line)`, { path: file });
    for (const t of tokens) {
      if (t.length < 16) throw new HutchError('EINVAL', `token file ${file} has a token shorter than 16 characters`, { path: file });
    }
    return new TokenAuth(tokens.map(sha256));
  }

  /** Throws EAUTH unless the request carries one of the tokens. */
  check(req: IncomingMessage): void {
    const header = req.headers.authorization;
    if (header === undefined) throw new HutchError('EAUTH', 'missing bearer token: send Authorization: Bearer TOKEN');
    const m = /^Bearer (\S+)$/.exec(header);
    if (!m) throw new HutchError('EAUTH', 'malformed Authorization header: use Bearer TOKEN');
    if (!this.accepts(m[1]!)) throw new HutchError('EAUTH', 'the bearer token is not valid');
  }

  /** True when `token` is one of the tokens (the E2B API's X-API-KEY is checked with it). */
  accepts(token: string): boolean {
    const given = sha256(token);
    let ok = false;
    for (const h of this.hashes) ok = timingSafeEqual(h, given) || ok;
    return ok;
  }
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}
