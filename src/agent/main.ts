// The hutch agent program: the init of every sandbox (--listen) or a transient agent over stdio
// (--stdio, e.g. through `runc exec`). Kept to a small import graph: it starts in every sandbox.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { errnoCode, HutchError, isHutchError } from '../errors.js';
import { setChildSubreaper, setNotDumpable } from '../linux/ffi.js';
import { Agent } from './agent.js';
import { EXIT_FILE_NAME } from './exit-file.js';
import { MAIN_LOG_NAME } from './main-log.js';
import { cappedLog } from './capped-log.js';
import { isInit } from './procfs.js';

/** Grace period for SIGTERM/SIGINT sent to the agent from outside. */
const SIGNAL_GRACE_MS = 3000;
/** Longest socket path bound directly; longer ones are bound relative to their dir (sun_path is 108 bytes). */
const MAX_SUN_PATH = 100;

const USAGE = 'usage: main.js --listen <socket path> | --stdio';

const log = cappedLog((line) => process.stderr.write(line), `hutch-agent[${process.pid}]: `);

/** The transport chosen on the command line. */
type Mode = { listen: string } | { stdio: true };

function parseArgs(argv: string[]): Mode {
  if (argv.length === 2 && argv[0] === '--listen' && argv[1]) return { listen: path.resolve(argv[1]) };
  if (argv.length === 1 && argv[0] === '--stdio') return { stdio: true };
  throw new HutchError('EINVAL', USAGE);
}

/** Removes a socket left by an earlier agent; anything else at that path is refused, not deleted. */
function removeStaleSocket(socketPath: string): void {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(socketPath);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return;
    throw e;
  }
  if (!st.isSocket()) throw new HutchError('EEXIST', `${socketPath} exists and is not a socket`, { path: socketPath });
  fs.unlinkSync(socketPath);
}

function serveSocket(agent: Agent, socketPath: string): void {
  removeStaleSocket(socketPath);
  const server = net.createServer((sock) => agent.addSession(sock, sock));
  server.on('error', (e) => {
    log(`listening on ${socketPath}: ${e.message}`);
    process.exit(1);
  });
  // The socket is created owner-only: no moment where another user could connect.
  const oldMask = process.umask(0o177);
  try {
    if (Buffer.byteLength(socketPath) <= MAX_SUN_PATH) server.listen(socketPath);
    else {
      // bind(2) happens synchronously inside listen(), so the cwd change is confined to this call.
      const cwd = process.cwd();
      process.chdir(path.dirname(socketPath));
      try {
        server.listen(path.basename(socketPath));
      } finally {
        process.chdir(cwd);
      }
    }
  } finally {
    process.umask(oldMask);
  }
  server.once('listening', () => {
    fs.chmodSync(socketPath, 0o600);
    // performance.now() counts from process start: this line shows start-up cost in the init log.
    log(`listening on ${socketPath} ${performance.now().toFixed(1)} ms after start`);
  });
  const stop = () => {
    server.close();
    fs.rmSync(socketPath, { force: true });
  };
  agent.onBeforeExit = stop;
  // A checkpoint (gVisor) needs no socket bound on the host: quiesce closes it; after the restore,
  // SIGUSR2 from the host makes a new one.
  agent.onQuiesce = () => {
    stop();
    // Without its listener an agent with no process to wait for has an empty event loop: node would exit.
    const keepAlive = setInterval(() => undefined, 1 << 30);
    quiesced = () => {
      clearInterval(keepAlive);
      serveSocket(agent, socketPath);
    };
  };
}

/** What SIGUSR2 does: after a quiesce, listen again; otherwise nothing (not node's default, which exits). */
let quiesced: (() => void) | undefined;
process.on('SIGUSR2', () => {
  const relisten = quiesced;
  quiesced = undefined;
  if (!relisten) return;
  log('SIGUSR2: listening again');
  relisten();
});

function serveStdio(agent: Agent): void {
  for (const fd of [0, 1]) {
    const st = fs.fstatSync(fd);
    if (!st.isFIFO() && !st.isSocket()) throw new HutchError('EINVAL', `--stdio needs fd ${fd} to be a pipe or socket`);
  }
  // net.Socket over the fds gives asynchronous writes (process.stdout on a pipe blocks the agent).
  const input = new net.Socket({ fd: 0, readable: true, writable: false });
  const output = new net.Socket({ fd: 1, readable: false, writable: true });
  agent.addSession(input, output);
}

function main(): void {
  const mode = parseArgs(process.argv.slice(2));
  // The agent runs as the sandbox's own uid and its stdio are host files (init.log) or pipes to
  // hutch: no process of the sandbox may reopen them through /proc/<agent>/fd or read its memory.
  setNotDumpable();
  // Outside its own pid namespace (tests, host-side runs) the agent adopts its orphans itself.
  if (!isInit()) setChildSubreaper();
  const agent = new Agent({
    exitFile: 'listen' in mode ? path.join(path.dirname(mode.listen), EXIT_FILE_NAME) : null,
    mainLogFile: 'listen' in mode ? path.join(path.dirname(mode.listen), MAIN_LOG_NAME) : null,
    log,
    onSessionClosed: 'stdio' in mode ? () => void agent.exit(0) : undefined,
  });
  agent.start();
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.on(sig, () => {
      log(`${sig}: shutting down`);
      void agent.terminate(SIGNAL_GRACE_MS);
    });
  }
  if ('listen' in mode) serveSocket(agent, mode.listen);
  else serveStdio(agent);
}

try {
  main();
} catch (e) {
  log(e instanceof Error ? e.message : String(e));
  process.exit(isHutchError(e) && e.code === 'EINVAL' ? 2 : 1);
}
