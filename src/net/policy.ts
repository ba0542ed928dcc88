// Egress policies: parsed from the CLI's rule text or the API's JSON, checked, and written out as
// the nftables chain of one sandbox.
import { HutchError } from '../errors.js';
import { cidrText, parseCidr } from './addr.js';
import type { EgressPolicy, EgressRule } from './types.js';

const NAME_RE = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.?$/i;
const MAX_RULES = 256;

/** Checks a DNS name of a rule (`example.com`, `*.example.com`); returns it lower-cased, without a final dot. */
export function checkRuleName(name: string): string {
  if (name.length > 253 || !NAME_RE.test(name) || !name.includes('.')) {
    throw new HutchError('EINVAL', `invalid DNS name "${name.slice(0, 80)}" in a policy rule: want a name such as example.com or *.example.com`);
  }
  return name.toLowerCase().replace(/\.$/, '');
}

function parsePorts(text: string, rule: string): Pick<EgressRule, 'protocol' | 'ports'> {
  const m = /^(?:(tcp|udp)\/)?(\d{1,5})(?:-(\d{1,5}))?$/.exec(text) ?? /^(tcp|udp)$/.exec(text);
  if (!m) throw new HutchError('EINVAL', `invalid ports "${text.slice(0, 40)}" in policy rule "${rule.slice(0, 80)}": want PORT, LOW-HIGH, tcp/PORT, udp/LOW-HIGH, tcp or udp`);
  const out: Pick<EgressRule, 'protocol' | 'ports'> = {};
  if (m[1] === 'tcp' || m[1] === 'udp') out.protocol = m[1];
  if (m[2] !== undefined) {
    const lo = Number(m[2]);
    const hi = m[3] === undefined ? lo : Number(m[3]);
    out.ports = [lo, hi];
  }
  return out;
}

/**
 * Parses a rule as the CLI takes it: `TARGET`, `TARGET:PORTS` or `PORTS`, where TARGET is an IPv4
 * block, an address or a DNS name, and PORTS is `443`, `8000-8100`, `tcp/443`, `udp/53` or `tcp`.
 */
export function parseRule(text: string): EgressRule {
  const t = text.trim();
  if (!t) throw new HutchError('EINVAL', 'empty policy rule');
  const colon = t.lastIndexOf(':');
  const looksLikePorts = (s: string) => /^((tcp|udp)(\/\d.*)?|\d[\d-]*)$/.test(s);
  let target = t;
  let ports = '';
  if (colon >= 0) { target = t.slice(0, colon); ports = t.slice(colon + 1); }
  else if (looksLikePorts(t)) { target = ''; ports = t; }
  const rule: EgressRule = {};
  if (target && target !== '*') {
    if (/^[\d./]+$/.test(target)) rule.cidr = cidrText(parseCidr(target, `block "${target}" in a policy rule`));
    else rule.name = checkRuleName(target);
  }
  if (ports) Object.assign(rule, parsePorts(ports, t));
  return checkRule(rule);
}

/** Validates one rule from JSON (the API's); returns a clean copy. */
export function checkRule(r: unknown): EgressRule {
  if (typeof r !== 'object' || r === null || Array.isArray(r)) throw new HutchError('EINVAL', 'a policy rule must be an object like {"cidr": "10.1.0.0/16", "protocol": "tcp", "ports": [443, 443]}');
  const o = r as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!['cidr', 'name', 'protocol', 'ports'].includes(k)) throw new HutchError('EINVAL', `unknown field "${k.slice(0, 40)}" in a policy rule (want cidr, name, protocol, ports)`);
  const out: EgressRule = {};
  if (o.cidr !== undefined && o.name !== undefined) throw new HutchError('EINVAL', 'a policy rule has a cidr or a name, not both');
  if (o.cidr !== undefined) {
    if (typeof o.cidr !== 'string') throw new HutchError('EINVAL', 'a policy rule\'s cidr must be a string');
    out.cidr = cidrText(parseCidr(o.cidr, 'block in a policy rule'));
  }
  if (o.name !== undefined) {
    if (typeof o.name !== 'string') throw new HutchError('EINVAL', 'a policy rule\'s name must be a string');
    out.name = checkRuleName(o.name);
  }
  if (o.protocol !== undefined) {
    if (o.protocol !== 'tcp' && o.protocol !== 'udp') throw new HutchError('EINVAL', `invalid protocol ${JSON.stringify(o.protocol).slice(0, 40)} in a policy rule: tcp or udp`);
    out.protocol = o.protocol;
  }
  if (o.ports !== undefined) {
    const p = o.ports;
    if (!Array.isArray(p) || p.length !== 2 || !p.every((x) => Number.isInteger(x) && x >= 1 && x <= 65535) || p[0] > p[1]) {
      throw new HutchError('EINVAL', 'a policy rule\'s ports must be [LOW, HIGH], 1-65535, LOW ≤ HIGH');
    }
    out.ports = [p[0], p[1]];
  }
  return out;
}

