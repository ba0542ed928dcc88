// The entry of hutch's DNS service process (dist/bundle/netdns.cjs): started by the network
// layer when a sandbox attaches and none runs; holds the service's lock while it runs.
import fs from 'node:fs';
import path from 'node:path';
import { FileLock } from '../linux/filelock.js';
import { runDnsService } from './dns-service.js';
import { NetworkStore } from './store.js';

async function main(): Promise<void> {
  const run = process.argv[process.argv.indexOf('--run') + 1];
  const root = process.argv[process.argv.indexOf('--root') + 1];
  if (!run || !root) throw new Error('usage: netdns --root DIR --run DIR');
  const lock = FileLock.tryAcquire(path.join(run, 'dns.lock'), 'exclusive');
  if (!lock) return; // another one runs
  const logFile = path.join(run, 'dns.log');
  const log = (line: string) => fs.appendFileSync(logFile, `${new Date().toISOString()} ${line}\n`);
  try {
    await runDnsService(new NetworkStore(root, run, process.env.HUTCH_BRIDGE_SUBNET ?? '10.77.0.0/16'), log);
  } finally {
    lock.release();
  }
}

process.on('SIGTERM', () => process.exit(0));
main().catch((e: unknown) => {
  process.stderr.write(`hutch netdns: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
