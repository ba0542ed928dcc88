// Every example of docs/sdk.md runs as written against a real hutchd, exits 0, and prints what its
// comments say it prints. Their '@hutch/sdk' is run as 'hutch/sdk', the main package's export of the
// same source (test/sdk-package.test.ts checks the package itself), so that no workspace link is needed.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeRoot, cleanRoot } from './helpers.js';
import { startDaemon, tokenFile, type Daemon } from './server-kit.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const root = makeRoot('sdkdocs');
let daemon: Daemon;
let token: string;

test.before(async () => {
  const tf = tokenFile(root);
  token = tf.token;
  daemon = await startDaemon(root, ['--listen', '127.0.0.1:0', '--token-file', tf.file]);
});

test.after(async () => {
  await daemon?.stop();
  await cleanRoot(root);
});

/** The ```js blocks of a doc (docs/sdk.md, README.md) with the heading above each. */
function examples(doc = 'docs/sdk.md'): { title: string; code: string }[] {
  const text = fs.readFileSync(path.join(repo, doc), 'utf8');
  const out: { title: string; code: string }[] = [];
  let title = '';
  const re = /^#{2,3} (.*)$|^```js\n([\s\S]*?)^```$/gm;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    if (m[1] !== undefined) title = m[1];
    else out.push({ title, code: m[2]! });
  }
  return out;
}

/** What the comments of console.log lines say is printed (skipping placeholders like <id>). */
function expected(code: string): string[] {
  return code.split('\n').filter((l) => l.includes('console.log(') && /\/\/ (.+)$/.test(l))
    .map((l) => /\/\/ (.+)$/.exec(l)![1]!.trim()).filter((e) => !e.includes('<'));
}

function run(file: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [file], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

test('docs/sdk.md and README examples run and print what they say', async () => {
  const readme = examples('README.md').map((ex) => ({ ...ex, title: `README: ${ex.title}` }));
  assert.ok(readme.length >= 1, 'the README has an SDK example');
  const all = [...examples(), ...readme];
  assert.ok(all.length >= 7, `examples found: ${all.length}`);
  // Inside the package, so that 'hutch/sdk' resolves through package.json's exports (self-reference).
  const dir = fs.mkdtempSync(path.join(repo, 'dist/test/sdk-doc-'));
  try {
    for (const [i, ex] of all.entries()) {
      const file = path.join(dir, `example-${i}.mjs`);
      fs.writeFileSync(file, ex.code.replaceAll("from '@hutch/sdk'", "from 'hutch/sdk'"));
      const env = { HUTCH_SOCKET: daemon.socketPath, HUTCH_TOKEN: token, ...(ex.title.includes('TCP') ? { HUTCH_URL: daemon.url! } : {}) };
      const r = await run(file, env);
      assert.equal(r.code, 0, `example "${ex.title}" failed: ${r.stderr}`);
      for (const want of expected(ex.code)) assert.ok(r.stdout.includes(want), `example "${ex.title}" should print ${want}; printed:\n${r.stdout}`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const left = await fetch(`${daemon.url}/v1/sandboxes`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.json()) as { sandboxes: unknown[] };
  assert.deepEqual(left.sandboxes, [], 'every example removes its sandbox');
});
