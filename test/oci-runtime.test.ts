// hutch as an OCI runtime through its real CLI (runc's contract): every verb's happy path, output
// formats, and bad input that must fail like runc, with exit code 1 and nothing left behind.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { makeRoot, testPlatforms } from './helpers.js';
import { cleanOciRoot, containerId, makeBundle, makeScratch, noTrace, oci, ociOk, removeScratch } from './oci-runtime-kit.js';

let root: string;
let scratch: string;
let sleeper: string;
before(() => {
  root = makeRoot('oci');
  scratch = makeScratch();
  sleeper = makeBundle(scratch, 'sleeper', ['sleep', '1000']);
});
after(async () => {
  const left = await cleanOciRoot(root);
  removeScratch(scratch);
  assert.deepEqual(left, []);
});

interface State { ociVersion: string; id: string; pid: number; status: string; bundle: string; rootfs: string; created: string; owner: string }
const stateOf = async (id: string) => JSON.parse(await ociOk(root, ['state', id])) as State;

test('create → state → start → exec, ps, pause/resume, events, update, kill → delete', async () => {
  const id = containerId('life');
  const pidFile = path.join(scratch, 'life.pid');
  await ociOk(root, ['create', '--bundle', sleeper, '--pid-file', pidFile, id], { files: true });
  const created = await stateOf(id);
  // runc's fields and order; the annotations are the template's (dev.hutch.profile).
  assert.deepEqual(Object.keys(created), ['ociVersion', 'id', 'pid', 'status', 'bundle', 'rootfs', 'created', 'annotations', 'owner']);
  assert.equal(created.status, 'created');
  assert.equal(created.bundle, sleeper, 'state reports the caller\'s bundle');
  assert.equal(created.rootfs, path.join(sleeper, 'rootfs'));
  assert.equal(Number(fs.readFileSync(pidFile, 'utf8')), created.pid);

  const table = await ociOk(root, ['list']);
  assert.match(table, /^ID\s+PID\s+STATUS\s+BUNDLE\s+CREATED\s+OWNER\n/);
  assert.match(table, new RegExp(`${id}\\s+${created.pid}\\s+created\\s+${sleeper}\\s`));
  const listed = JSON.parse(await ociOk(root, ['list', '--format', 'json'])) as State[];
  assert.equal(listed.find((s) => s.id === id)?.bundle, sleeper);
  assert.ok((await ociOk(root, ['list', '-q'])).split('\n').includes(id));

  await ociOk(root, ['start', id]);
  assert.equal((await stateOf(id)).status, 'running');
  const pids = JSON.parse(await ociOk(root, ['ps', '--format', 'json', id])) as number[];
  assert.ok(pids.includes(created.pid));
  assert.equal(await ociOk(root, ['exec', id, 'echo', 'hi']), 'hi\n');
  assert.equal(await ociOk(root, ['exec', '--cwd', '/tmp', '--env', 'A=b', id, 'sh', '-c', 'echo $(pwd) $A']), '/tmp b\n');
  assert.equal((await oci(root, ['exec', id, 'sh', '-c', 'exit 3'])).code, 3);
  const processFile = path.join(scratch, 'process.json');
  fs.writeFileSync(processFile, JSON.stringify({ args: ['sh', '-c', 'echo from-process-file $X'], env: ['X=1', 'PATH=/bin'], cwd: '/', user: { uid: 0, gid: 0 } }));
  assert.equal(await ociOk(root, ['exec', '--process', processFile, id]), 'from-process-file 1\n');

  await ociOk(root, ['pause', id]);
  assert.equal((await stateOf(id)).status, 'paused');
  await ociOk(root, ['resume', id]);
  assert.equal((await stateOf(id)).status, 'running');
  await ociOk(root, ['update', '--pids-limit', '77', id]);
  const events = (await ociOk(root, ['events', '--stats', id])).trim().split('\n');
  const stats = JSON.parse(events[0]!) as { type: string; id: string; data: { pids: { current: number; limit: number } } };
  assert.equal(stats.type, 'stats');
  assert.equal(stats.id, id);
  assert.equal(stats.data.pids.limit, 77);

  await ociOk(root, ['kill', id, 'KILL']);
  for (let i = 0; i < 50 && (await stateOf(id)).status !== 'stopped'; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal((await stateOf(id)).status, 'stopped');
  await ociOk(root, ['delete', id]);
  assert.ok(noTrace(root, id));
});

test('kill takes names with and without SIG, numbers, and --all; the default is SIGTERM', async () => {
  // An init that ends on SIGTERM (pid 1 ignores signals it has no handler for).
  const trapper = makeBundle(scratch, 'trapper', ['sh', '-c', 'trap "exit 0" TERM; while :; do sleep 0.05; done']);
  for (const signal of ['TERM', 'SIGKILL', '9', undefined]) {
    const id = containerId('kill');
    await ociOk(root, ['run', '--detach', '--bundle', trapper, id], { files: true });
    const args = signal === undefined ? ['kill', id] : ['kill', '--all', id, signal];
    await ociOk(root, args);
    for (let i = 0; i < 50 && (await stateOf(id)).status !== 'stopped'; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal((await stateOf(id)).status, 'stopped', `signal ${signal}`);
    await ociOk(root, ['delete', id]);
  }
});

test('run in the foreground gives the exit code and leaves nothing; --keep keeps the container', async () => {
  const bundle = makeBundle(scratch, 'echo', ['sh', '-c', 'echo out-$(hostname); exit 7']);
  const id = containerId('run');
  const r = await oci(root, ['run', '--bundle', bundle, id], { files: true });
  assert.equal(r.code, 7);
  assert.equal(r.stdout, 'out-hutch\n');
  assert.ok(noTrace(root, id));
  const kept = containerId('keep');
  assert.equal((await oci(root, ['run', '--keep', '--bundle', bundle, kept], { files: true })).code, 7);
  assert.equal((await stateOf(kept)).status, 'stopped');
  await ociOk(root, ['delete', kept]);
  assert.ok(noTrace(root, kept));
});

test('configs of every runtime-spec 1.x run: 1.3.0 with a field of 1.3 (linux.memoryPolicy), 1.2.1, 1.0.0', async () => {
  for (const version of ['1.3.0', '1.2.1', '1.0.0']) {
    const bundle = makeBundle(scratch, `v${version}`, ['echo', `ran ${version}`], (s) => {
      s.ociVersion = version;
      // runc 1.1 does not know it and ignores it, as it does every field it does not know.
      if (version === '1.3.0') (s.linux as Record<string, unknown>).memoryPolicy = { mode: 'MPOL_DEFAULT' };
    });
    const r = await oci(root, ['run', '--bundle', bundle, containerId('ver')], { files: true });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `ran ${version}\n`);
  }
});

test('the default bundle is the working directory; runc\'s one-dash flags work', async () => {
  const id = containerId('cwd');
  const r = await oci(root, ['create', id], { files: true, cwd: sleeper });
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await stateOf(id)).bundle, sleeper);
  await ociOk(root, ['delete', '-force', id]);
  const id2 = containerId('dash');
  await ociOk(root, ['create', '-bundle', sleeper, id2], { files: true });
  await ociOk(root, ['delete', id2]);
  assert.ok(noTrace(root, id) && noTrace(root, id2));
});

