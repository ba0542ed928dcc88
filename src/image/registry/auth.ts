// Registry auth: credentials from Docker/containers auth files and the credential helpers they name,
// WWW-Authenticate challenges, and a token cache shared by every request of one client (one token per
// registry and scope, fetched once; identity tokens are traded for it with an OAuth2 POST).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HutchError, errnoCode } from '../../errors.js';
import { checkHelperName, IDENTITY_TOKEN_USER, runCredentialHelper, type HelperAnswer, type HelperOrigin } from './credential-helpers.js';
import { readBody, send, TransientFailure, retryAfterMs, type SendOptions } from './transport.js';

/**
 * Credentials for one registry and where they came from (a file, or a helper named in one): a user
 * and password, or an identity token (an OAuth2 refresh token, traded at the token server).
 */
export interface Credentials { username: string; password: string; identityToken?: string; source: string }

/** A parsed WWW-Authenticate challenge. */
export interface Challenge { scheme: 'bearer' | 'basic'; params: Record<string, string> }

/** Parses `Bearer realm="…",service="…",scope="…"` (or `Basic realm="…"`); undefined for other schemes. */
export function parseChallenge(header: string | string[] | undefined): Challenge | undefined {
  for (const h of Array.isArray(header) ? header : header ? [header] : []) {
    const m = h.trim().match(/^(\w+)\s*(.*)$/s);
    const scheme = m?.[1]?.toLowerCase();
    if (scheme !== 'bearer' && scheme !== 'basic') continue;
    const params: Record<string, string> = {};
    for (const p of m![2]!.matchAll(/([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) {
      params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3]!;
    }
    return { scheme, params };
  }
  return undefined;
}

/** The auth files looked at, in order: the option (alone when given), $REGISTRY_AUTH_FILE, containers', docker's. */
export function authFiles(explicit?: string): string[] {
  if (explicit) return [explicit];
  const files: string[] = [];
  if (process.env.REGISTRY_AUTH_FILE) files.push(process.env.REGISTRY_AUTH_FILE);
  if (process.env.XDG_RUNTIME_DIR) files.push(path.join(process.env.XDG_RUNTIME_DIR, 'containers', 'auth.json'));
  const home = process.env.HOME || os.homedir();
  if (process.env.DOCKER_CONFIG) files.push(path.join(process.env.DOCKER_CONFIG, 'config.json'));
  else if (home) files.push(path.join(home, '.docker', 'config.json'));
  return files;
}

/** An auth file key in the form `host[/path]`: schemes, `/v1/` `/v2/` suffixes and Docker Hub's aliases removed. */
export function normaliseAuthKey(key: string): string {
  let k = key.replace(/^https?:\/\//, '').replace(/\/+$/, '').replace(/\/v[12]$/, '');
  const slash = k.indexOf('/');
  const host = slash < 0 ? k : k.slice(0, slash);
  if (host === 'index.docker.io' || host === 'registry-1.docker.io') k = `docker.io${slash < 0 ? '' : k.slice(slash)}`;
  return k;
}

/** One auth file: its `auths` entries (normalised key → credentials) and the helpers it names. */
interface AuthFile { file: string; entries: Map<string, Credentials>; credHelpers: Map<string, string>; credsStore?: string }

/** Reads one auth file; a missing file is undefined. Malformed JSON, entries or helper names are EINVAL naming it. */
function readAuthFile(file: string): AuthFile | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if (errnoCode(e) === 'ENOENT' || errnoCode(e) === 'ENOTDIR') return undefined;
    throw new HutchError('EAUTH', `cannot read the auth file ${file}: ${(e as Error).message}`, { path: file, cause: e });
  }
  let doc: { auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>; credHelpers?: unknown; credsStore?: unknown };
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new HutchError('EINVAL', `auth file ${file} is not valid JSON: ${(e as Error).message}`, { path: file, cause: e });
  }
  const out: AuthFile = { file, entries: new Map(), credHelpers: new Map() };
  for (const [key, entry] of Object.entries(doc?.auths ?? {})) {
    if (!entry || typeof entry !== 'object') continue;
    let username = entry.username;
    let password = entry.password;
    if (typeof entry.auth === 'string' && entry.auth) {
      const plain = Buffer.from(entry.auth, 'base64').toString('utf8');
      const colon = plain.indexOf(':');
      if (colon < 0) throw new HutchError('EINVAL', `auth file ${file}: the entry for ${key} is not base64 of user:password`, { path: file });
      username = plain.slice(0, colon);
      password = plain.slice(colon + 1);
    }
    const identityToken = typeof entry.identitytoken === 'string' && entry.identitytoken ? entry.identitytoken : undefined;
    if (identityToken) {
      out.entries.set(normaliseAuthKey(key), { username: typeof username === 'string' ? username : '', password: '', identityToken, source: file });
    } else if (typeof username === 'string' && typeof password === 'string' && username) {
      out.entries.set(normaliseAuthKey(key), { username, password, source: file });
    }
  }
  if (doc?.credHelpers !== undefined) {
    if (!doc.credHelpers || typeof doc.credHelpers !== 'object' || Array.isArray(doc.credHelpers)) {
      throw new HutchError('EINVAL', `auth file ${file}: credHelpers is not an object of registry → helper name`, { path: file });
    }
    for (const [key, name] of Object.entries(doc.credHelpers as Record<string, unknown>)) {
      out.credHelpers.set(normaliseAuthKey(key), checkHelperName(name, { via: 'credHelpers', file }));
    }
  }
  // docker writes "" for no default store.
  if (doc?.credsStore !== undefined && doc.credsStore !== '') out.credsStore = checkHelperName(doc.credsStore, { via: 'credsStore', file });
  return out;
}