/** Validates a whole policy from JSON; returns a clean copy. */
export function checkPolicy(p: unknown): EgressPolicy {
  if (typeof p !== 'object' || p === null || Array.isArray(p)) throw new HutchError('EINVAL', 'a policy must be an object like {"default": "deny", "allow": [...], "deny": [...]}');
  const o = p as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!['default', 'allow', 'deny'].includes(k)) throw new HutchError('EINVAL', `unknown field "${k.slice(0, 40)}" in a policy (want default, allow, deny)`);
  const def = o.default ?? 'allow';
  if (def !== 'allow' && def !== 'deny') throw new HutchError('EINVAL', `invalid policy default ${JSON.stringify(def).slice(0, 40)}: allow or deny`);
  const list = (v: unknown, what: string): EgressRule[] => {
    if (v === undefined) return [];
    if (!Array.isArray(v)) throw new HutchError('EINVAL', `a policy's ${what} must be a list of rules`);
    if (v.length > MAX_RULES) throw new HutchError('EINVAL', `too many ${what} rules (${v.length}): at most ${MAX_RULES}`);
    return v.map(checkRule);
  };
  return { default: def, allow: list(o.allow, 'allow'), deny: list(o.deny, 'deny') };
}

/** The DNS names a policy's allow rules name (resolved into the sandbox's set of allowed addresses). */
export function policyNames(p: EgressPolicy): string[] {
  return [...new Set(p.allow.flatMap((r) => (r.name ? [r.name] : [])))];
}

/** One rule's match expression in nftables syntax; `names` is the set of addresses its name resolved to. */
function ruleMatch(r: EgressRule, namesSet: string): string[] {
  const parts: string[] = [];
  if (r.cidr) parts.push(`ip daddr ${r.cidr}`);
  if (r.name) parts.push(`ip daddr @${namesSet}`);
  const port = r.ports ? (r.ports[0] === r.ports[1] ? `${r.ports[0]}` : `${r.ports[0]}-${r.ports[1]}`) : null;
  if (r.protocol && port) return [[...parts, `${r.protocol} dport ${port}`].join(' ')];
  if (r.protocol) return [[...parts, `meta l4proto ${r.protocol}`].join(' ')];
  if (port) return ['tcp', 'udp'].map((proto) => [...parts, `${proto} dport ${port}`].join(' '));
  return [parts.join(' ')];
}

/** Names of a sandbox's nftables objects (its chain, its counter, the set of addresses its allowed names resolved to). */
export function sandboxObjects(id: string): { chain: string; counter: string; names: string; denyNames: string } {
  return { chain: `sb_${id}`, counter: `sb_${id}_dropped`, names: `sb_${id}_names`, denyNames: `sb_${id}_denied` };
}

/** The conntrack mark of flows a name rule admitted under policy generation `g` (hutch's bit, then the generation). */
export function flowMark(g: number): string {
  return `0x${(0x68000000 | (g & 0xffff)).toString(16)}`;
}

/**
 * The statements of a sandbox's egress chain, evaluated for every packet it sends, so that a
 * policy change holds for flows already open too. Deny rules come first; replies (to connections
 * made to the sandbox) pass; then the allow rules (its DNS goes to hutch's service on the gateway, not through here), and the default,
 * which for `allow` still keeps the protected blocks (and the host's own networks) out. A flow a
 * name rule admitted is marked with the policy's generation, so that it outlives the TTL of the
 * addresses its name resolved to, but not a policy change.
 */
export function policyChain(id: string, p: EgressPolicy, generation: number): string[] {
  const o = sandboxObjects(id);
  const lines: string[] = [];
  const drop = `counter name ${o.counter} drop`;
  const mark = flowMark(generation);
  for (const r of p.deny) for (const m of ruleMatch(r, o.denyNames)) lines.push(`${m} ${drop}`);
  lines.push('ct direction reply accept');
  lines.push(`ct mark ${mark} accept`);
  for (const r of p.allow) for (const m of ruleMatch(r, o.names)) lines.push(r.name ? `${m} ct mark set ${mark} accept` : `${m} accept`.trim());
  if (p.default === 'allow') {
    lines.push(`ip daddr @protected ${drop}`);
    lines.push('accept');
  } else {
    lines.push(drop);
  }
  return lines;
}
