// What every verb module exports, and the context it runs in.
import type { Engine, SandboxCalls } from '../engine/index.js';
import type { FlagSpec, ParsedArgs } from './args.js';

/** Global settings from the flags before the verb. */
export interface GlobalOptions { root?: string; executor?: string; debug: boolean }

/** What a verb gets to work with. */
export interface CommandContext {
  globals: GlobalOptions;
  engine(): Promise<Engine>;
  calls(): Promise<SandboxCalls>;
  out(text: string): void;
  err(text: string): void;
  /** Releases what the context opened (agent connections). */
  close(): Promise<void>;
}

/** A verb of the `hutch` command. */
export interface Command {
  usage: string;
  summary: string;
  flags: FlagSpec[];
  /** Options end after this many operands (the rest is the command to run). */
  stopAfter?: number;
  /** The exit code for hutch's own errors (125 for verbs that also return a command's code). */
  errorExitCode?: number;
  run(ctx: CommandContext, args: ParsedArgs): Promise<number>;
}
