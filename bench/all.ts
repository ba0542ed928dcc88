// Runs every benchmark, one after the other, each in its own process (so that one's leftovers or heap
// never colour the next). `--quick` runs small counts, for a smoke test of the benchmarks themselves.
// Other options (--inherit-node-env, --state-parent DIR) go on to every benchmark.
// Usage: node dist/bench/all.js [--quick] [--inherit-node-env] [--state-parent DIR]
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const quick = process.argv.includes('--quick');
const passOn = process.argv.slice(2).filter((a) => a !== '--quick');

/** Each benchmark with the options of a quick run. */
const BENCHMARKS: { file: string; quickArgs: string[] }[] = [
  { file: 'oneshot.js', quickArgs: ['--n', '5', '--warmup', '1'] },
  { file: 'exec.js', quickArgs: ['--n-api', '20', '--n-cli', '5'] },
  { file: 'create.js', quickArgs: ['--n', '3'] },
  { file: 'memory.js', quickArgs: ['--n', '5', '--settle', '1'] },
  { file: 'disk.js', quickArgs: ['--n', '3', '--n-loop', '1'] },
  { file: 'network.js', quickArgs: ['--quick'] },
  { file: 'e2b.js', quickArgs: ['--quick'] },
  // Analysis: where the time of a CLI call and of runc goes.
  { file: 'phases.js', quickArgs: ['--n', '3'] },
  { file: 'spec-cost.js', quickArgs: ['--n', '3'] },
];

/** Runs one benchmark with our stdio; resolves to its exit code. */
function runOne(file: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(here, file), ...args], { stdio: 'inherit' });
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

let interrupted = false;
// Ctrl-C reaches the running benchmark too (same process group): it cleans up and exits; we stop after it.
process.on('SIGINT', () => { interrupted = true; });
process.on('SIGTERM', () => { interrupted = true; });

let failed = 0;
for (const b of BENCHMARKS) {
  if (interrupted) break;
  const code = await runOne(b.file, [...(quick ? b.quickArgs : []), ...passOn]);
  if (code !== 0) {
    failed++;
    console.error(`bench/all: ${b.file} exited ${code}`);
  }
  console.log('');
}
process.exitCode = interrupted ? 130 : failed ? 1 : 0;
