// A small command-line parser: flags per verb, `--` ends options, optional stop at the first operand.
import { HutchError } from '../errors.js';

/** One flag of a verb. */
export interface FlagSpec {
  name: string;
  short?: string;
  /** bool takes no value; string takes one; list may repeat. */
  kind: 'bool' | 'string' | 'list';
  help: string;
  value?: string;
}

/** A parsed command line. */
export interface ParsedArgs {
  flags: Record<string, string | boolean | string[] | undefined>;
  operands: string[];
  /** What came after `--` (or after the first operand when the verb stops there). */
  rest: string[];
}

/** Parses `argv` against `specs`; `stopAfter` operands end option parsing (run ROOTFS CMD...). */
export function parseArgs(verb: string, argv: string[], specs: FlagSpec[], stopAfter = Infinity): ParsedArgs {
  const flags: ParsedArgs['flags'] = {};
  const operands: string[] = [];
  const byName = new Map(specs.map((s) => [s.name, s]));
  const byShort = new Map(specs.filter((s) => s.short).map((s) => [s.short!, s]));
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') return { flags, operands, rest: argv.slice(i + 1) };
    if (operands.length >= stopAfter) return { flags, operands, rest: argv.slice(i) };
    if (arg.startsWith('--') && arg.length > 2) {
      const eq = arg.indexOf('=');
      const name = arg.slice(2, eq === -1 ? undefined : eq);
      const spec = byName.get(name);
      if (!spec) throw new HutchError('EINVAL', `${verb}: unknown flag --${name} (see hutch ${verb} --help)`);
      const inline = eq === -1 ? undefined : arg.slice(eq + 1);
      i = take(verb, spec, inline, argv, i, flags);
    } else if (arg.startsWith('-') && arg.length > 1 && !/^-\d/.test(arg)) {
      // -it = -i -t; the last letter of a cluster may take a value (-uroot or -u root).
      for (let j = 1; j < arg.length; j++) {
        const spec = byShort.get(arg[j]!);
        if (!spec) throw new HutchError('EINVAL', `${verb}: unknown flag -${arg[j]} (see hutch ${verb} --help)`);
        if (spec.kind === 'bool') { flags[spec.name] = true; continue; }
        const inline = j + 1 < arg.length ? arg.slice(j + 1) : undefined;
        i = take(verb, spec, inline, argv, i, flags);
        break;
      }
    } else {
      operands.push(arg);
    }
  }
  return { flags, operands, rest: [] };
}

function take(verb: string, spec: FlagSpec, inline: string | undefined, argv: string[], i: number, flags: ParsedArgs['flags']): number {
  if (spec.kind === 'bool') {
    if (inline !== undefined && inline !== 'true' && inline !== 'false') throw new HutchError('EINVAL', `${verb}: --${spec.name} takes no value`);
    flags[spec.name] = inline !== 'false';
    return i;
  }
  let value = inline;
  if (value === undefined) {
    if (i + 1 >= argv.length) throw new HutchError('EINVAL', `${verb}: --${spec.name} needs a value`);
    value = argv[++i]!;
  }
  if (spec.kind === 'list') flags[spec.name] = [...((flags[spec.name] as string[] | undefined) ?? []), value];
  else flags[spec.name] = value;
  return i;
}

/** The help text of a verb. */
export function helpText(usage: string, summary: string, specs: FlagSpec[]): string {
  const lines = [`Usage: ${usage}`, '', summary, ''];
  if (specs.length) lines.push('Options:');
  for (const s of specs) {
    const left = `${s.short ? `-${s.short}, ` : '    '}--${s.name}${s.kind === 'bool' ? '' : ` ${s.value ?? 'VALUE'}`}`;
    lines.push(`  ${left.padEnd(28)} ${s.help}`);
  }
  lines.push(`  ${'-h, --help'.padEnd(28)} show this help`);
  return lines.join('\n') + '\n';
}

export const str = (f: ParsedArgs['flags'], n: string): string | undefined => f[n] as string | undefined;
export const bool = (f: ParsedArgs['flags'], n: string): boolean => f[n] === true;
export const list = (f: ParsedArgs['flags'], n: string): string[] => (f[n] as string[] | undefined) ?? [];