/** Runs a failing call and checks runc's kind of failure: exit code 1, the message, no trace of the id. */
async function failsLike(args: string[], message: RegExp, id: string, opts: Parameters<typeof oci>[2] = {}): Promise<void> {
  const r = await oci(root, args, { files: true, ...opts });
  assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
  assert.match(r.stderr, message);
  assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  assert.ok(noTrace(root, id), `${args.join(' ')} left state behind`);
}

test('bad bundles fail with the field and the reason, and leave nothing', async () => {
  const id = containerId('bad');
  const empty = path.join(scratch, 'empty');
  fs.mkdirSync(empty);
  await failsLike(['create', '--bundle', empty, id], /has no config\.json/, id);
  const malformed = makeBundle(scratch, 'malformed', ['true']);
  fs.writeFileSync(path.join(malformed, 'config.json'), '{"ociVersion": ');
  await failsLike(['create', '--bundle', malformed, id], /config\.json: not valid JSON/, id);
  const version = makeBundle(scratch, 'version', ['true'], (s) => { s.ociVersion = '2.0.0'; });
  await failsLike(['create', '--bundle', version, id], /ociVersion: \\?"2\.0\.0\\?" is runtime-spec major version 2, which hutch does not support/, id);
  const major0 = makeBundle(scratch, 'major0', ['true'], (s) => { s.ociVersion = '0.5.0'; });
  await failsLike(['create', '--bundle', major0, id], /ociVersion: \\?"0\.5\.0\\?" is runtime-spec major version 0/, id);
  const noRootfs = makeBundle(scratch, 'norootfs', ['true'], (s) => { s.root!.path = 'missing'; });
  await failsLike(['create', '--bundle', noRootfs, id], /root\.path: rootfs \(.*\/norootfs\/missing\) does not exist/, id);
  const noProcess = makeBundle(scratch, 'noprocess', ['true'], (s) => { delete s.process; });
  await failsLike(['create', '--bundle', noProcess, id], /process: is required/, id);
  const badField = makeBundle(scratch, 'badfield', ['true'], (s) => { (s.process as unknown as Record<string, unknown>).cwd = 'relative'; });
  await failsLike(['create', '--bundle', badField, id], /process\.cwd/, id);
  const warp = makeBundle(scratch, 'warp', ['true'], (s) => { s.annotations = { 'dev.hutch.platform': 'warp' }; });
  await failsLike(['create', '--bundle', warp, id], /unknown platform \\"warp\\": use container/, id);
  await failsLike(['--platform', 'warp', 'create', '--bundle', sleeper, id], /unknown platform \\"warp\\": use container/, id);
  await failsLike(['create', '--bundle', sleeper, 'bad/id'], /invalid id format: bad\/id/, id);
  // The executor refuses it (a program that is not there): its error, and hutch cleans up.
  const noProgram = makeBundle(scratch, 'noprogram', ['/bin/no-such-program']);
  const r = await oci(root, ['create', '--bundle', noProgram, id], { files: true });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no-such-program/);
  assert.ok(noTrace(root, id));
});

