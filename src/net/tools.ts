// The two programs the network layer drives: iproute2's `ip` and nftables' `nft`. Nothing else
// in hutch runs them.
import { spawn } from 'node:child_process';
import { HutchError } from '../errors.js';

/** Runs a program with `input` on its stdin; resolves to its stdout, throws EEXEC with its stderr. */
export function runTool(file: string, args: string[], input = '', about: { id?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', (e: NodeJS.ErrnoException) => {
      reject(new HutchError(e.code === 'ENOENT' ? 'EUNSUPPORTED' : 'EEXEC', e.code === 'ENOENT' ? `${file} is not installed (scripts/setup.sh installs it)` : `cannot run ${file}: ${e.message}`, about));
    });
    child.on('close', (code) => {
      if (code === 0) return resolve(Buffer.concat(out).toString('utf8'));
      const text = Buffer.concat(err).toString('utf8').trim().split('\n').filter(Boolean).slice(0, 3).join('; ');
      reject(new HutchError('EEXEC', `${file} ${args.slice(0, 3).join(' ')} failed (exit ${code}): ${text.slice(0, 400)}`, about));
    });
    child.stdin.on('error', () => undefined); // a tool that exits early closes its stdin: its exit status says what happened
    child.stdin.end(input);
  });
}

/** Runs `ip` commands (one per line) in one process; in the netns `netns` when given. */
export function ipBatch(lines: string[], netns?: string, about: { id?: string } = {}): Promise<string> {
  return runTool('ip', [...(netns ? ['-n', netns] : []), '-batch', '-'], lines.join('\n') + '\n', about);
}

/** Applies an nftables script in one transaction (all of it or none). */
export function nftApply(script: string, about: { id?: string } = {}): Promise<string> {
  return runTool('nft', ['-f', '-'], script, about);
}

/** `nft -j ARGS`, parsed. */
export async function nftJson(args: string[]): Promise<unknown> {
  return JSON.parse(await runTool('nft', ['-j', ...args])) as unknown;
}
