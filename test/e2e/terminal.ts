// A pseudo-terminal for the interactive e2e cases: drives a client (`podman run -it`) the way a
// person at a terminal would, through node-pty.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const pty = require('node-pty') as typeof import('node-pty');

/** A program running on a pty of 80x24, with everything it printed so far. */
export class Terminal {
  readonly term: import('node-pty').IPty;
  output = '';
  readonly exit: Promise<number>;
  constructor(file: string, args: string[], env: NodeJS.ProcessEnv) {
    this.term = pty.spawn(file, args, { cols: 80, rows: 24, env: { ...env, TERM: 'xterm' } as Record<string, string> });
    this.term.onData((d) => { this.output += d; });
    this.exit = new Promise((res) => this.term.onExit((e) => res(e.exitCode)));
  }
  /** Waits until the output after offset `from` matches `re`. */
  async waitFor(re: RegExp, from = 0, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!re.test(this.output.slice(from))) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${re}; got: ${JSON.stringify(this.output.slice(-400))}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  /** Types `text`; returns the output offset before it, for a following waitFor. */
  type(text: string): number {
    const mark = this.output.length;
    this.term.write(text);
    return mark;
  }
  /** Kills the program if it is still running (cleanup after a failed case) and waits for it. */
  async close(): Promise<void> {
    try { process.kill(this.term.pid, 'SIGKILL'); } catch { return; /* already gone */ }
    await Promise.race([this.exit, new Promise((r) => setTimeout(r, 5_000))]);
  }
}