test('duplicate id, start twice, unknown id, delete of a running container: runc\'s errors', async () => {
  const id = containerId('dup');
  await ociOk(root, ['create', '--bundle', sleeper, id], { files: true });
  const dup = await oci(root, ['create', '--bundle', sleeper, id], { files: true });
  assert.equal(dup.code, 1);
  assert.match(dup.stderr, new RegExp(`container with id exists: ${id}`));
  assert.equal((await stateOf(id)).status, 'created', 'the first container is untouched');
  await ociOk(root, ['start', id]);
  const again = await oci(root, ['start', id]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /cannot start an already running container/);
  const running = await oci(root, ['delete', id]);
  assert.equal(running.code, 1);
  assert.match(running.stderr, new RegExp(`cannot delete container ${id} that is not stopped: running`));
  assert.equal((await stateOf(id)).status, 'running');
  await ociOk(root, ['delete', '--force', id]);
  assert.ok(noTrace(root, id));
  const unknown = containerId('unknown');
  for (const verb of [['kill', unknown, 'KILL'], ['state', unknown], ['delete', unknown], ['start', unknown], ['exec', unknown, 'true'], ['ps', unknown]]) {
    const r = await oci(root, verb);
    assert.equal(r.code, 1, verb.join(' '));
    assert.match(r.stderr, /container does not exist/, verb.join(' '));
    assert.ok(noTrace(root, unknown));
  }
});

