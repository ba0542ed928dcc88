// Bundles the CLI and the agent into one CommonJS file each. Node 20 has no compile cache, its
// ESM loader costs about a millisecond per module, and a hutch call that loads ~60 small modules
// pays more for loading than for its work. esbuild wraps every module in a lazy initialiser, so
// a verb's code (and the node builtins it requires) still load only when that verb runs.
// tsc still type-checks and emits dist/src for the tests.
import fs from 'node:fs';
import { build } from 'esbuild';

fs.mkdirSync('dist/bundle', { recursive: true });

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

// Each bundle is written aside and renamed into place: a hutch (or a sandbox's agent) starting
// during a rebuild sees the old file or the new one, never a half-written or missing one.
const bundles = [['src/cli/main.ts', 'dist/bundle/hutch.cjs'], ['src/agent/main.ts', 'dist/bundle/agent.cjs']];
await Promise.all(bundles.map(([entry, out]) => build({ ...common, entryPoints: [entry], outfile: `${out}.tmp` })));
for (const [, out] of bundles) {
  fs.chmodSync(`${out}.tmp`, 0o755);
  fs.renameSync(`${out}.tmp`, out);
}
