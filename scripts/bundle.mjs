// Bundles the CLI and the agent into one CommonJS file each. Node 20 has no compile cache, its
// ESM loader costs about a millisecond per module, and a hutch call that loads ~60 small modules
// pays more for loading than for its work. esbuild wraps every module in a lazy initialiser, so
// a verb's code (and the node builtins it requires) still load only when that verb runs.
// tsc still type-checks and emits dist/src for the tests.
import fs from 'node:fs';
import { build } from 'esbuild';

fs.rmSync('dist/bundle', { recursive: true, force: true });

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  external: ['koffi', 'node-pty'],
  // import.meta.url does not exist in CommonJS: the code's few uses get the bundle's own URL.
  define: { 'import.meta.url': 'importMetaUrl' },
  inject: ['scripts/import-meta-url.cjs'],
  sourcemap: false,
  legalComments: 'none',
  logLevel: 'warning',
};

await Promise.all([
  build({ ...common, entryPoints: ['src/cli/main.ts'], outfile: 'dist/bundle/hutch.cjs' }),
  build({ ...common, entryPoints: ['src/agent/main.ts'], outfile: 'dist/bundle/agent.cjs' }),
]);
fs.chmodSync('dist/bundle/hutch.cjs', 0o755);