/** The keys that may hold credentials for `registry`/`repository`, most specific first. */
function wantedKeys(registry: string, repository: string): string[] {
  const wanted = [registry];
  const parts = repository.split('/');
  for (let i = 1; i <= parts.length; i++) wanted.unshift(`${registry}/${parts.slice(0, i).join('/')}`);
  return wanted;
}

/** The `auths` entry for `registry`/`repository` in one file: the longest matching key. */
function entryFor(auth: AuthFile, registry: string, repository: string): Credentials | undefined {
  for (const key of wantedKeys(registry, repository)) {
    const c = auth.entries.get(key);
    if (c) return c;
  }
  return undefined;
}

/** The `auths` credentials for `registry`/`repository` (helpers are not run): the first file with a match wins; within it the longest key. */
export function findCredentials(files: string[], registry: string, repository: string): Credentials | undefined {
  for (const file of files) {
    const auth = readAuthFile(file);
    const c = auth && entryFor(auth, registry, repository);
    if (c) return c;
  }
  return undefined;
}

/** Runs a named helper for a registry (the caller may cache the answer). */
export type AskHelper = (name: string, registry: string, origin: HelperOrigin) => Promise<HelperAnswer | undefined>;

/**
 * The credentials for `registry`/`repository`, as docker looks them up, file by file (the first that
 * yields some wins): the file's `credHelpers` entry for the registry decides alone; else its
 * `credsStore`, then (when the store has none) its `auths` entry.
 */
export async function lookupCredentials(files: string[], registry: string, repository: string, ask: AskHelper = runCredentialHelper): Promise<Credentials | undefined> {
  const fromHelper = async (name: string, origin: HelperOrigin): Promise<Credentials | undefined> => {
    const answer = await ask(name, registry, origin);
    if (!answer) return undefined;
    const source = `docker-credential-${name}, ${origin.via} in ${origin.file}`;
    return answer.username === IDENTITY_TOKEN_USER
      ? { username: '', password: '', identityToken: answer.secret, source }
      : { username: answer.username, password: answer.secret, source };
  };
  for (const file of files) {
    const auth = readAuthFile(file);
    if (!auth) continue;
    const helper = auth.credHelpers.get(registry);
    if (helper) {
      const c = await fromHelper(helper, { via: 'credHelpers', file });
      if (c) return c;
      continue;
    }
    if (auth.credsStore) {
      const c = await fromHelper(auth.credsStore, { via: 'credsStore', file });
      if (c) return c;
    }
    const c = entryFor(auth, registry, repository);
    if (c) return c;
  }
  return undefined;
}

