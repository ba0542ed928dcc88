// The SDK as its own npm package: `npm pack` of packages/sdk gives a tarball of compiled JS and
// .d.ts; installed in a fresh project it brings `ws` and nothing of hutch's own dependencies, its
// types check without @types/ws, and a program using it drives a real hutchd. Offline: `ws` is
// packed from this repository's node_modules and installed beside it, so npm fetches nothing.
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { daemonFixture } from './server-kit.js';

const fx = daemonFixture('sdkpkg');
const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const run = promisify(execFile);

/** Runs npm with a private, empty cache, offline; returns its stdout. */
async function npm(args: string[], cwd: string, cache: string): Promise<string> {
  try {
    const r = await run('npm', [...args, '--offline', '--no-audit', '--no-fund', '--loglevel=error'], {
      cwd, env: { ...process.env, npm_config_cache: cache, npm_config_update_notifier: 'false' }, maxBuffer: 16 << 20, timeout: 120_000,
    });
    return r.stdout;
  } catch (e) {
    const x = e as { stderr?: string; message: string };
    throw new Error(`npm ${args.join(' ')} in ${cwd} failed: ${x.stderr || x.message}`);
  }
}

/** Every package dir under a node_modules tree (scoped ones as @scope/name). */
function installed(nodeModules: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      if (!e.isDirectory() || e.name.startsWith('.')) continue;
      if (e.name.startsWith('@')) {
        for (const s of fs.readdirSync(path.join(dir, e.name))) { out.push(`${e.name}/${s}`); const nested = path.join(dir, e.name, s, 'node_modules'); if (fs.existsSync(nested)) walk(nested); }
        continue;
      }
      out.push(e.name);
      const nested = path.join(dir, e.name, 'node_modules');
      if (fs.existsSync(nested)) walk(nested);
    }
  };
  walk(nodeModules);
  return out.sort();
}

test('npm pack of packages/sdk installs alone (with ws) and works against hutchd', { timeout: 300_000 }, async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-sdk-pkg-'));
  t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const cache = path.join(tmp, 'npm-cache');

  // The tarball: built by its prepack from src/sdk, compiled JS and declarations only.
  const packed = JSON.parse(await npm(['pack', '--workspace', 'packages/sdk', '--pack-destination', tmp, '--json'], REPO, cache)) as { filename: string; files: { path: string }[] }[];
  const sdkTarball = path.join(tmp, packed[0]!.filename);
  const files = packed[0]!.files.map((f) => f.path).sort();
  assert.ok(files.includes('dist/index.js') && files.includes('dist/index.d.ts') && files.includes('dist/processes.d.ts'), files.join(' '));
  assert.deepEqual(files.filter((f) => !/^dist\/[a-z-]+\.(js|d\.ts)$/.test(f)), ['README.md', 'package.json']);
  const manifest = JSON.parse(fs.readFileSync(path.join(REPO, 'packages/sdk/package.json'), 'utf8')) as { dependencies: Record<string, string> };
  assert.deepEqual(Object.keys(manifest.dependencies), ['ws']);
  // Declarations that need no @types/ws: its classes stay internal.
  for (const f of fs.readdirSync(path.join(REPO, 'packages/sdk/dist')).filter((n) => n.endsWith('.d.ts'))) {
    assert.doesNotMatch(fs.readFileSync(path.join(REPO, 'packages/sdk/dist', f), 'utf8'), /from ['"]ws['"]/, f);
  }

  // ws from this checkout, so that the install fetches nothing.
  const wsPacked = JSON.parse(await npm(['pack', path.join(REPO, 'node_modules/ws'), '--pack-destination', tmp, '--json', '--ignore-scripts'], tmp, cache)) as { filename: string }[];
  const app = path.join(tmp, 'app');
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true, type: 'module' }));
  await npm(['install', sdkTarball, path.join(tmp, wsPacked[0]!.filename)], app, cache);
  assert.deepEqual(installed(path.join(app, 'node_modules')), ['@hutch/sdk', 'ws'], 'nothing but the SDK and ws (no node-pty, koffi, tar)');

  // A program of the project's own, against the test's hutchd.
  fs.writeFileSync(path.join(app, 'main.mjs'), `
    import { Sandbox } from '@hutch/sdk';
    const sb = await Sandbox.create({ labels: { from: 'package' } });
    const r = await sb.exec(['sh', '-c', 'echo hello from $(hostname)']);
    await sb.files.write('/made/by/the/package.txt', 'ok');
    const bg = await sb.spawn('sleep 30', { detached: true });
    await bg.disconnect();
    const listed = (await sb.processes.list()).map((p) => [p.argv.join(' '), p.detached, p.running]);
    const text = await sb.files.read('/made/by/the/package.txt', { encoding: 'utf8' });
    await sb.kill();
    console.log(JSON.stringify({ out: r.stdout.trim() === 'hello from ' + sb.id, exitCode: r.exitCode, text, listed }));
  `);
  const { stdout } = await run(process.execPath, ['main.mjs'], { cwd: app, env: { ...process.env, HUTCH_SOCKET: fx.daemon.socketPath }, timeout: 60_000 });
  assert.deepEqual(JSON.parse(stdout), { out: true, exitCode: 0, text: 'ok', listed: [['sh -c echo hello from $(hostname)', false, false], ['/bin/sh -c sleep 30', true, true]] });

  // A TypeScript user of the package: its declarations check strictly (skipLibCheck off) with
  // @types/node alone, and a misuse is a type error.
  fs.writeFileSync(path.join(app, 'check.ts'), `
    import { Sandbox, type SandboxStats, type StartedProcess } from '@hutch/sdk';
    const sb = await Sandbox.create({ image: 'busybox' });
    const stats: SandboxStats = await sb.stats();
    const pids: number | null = stats.pids;
    const started: StartedProcess[] = await sb.processes.list();
    const p = await sb.spawn(['sleep', '1'], { detached: true });
    const exit = await p.wait();
    console.log(pids, started.length, exit.exitCode);
  `);
  fs.writeFileSync(path.join(app, 'bad.ts'), `
    import { Sandbox } from '@hutch/sdk';
    const sb = await Sandbox.create();
    const n: string = (await sb.stats()).memoryBytes;
    console.log(n);
  `);
  const tsconfig = (file: string) => JSON.stringify({
    compilerOptions: { target: 'es2022', module: 'nodenext', moduleResolution: 'nodenext', strict: true, noEmit: true, skipLibCheck: false, types: ['node'], typeRoots: [path.join(REPO, 'node_modules/@types')] },
    files: [file],
  });
  const tsc = path.join(REPO, 'node_modules/typescript/bin/tsc');
  fs.writeFileSync(path.join(app, 'tsconfig.json'), tsconfig('check.ts'));
  await run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: app, timeout: 120_000 }).catch((e: { stdout?: string }) => assert.fail(`check.ts: ${e.stdout}`));
  fs.writeFileSync(path.join(app, 'tsconfig.json'), tsconfig('bad.ts'));
  const bad = await run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: app, timeout: 120_000 }).then(() => '', (e: { stdout?: string }) => e.stdout ?? '');
  assert.match(bad, /bad\.ts.*TS2322/, 'a wrong type is an error');
});

test('the main package still exports hutch/sdk', async () => {
  const name = 'hutch/sdk'; // resolved at run time by the package's own exports (a self-reference)
  const viaName = await import(name) as typeof import('../src/sdk/index.js');
  const direct = await import('../src/sdk/index.js');
  assert.equal(viaName.Sandbox, direct.Sandbox);
});
