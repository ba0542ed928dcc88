// A real image registry on loopback for the e2e tests: Debian's docker-registry (distribution 2.8)
// with its storage in a test dir, on 127.0.0.1 and a port the kernel picks; images pushed by skopeo.
import fs from 'node:fs';
import path from 'node:path';
import { Daemon, expectSuccess, runProgram } from './host.js';

/** A running registry and where it listens. */
export interface LoopbackRegistry {
  /** host:port, e.g. 127.0.0.1:41455 */
  host: string;
  daemon: Daemon;
  /** Stops the registry process and waits for it. */
  stop(): Promise<void>;
}

/** Starts docker-registry with its storage under `dir`/registry; resolves once it listens. */
export async function startRegistry(dir: string): Promise<LoopbackRegistry> {
  const home = path.join(dir, 'registry');
  fs.mkdirSync(path.join(home, 'data'), { recursive: true });
  const config = path.join(home, 'config.yml');
  // Port 0: the kernel picks a free port, and the registry logs it at level info.
  fs.writeFileSync(config, [
    'version: 0.1',
    'log:',
    '  level: info',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${path.join(home, 'data')}`,
    'http:',
    '  addr: 127.0.0.1:0',
    '  secret: hutch-e2e-only',
    '',
  ].join('\n'));
  const daemon = new Daemon('docker-registry', '/usr/bin/docker-registry', ['serve', config], path.join(home, 'log.txt'));
  try {
    const m = await daemon.waitForLog(/listening on (127\.0\.0\.1:\d+)/);
    return { host: m[1]!, daemon, stop: () => daemon.stop() };
  } catch (e) {
    await daemon.stop(); // one that never listened is stopped too: nothing else would
    throw e;
  }
}

/** Copies an OCI archive into the registry as `repo:tag` over plain http; returns the pull reference. */
export async function pushArchive(registry: LoopbackRegistry, archivePath: string, repoTag: string): Promise<string> {
  const ref = `${registry.host}/${repoTag}`;
  expectSuccess('skopeo copy', await runProgram('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci-archive:${archivePath}`, `docker://${ref}`]));
  return ref;
}