/** How credentials are named in messages (never with their secret). */
function describe(c: Credentials): string {
  if (c.identityToken) return `the identity token${c.username ? ` of ${c.username}` : ''} (from ${c.source})`;
  return `the credentials of ${c.username} (from ${c.source})`;
}

function basicHeader(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
}

interface CachedToken { token: string; expiresAt: number }

/** Auth state of one client: challenges seen per registry, credentials and helper answers, cached tokens per registry and scope. */
export class RegistryAuth {
  private readonly challenges = new Map<string, Challenge>();
  /** Registries whose challenge came over https: their credentials never go to a plain-http realm. */
  private readonly overHttps = new Set<string>();
  private readonly tokens = new Map<string, CachedToken>();
  private readonly pending = new Map<string, Promise<CachedToken>>();
  private readonly credentials = new Map<string, Promise<Credentials | undefined>>();
  /** Credentials once looked up (what a refusal is about). */
  private readonly settled = new Map<string, Credentials | undefined>();
  /** One helper run per helper and registry, however many repositories and downloads ask. */
  private readonly helperAnswers = new Map<string, Promise<HelperAnswer | undefined>>();

  constructor(private readonly files: string[], private readonly sendOptions: (url: URL) => SendOptions) {}

  /** Headers to send before any challenge (from what this registry asked for earlier). */
  async headersFor(registry: string, repository: string): Promise<Record<string, string>> {
    const challenge = this.challenges.get(registry);
    if (!challenge) return {};
    return this.answer(registry, repository, challenge, undefined);
  }

  /**
   * Headers that answer a 401's challenge. `sent` is the Authorization that was refused: a cached token
   * equal to it is dropped, so a stale token is fetched again. `from` is the URL that answered 401.
   * Throws EAUTH when nothing can answer it.
   */
  async answerChallenge(registry: string, repository: string, header: string | string[] | undefined, sent: string | undefined, from?: URL): Promise<Record<string, string>> {
    const challenge = parseChallenge(header);
    if (!challenge) {
      throw new HutchError('EAUTH', `registry ${registry} asks for authentication hutch does not support (${String(header ?? 'no WWW-Authenticate header')})`, { id: registry });
    }
    this.challenges.set(registry, challenge);
    if (from?.protocol === 'https:') this.overHttps.add(registry);
    const key = this.tokenKey(registry, repository);
    const cached = this.tokens.get(key);
    if (cached && sent === `Bearer ${cached.token}`) this.tokens.delete(key);
    return this.answer(registry, repository, challenge, sent);
  }

  /** The EAUTH for a registry that refused a request even with the answer to its challenge. */
  refused(registry: string, repository: string, detail: string): HutchError {
    const c = this.settled.get(`${registry}/${repository}`);
    const message = c
      ? `registry ${registry} refused ${describe(c)} for ${repository}${detail}`
      : `registry ${registry} denied anonymous access to ${repository}${detail} (it may not exist, or need credentials)`;
    return new HutchError('EAUTH', message, { id: registry });
  }

  /** The credentials for a repository, looked up once per client (helpers run at most once per registry). */
  private credentialsFor(registry: string, repository: string): Promise<Credentials | undefined> {
    const key = `${registry}/${repository}`;
    let found = this.credentials.get(key);
    if (!found) {
      found = lookupCredentials(this.files, registry, repository, (name, reg, origin) => {
        const helperKey = `${name}\0${reg}`;
        let answer = this.helperAnswers.get(helperKey);
        if (!answer) {
          answer = runCredentialHelper(name, reg, origin);
          this.helperAnswers.set(helperKey, answer);
        }
        return answer;
      });
      // Failures reach the callers through `found`; this side branch only records successes.
      found.then((c) => this.settled.set(key, c), () => undefined);
      this.credentials.set(key, found);
    }
    return found;
  }

  private tokenKey(registry: string, repository: string): string {
    return `${registry} repository:${repository}:pull`;
  }