test('a root shared with runc (dockerd 20.10 gives every runtime one): runc\'s containers are not hutch\'s', async () => {
  const theirs = containerId('runc-own');
  const ours = containerId('ours');
  const runc = (args: string[]) => spawnSync('runc', ['--root', root, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 });
  try {
    const made = runc(['create', '--bundle', sleeper, theirs]);
    assert.equal(made.status, 0, made.stderr);
    assert.ok(fs.existsSync(path.join(root, theirs, 'state.json')), 'runc keeps its state in the shared root');
    await ociOk(root, ['create', '--bundle', sleeper, ours], { files: true });
    assert.deepEqual((await ociOk(root, ['list', '-q'])).trim().split('\n').filter((i) => i === theirs || i === ours), [ours]);
    for (const verb of [['state', theirs], ['delete', theirs], ['kill', theirs, 'KILL'], ['start', theirs]]) {
      const r = await oci(root, verb);
      assert.deepEqual([r.code, /container does not exist/.test(r.stderr)], [1, true], `${verb.join(' ')}: ${r.stderr}`);
    }
    // Not hutch's container, so none to delete: with --force that is not an error, as runc's.
    assert.equal((await oci(root, ['delete', '--force', theirs])).code, 0);
    assert.deepEqual(fs.readdirSync(path.join(root, theirs)).sort(), ['exec.fifo', 'state.json'], 'hutch left runc\'s dir as it was');
    assert.equal(JSON.parse(runc(['state', theirs]).stdout).status, 'created', 'runc\'s container is untouched');
    const dup = await oci(root, ['create', '--bundle', sleeper, theirs], { files: true });
    assert.match(dup.stderr, new RegExp(`container with id exists: ${theirs}`));
    await ociOk(root, ['delete', '--force', ours]);
    assert.ok(noTrace(root, ours));
  } finally {
    runc(['delete', '--force', theirs]);
    await oci(root, ['delete', '--force', ours]);
  }
  assert.equal(fs.existsSync(path.join(root, theirs)), false, 'runc removed its own dir');
});

test('--log with --log-format json gets the error as a JSON line; stderr has the message', async () => {
  const log = path.join(scratch, 'log.json');
  const id = containerId('log');
  const r = await oci(root, ['kill', id], { globals: ['--log', log, '--log-format', 'json'] });
  assert.equal(r.code, 1);
  assert.equal(r.stderr, 'container does not exist\n');
  const entry = JSON.parse(fs.readFileSync(log, 'utf8').trim().split('\n').pop()!) as { level: string; msg: string; time: string };
  assert.equal(entry.level, 'error');
  assert.equal(entry.msg, 'container does not exist');
  assert.match(entry.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  // Without --log, runc's logrus text line on stderr.
  assert.match((await oci(root, ['state', id])).stderr, /^time="[^"]+" level=error msg="container does not exist"\n$/);
});

test('spec, features, checkpoint and restore', async () => {
  const dir = path.join(scratch, 'spec');
  fs.mkdirSync(dir);
  await ociOk(root, ['spec', '--bundle', dir]);
  const spec = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as { ociVersion: string; root: { path: string } };
  assert.equal(spec.root.path, 'rootfs');
  const exists = await oci(root, ['spec', '--bundle', dir]);
  assert.equal(exists.code, 1);
  assert.match(exists.stderr, /File config\.json exists\. Remove it first\./);
  fs.rmSync(path.join(dir, 'config.json'));
  await ociOk(root, ['spec', '--rootless', '--bundle', dir]);
  assert.ok((JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as { linux: { uidMappings?: unknown[] } }).linux.uidMappings);

  type Features = { ociVersionMin: string; ociVersionMax: string; hooks: string[]; annotations: Record<string, string> };
  // What hutch implements is what its executor does: the spec version the executor's --version names.
  const specOf = (executor: string) => /^spec: (\S+)$/m.exec(spawnSync(executor, ['--version'], { encoding: 'utf8' }).stdout)?.[1];
  for (const executor of ['runc', 'crun']) {
    const features = JSON.parse(await ociOk(root, ['--executor', executor, 'features'])) as Features;
    assert.equal(features.ociVersionMin, '1.0.0', executor);
    assert.equal(features.ociVersionMax, specOf(executor), executor);
    assert.ok(features.hooks.includes('createRuntime'), executor);
    assert.equal(features.annotations['dev.hutch.ociVersion.accepted'], '1.x');
    assert.equal(features.annotations['dev.hutch.profile.values'], 'off,default,strict');
  }

  const id = containerId('ckpt');
  await ociOk(root, ['run', '-d', '--bundle', sleeper, id], { files: true });
  const ck = await oci(root, ['checkpoint', '--image-path', path.join(scratch, 'img'), id]);
  assert.equal(ck.code, 1);
  assert.match(ck.stderr, /checkpoint is not supported on this platform: /);
  const rs = await oci(root, ['restore', '--image-path', path.join(scratch, 'img'), '--bundle', sleeper, containerId('rst')]);
  assert.equal(rs.code, 1);
  assert.match(rs.stderr, /restore is not supported on the container platform: runc restores only through CRIU/);
  await ociOk(root, ['delete', '--force', id]);
});

test('the gvisor platform through runc\'s contract: the annotation or --platform picks runsc; verbs and delete work', { skip: testPlatforms().find((p) => p.name === 'gvisor')?.skip ?? false }, async () => {
  const annotated = makeBundle(scratch, 'gv-annotated', ['sh', '-c', 'uname -r'], (s) => { s.annotations = { 'dev.hutch.platform': 'gvisor' }; });
  const id = containerId('gvrun');
  const r = await oci(root, ['run', '--bundle', annotated, id]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), '4.4.0', 'the sentry answers uname, not the host kernel');
  const flagged = makeBundle(scratch, 'gv-flagged', ['sleep', '1000']);
  const id2 = containerId('gvflag');
  await ociOk(root, ['create', '--bundle', flagged, id2], { globals: ['--platform', 'gvisor'], files: true });
  await ociOk(root, ['start', id2]);
  const state = JSON.parse(await ociOk(root, ['state', id2])) as State;
  assert.equal(state.status, 'running');
  assert.match(fs.readFileSync(`/proc/${state.pid}/cmdline`, 'utf8'), /^runsc-sandbox/, 'the pid is runsc\'s sandbox process');
  await ociOk(root, ['pause', id2]);
  assert.equal((JSON.parse(await ociOk(root, ['state', id2])) as State).status, 'paused');
  await ociOk(root, ['resume', id2]);
  await ociOk(root, ['kill', id2, 'KILL']);
  await ociOk(root, ['delete', '--force', id2]);
  assert.equal((await oci(root, ['state', id2])).code, 1);
  assert.deepEqual(fs.readdirSync(path.join(root, '.executor', 'runsc')).filter((f) => f.includes(id2) || f.includes(id)), [], 'runsc forgot both');
});

