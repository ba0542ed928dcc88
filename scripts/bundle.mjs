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
  external: ['koffi', 'node-pty', 'bufferutil', 'utf-8-validate'],
  // import.meta.url does not exist in CommonJS: the code's few uses get the bundle's own URL.
  define: { 'import.meta.url': 'importMetaUrl' },
  inject: ['scripts/import-meta-url.cjs'],
  sourcemap: false,
  legalComments: 'none',
  logLevel: 'warning',
  // External dynamic imports (the verbs) become require(): Node's ESM loader costs more.
  supported: { 'dynamic-import': false },
};

// The CLI's entry holds only argument parsing and dispatch; each verb (and the OCI runtime mode) is
// a bundle of its own under verbs/, required when it runs: a call parses its own verb's code, not
// every verb's (a single 300 KB bundle cost each call ~5 ms more than it needs).
const verbsOfMain = {
  name: 'verbs-of-main',
  setup(b) {
    // The engine too: the entry then holds nothing but parsing and dispatch.
    b.onResolve({ filter: /^\.\.\/engine\/index\.js$/ }, (args) =>
      (args.importer.endsWith('src/cli/main.ts') ? { path: './engine.cjs', external: true } : undefined));
    b.onResolve({ filter: /^\.\/(commands\/[a-z-]+|oci\/main)\.js$/ }, (args) => {
      if (!args.importer.endsWith('src/cli/main.ts')) return undefined;
      const name = args.path === './oci/main.js' ? 'oci' : args.path.slice('./commands/'.length, -'.js'.length);
      return { path: `./verbs/${name}.cjs`, external: true };
    });
  },
};
// The engine loads the image module (registry client, tar, unpack, store: most of its size) only
// for images; in a bundle of its own, a busybox or rootfs-dir sandbox never parses it.
const imageOfEngine = {
  name: 'image-of-engine',
  setup(b) {
    b.onResolve({ filter: /^\.\.\/image\/index\.js$/ }, (args) =>
      (/src\/engine\/[^/]+\.ts$/.test(args.importer) ? { path: './image.cjs', external: true } : undefined));
  },
};
const verbFiles = fs.readdirSync('src/cli/commands').filter((f) => f.endsWith('.ts') && f !== 'sandbox-flags.ts' && f !== 'transition.ts');
fs.mkdirSync('dist/bundle/verbs', { recursive: true });

// Each bundle is written aside and renamed into place: a hutch (or a sandbox's agent) starting
// during a rebuild sees the old file or the new one, never a half-written or missing one.
const bundles = [
  ['src/cli/main.ts', 'dist/bundle/hutch.cjs', [verbsOfMain]],
  ['src/agent/main.ts', 'dist/bundle/agent.cjs', []],
  ['src/net/dns-main.ts', 'dist/bundle/netdns.cjs', []],
  ['src/engine/index.ts', 'dist/bundle/engine.cjs', [imageOfEngine]],
  ['src/image/index.ts', 'dist/bundle/image.cjs', []],
  ['src/cli/oci/main.ts', 'dist/bundle/verbs/oci.cjs', []],
  ...verbFiles.map((f) => [`src/cli/commands/${f}`, `dist/bundle/verbs/${f.slice(0, -3)}.cjs`, []]),
];
await Promise.all(bundles.map(([entry, out, plugins]) => build({ ...common, entryPoints: [entry], outfile: `${out}.tmp`, plugins })));
// The entry that the `hutch` command runs: hutch.cjs under a V8 code cache (scripts/boot.cjs).
// Caches of the previous build would be rejected by V8 anyway; they go now.
for (const d of ['dist/bundle', 'dist/bundle/verbs']) {
  for (const f of fs.readdirSync(d)) if (f.endsWith('.v8cache')) fs.rmSync(`${d}/${f}`);
}
for (const entry of ['boot', 'hutchd']) {
  fs.copyFileSync(`scripts/${entry}.cjs`, `dist/bundle/${entry}.cjs.tmp`);
  bundles.push([`scripts/${entry}.cjs`, `dist/bundle/${entry}.cjs`, []]);
}
for (const [, out] of bundles) {
  fs.chmodSync(`${out}.tmp`, 0o755);
  fs.renameSync(`${out}.tmp`, out);
}