  private async answer(registry: string, repository: string, challenge: Challenge, sent: string | undefined): Promise<Record<string, string>> {
    const creds = await this.credentialsFor(registry, repository);
    if (challenge.scheme === 'basic') {
      if (!creds) throw this.needCredentials(registry, repository);
      if (creds.identityToken) throw new HutchError('EAUTH', `registry ${registry} asks for basic authentication, which ${describe(creds)} cannot answer`, { id: registry });
      const header = basicHeader(creds);
      if (sent === header) throw new HutchError('EAUTH', `registry ${registry} refused ${describe(creds)}`, { id: registry });
      return { Authorization: header };
    }
    const key = this.tokenKey(registry, repository);
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt > Date.now()) return { Authorization: `Bearer ${cached.token}` };
    let pending = this.pending.get(key);
    if (!pending) {
      // One token request per registry and scope, however many downloads wait for it.
      pending = this.fetchToken(registry, repository, challenge, creds).finally(() => this.pending.delete(key));
      this.pending.set(key, pending);
    }
    const token = await pending;
    this.tokens.set(key, token);
    return { Authorization: `Bearer ${token.token}` };
  }

  private needCredentials(registry: string, repository: string): HutchError {
    return new HutchError('EAUTH', `registry ${registry} requires credentials for ${repository} and none were found (looked in ${this.files.join(', ') || 'no auth file'})`, { id: registry });
  }

  /**
   * A token from the challenge's realm: GET with basic credentials (or none), or, for an identity
   * token, the OAuth2 POST docker's distribution client makes (grant_type=refresh_token).
   */
  private async fetchToken(registry: string, repository: string, challenge: Challenge, creds: Credentials | undefined): Promise<CachedToken> {
    const realm = challenge.params.realm;
    let url: URL;
    try {
      url = new URL(realm ?? '');
    } catch {
      throw new HutchError('EPROTO', `registry ${registry} sent a bearer challenge without a usable realm (${realm ?? 'none'})`, { id: registry });
    }
    // A registry reached over https that names a plain-http realm would have the credentials sent in clear.
    if (creds && url.protocol === 'http:' && this.overHttps.has(registry)) {
      throw new HutchError('EAUTH', `registry ${registry} names a plain-http token server (${url.origin}); refusing to send ${describe(creds)} there in clear text`, { id: registry });
    }
    const scope = `repository:${repository}:pull`;
    const opts = this.sendOptions(url);
    if (creds?.identityToken) {
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, client_id: 'hutch', scope });
      if (challenge.params.service) form.set('service', challenge.params.service);
      opts.method = 'POST';
      opts.body = Buffer.from(form.toString());
      opts.headers = { ...opts.headers, 'Content-Type': 'application/x-www-form-urlencoded' };
    } else {
      if (challenge.params.service) url.searchParams.set('service', challenge.params.service);
      url.searchParams.set('scope', scope);
      if (creds) opts.headers = { ...opts.headers, Authorization: basicHeader(creds) };
    }
    const started = Date.now();
    const ex = await send(url, opts);
    const body = await readBody(ex, 1024 * 1024, `token from ${url.host}`);
    // An OAuth2 server says 400 (invalid_grant) for a refresh token it does not take.
    if (ex.status === 401 || ex.status === 403 || (creds?.identityToken && ex.status === 400)) {
      if (creds) throw new HutchError('EAUTH', `registry ${registry} refused ${describe(creds)}`, { id: registry });
      throw this.needCredentials(registry, repository);
    }
    if (ex.status === 429 || ex.status >= 500) throw new TransientFailure(`token server ${url.host} answered ${ex.status}`, retryAfterMs(ex.headers['retry-after'], 30_000));
    if (ex.status !== 200) throw new HutchError('EAUTH', `token server ${url.host} for registry ${registry} answered ${ex.status}`, { id: registry });
    let doc: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      doc = JSON.parse(body.toString('utf8'));
    } catch {
      throw new HutchError('EPROTO', `token server ${url.host} for registry ${registry} sent something that is not JSON`, { id: registry });
    }
    const token = typeof doc.token === 'string' && doc.token ? doc.token : typeof doc.access_token === 'string' ? doc.access_token : '';
    if (!token) throw new HutchError('EPROTO', `token server ${url.host} for registry ${registry} sent no token`, { id: registry });
    // The spec's default lifetime is 60 s; renew a little early so a request does not carry a dying token.
    const lifetime = typeof doc.expires_in === 'number' && doc.expires_in > 0 ? doc.expires_in : 60;
    return { token, expiresAt: started + lifetime * 900 };
  }
}
