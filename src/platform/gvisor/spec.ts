// What a hutch bundle becomes for runsc: the same sandbox, with what runsc (release 2022-12) refuses
// or reads differently changed (docs/gvisor.md).
import { HutchError } from '../../errors.js';
import type { Spec } from '../../oci/index.js';
import type { SandboxConfig } from '../types.js';

/** The smallest pids limit a gvisor sandbox gets (see adaptSpecForGvisor). */
export const MIN_GVISOR_PIDS = 128;

/**
 * A sandbox on a network runs without an OCI user namespace: runsc's host network mode (the one
 * that works here, see executor.ts) cannot set up its sandbox inside one. The sentry stays the
 * boundary; the ids inside are then the rootfs's own.
 */
export function configForGvisor(cfg: SandboxConfig): SandboxConfig {
  return cfg.network && cfg.hardening.userns ? { ...cfg, hardening: { ...cfg.hardening, userns: false } } : cfg;
}

/**
 * Adapts a hutch bundle for runsc:
 * - `rro` (recursive read-only, runc 1.1): runsc refuses the option; its binds are not recursive
 *   and `ro` makes them read-only;
 * - seccomp: the sentry is the boundary. The sandbox's syscalls never reach the host kernel (the
 *   sentry serves them, and runs under a seccomp filter of its own), so the OCI profile goes: runsc
 *   ignores it without --oci-seccomp, and with that flag this release aborted node (clone3).
 * - the host's network is not offered: runsc runs with --network=none in the sandbox's own netns.
 */
export function adaptSpecForGvisor(spec: Spec, cfg: SandboxConfig): void {
  // The host's pids cgroup counts the sentry's and gofer's threads (~80 for an idle sandbox), not the
  // sandbox's processes: a small limit would stop the sentry itself.
  if (cfg.limits.pids !== undefined && cfg.limits.pids < MIN_GVISOR_PIDS) {
    throw new HutchError('EINVAL', `sandbox ${cfg.id}: on the gvisor platform the pids limit bounds the host threads of gVisor's sentry (about 80 for an idle sandbox), not the sandbox's processes: use --pids ${MIN_GVISOR_PIDS} or more`, { id: cfg.id });
  }
  if (cfg.hardening.network === 'host') {
    throw new HutchError('EUNSUPPORTED', `sandbox ${cfg.id}: the gvisor platform has no host network yet (runsc runs with --network=none): use --network none`, { id: cfg.id });
  }
  for (const m of spec.mounts ?? []) {
    if (m.options?.includes('rro')) m.options = m.options.filter((o) => o !== 'rro');
  }
  if (spec.linux) delete spec.linux.seccomp;
}