test('checkpoint and restore of a gvisor container through runc\'s contract: the restored one goes on counting', { skip: testPlatforms().find((p) => p.name === 'gvisor')?.skip ?? false }, async () => {
  const counter = makeBundle(scratch, 'gv-counter', ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.1; done'], (s) => { s.annotations = { 'dev.hutch.platform': 'gvisor' }; });
  const id = containerId('gvck');
  await ociOk(root, ['run', '-d', '--bundle', counter, id], { files: true });
  await new Promise((r) => setTimeout(r, 700));
  const image = path.join(scratch, 'gv-image');
  assert.match((await oci(root, ['checkpoint', '--leave-running', '--image-path', image, id])).stderr, /--leave-running is not supported on the gvisor platform/);
  await ociOk(root, ['checkpoint', '--image-path', image, '--tcp-established', id]);
  assert.equal((JSON.parse(await ociOk(root, ['state', id])) as State).status, 'stopped');
  await ociOk(root, ['delete', id]);
  const restored = containerId('gvrs');
  await ociOk(root, ['restore', '--detach', '--image-path', image, '--bundle', counter, restored], { files: true });
  const n1 = Number(await ociOk(root, ['exec', restored, 'cat', '/tmp/n']));
  await new Promise((r) => setTimeout(r, 400));
  const n2 = Number(await ociOk(root, ['exec', restored, 'cat', '/tmp/n']));
  assert.ok(n1 > 3 && n2 > n1, `the loop went on from where it was (${n1} → ${n2}; /tmp is the sentry's, in the image)`);
  await ociOk(root, ['delete', '--force', restored]);
  const bad = containerId('gvbad');
  assert.notEqual((await oci(root, ['restore', '--detach', '--image-path', path.join(scratch, 'nope'), '--bundle', counter, bad], { files: true })).code, 0);
  assert.equal((await oci(root, ['state', bad])).code, 1, 'a failed restore leaves no container');
});
