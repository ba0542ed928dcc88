// Host files a sandbox gets: the host's name service files for the host's network, and the copy of
// a writable layer (a restore's).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { HutchError } from '../../errors.js';
import type { SandboxConfig } from '../types.js';

/**
 * The sandbox's /etc/resolv.conf and /etc/hosts, read-only: with the host's network the host's own
 * (docker does the same for --network host); on a network of src/net the ones it wrote (it rewrites
 * hosts in place as a named network's members change). A file the rootfs lacks is made empty in the
 * writable layer; without one (or when /etc is not a real dir, or the file is a link the image
 * planted) nothing is mounted there.
 */
export function nameServiceFiles(cfg: SandboxConfig, rootfs: string, owner: { uid: number; gid: number }): { source: string; destination: string; readonly: boolean }[] {
  const sources = cfg.network ? { 'resolv.conf': cfg.network.resolvConf, hosts: cfg.network.hosts }
    : cfg.hardening.network === 'host' ? { 'resolv.conf': '/etc/resolv.conf', hosts: '/etc/hosts' } : null;
  if (!sources) return [];
  const out: { source: string; destination: string; readonly: boolean }[] = [];
  const etc = path.join(rootfs, 'etc');
  if (!fs.lstatSync(etc, { throwIfNoEntry: false })?.isDirectory()) return out;
  for (const [name, source] of Object.entries(sources)) {
    if (!fs.statSync(source, { throwIfNoEntry: false })?.isFile()) continue;
    const target = path.join(etc, name);
    const st = fs.lstatSync(target, { throwIfNoEntry: false });
    if (!st && cfg.hardening.overlay) {
      fs.writeFileSync(target, '', { mode: 0o644, flag: 'wx' });
      fs.chownSync(target, owner.uid, owner.gid);
    } else if (!st?.isFile()) continue;
    out.push({ source, destination: `/etc/${name}`, readonly: true });
  }
  return out;
}

/**
 * Copies the contents of dir `from` into dir `to` as `cp -a` does: owners, modes, times, links,
 * overlay whiteouts (devices) and xattrs (an upper dir's opaque marks) kept. Node's cp keeps none of
 * the owners or devices.
 */
export function copyTree(from: string, to: string): void {
  const r = spawnSync('cp', ['-a', '--', `${from}/.`, to], { encoding: 'utf8' });
  if (r.status !== 0) throw new HutchError('EEXEC', `cannot copy ${from} to ${to}: ${(r.stderr || r.error?.message || `cp exited ${r.status}`).trim().slice(0, 300)}`, { path: from });
}
