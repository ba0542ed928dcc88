// What each OCI verb module provides, and the global flags it runs with.
import type { OciRuntime } from '../../engine/oci/index.js';
import type { FlagSpec, ParsedArgs } from '../args.js';

/** runc's global flags (and hutch's --executor and --platform). */
export interface OciGlobals {
  root: string;
  log?: string;
  logFormat: 'text' | 'json';
  debug: boolean;
  systemdCgroup: boolean;
  rootless?: string;
  criu?: string;
  executor?: string;
  platform?: string;
}

/** What a verb runs with: the runtime, the globals, its parsed flags and its words as given (verb first). */
export interface OciVerbContext { runtime: OciRuntime; globals: OciGlobals; args: ParsedArgs; raw: string[] }

/** One verb of runc's contract. */
export interface OciVerb {
  usage: string;
  summary: string;
  flags: FlagSpec[];
  /** How many operands it takes: [min, max]. */
  operands?: [number, number];
  /** Options end after this many operands (exec ID CMD..., ps ID PS-ARGS..., kill ID SIGNAL). */
  stopAfter?: number;
  /** Flags are not checked (they are the executor's): operands are the words that are not flags. */
  lenient?: boolean;
  run(ctx: OciVerbContext): Promise<number>;
}
