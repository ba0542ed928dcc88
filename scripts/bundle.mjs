// Bundles the CLI and the agent into one file each: Node 20 has no compile cache for ESM, and
// loading ~60 small modules costs more than the rest of a `hutch run`. tsc still type-checks
// and emits dist/src for the tests.
import { build } from 'esbuild';

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  external: ['koffi', 'node-pty'],
  sourcemap: false,
  legalComments: 'none',
  logLevel: 'warning',
};

// Splitting keeps lazily imported verbs (and the node builtins they import) out of the first
// chunk: a bundle without it hoists every builtin import and pays for them all at start-up.
await build({
  ...common,
  entryPoints: { hutch: 'src/cli/main.ts', agent: 'src/agent/main.ts' },
  outdir: 'dist/bundle',
  splitting: true,
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunks/[name]-[hash]',
});
