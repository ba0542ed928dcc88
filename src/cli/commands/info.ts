// hutch info: versions, cgroup mode, executor, and which hardening this machine supports (and why not).
import { bool } from '../args.js';
import type { Command } from '../command.js';

export const command: Command = {
  usage: 'hutch info [--json]',
  summary: 'Show versions, paths, cgroup mode, the executor, the platforms (gVisor\'s too), and which hardening features this machine supports.',
  flags: [{ name: 'json', kind: 'bool', help: 'print JSON' }],
  async run(ctx, args) {
    const { probeHost, hostIdRange } = await import('../../linux/index.js');
    const { probeGvisor } = await import('../../platform/gvisor/probe.js');
    const engine = await ctx.engine();
    const [probe, privateIds, gvisor] = await Promise.all([
      probeHost(), engine.privateIdsProblem('container').catch((e: unknown) => (e instanceof Error ? e.message : String(e))), probeGvisor(),
    ]);
    const ids = hostIdRange();
    const executor = ctx.globals.executor ?? process.env.HUTCH_EXECUTOR ?? 'runc';
    const exec = executor === 'crun' ? probe.crun : probe.runc;
    const hardening = {
      userNamespace: { ...probe.userNamespaces, detail: `${probe.userNamespaces.detail}; sandbox ids 0-65535 map to host ${ids.hostUid}-${ids.hostUid + ids.size - 1}` },
      seccomp: probe.seccomp,
      overlayWritableLayer: probe.overlayfs,
      cgroupLimits: executor === 'crun' && probe.cgroups.mode === 'hybrid'
        ? { available: probe.cgroups.available, detail: `${probe.cgroups.detail}; crun refuses hybrid hosts, so it runs in a mount namespace without the cgroup2 hierarchy and drives the v1 controllers` }
        : { available: probe.cgroups.available, detail: probe.cgroups.detail },
      capabilities: { available: true, detail: 'minimal default set (Docker\'s), no_new_privs' },
      maskedPaths: { available: true, detail: '/proc and /sys paths masked or read-only' },
      privateIdRanges: privateIds === null
        ? { available: true, detail: '--userns private: idmapped read-only binds of the base layers work (hutchd\'s default)' }
        : { available: false, detail: `--userns private unavailable (hutchd falls back to shared): ${privateIds}` },
    };
    const info = {
      hutch: '0.1.0', node: process.version, kernel: probe.kernel,
      root: engine.store.root, dataRoot: engine.dataRoot,
      executor: { name: executor, ...exec },
      cgroups: probe.cgroups, hardening,
      platform: engine.platformName,
      platforms: {
        container: { available: exec.available, summary: summaryOf(engine, 'container') },
        gvisor: { available: gvisor.available, summary: summaryOf(engine, 'gvisor'), runsc: gvisor },
        vm: { qemu: probe.qemu, firecracker: probe.firecracker, kvm: probe.kvm },
      },
      devices: { tun: probe.tun, fuse: probe.fuse }, checkpoint: probe.criu,
    };
    if (bool(args.flags, 'json')) {
      ctx.out(JSON.stringify(info, null, 2) + '\n');
      return 0;
    }
    const mark = (f: { available: boolean; detail: string }) => `${f.available ? 'yes' : 'no '}  ${f.detail}`;
    const lines = [
      `hutch:      ${info.hutch} (node ${info.node})`,
      `kernel:     ${info.kernel}`,
      `root:       ${info.root}`,
      `data root:  ${info.dataRoot}`,
      `executor:   ${executor} ${exec.available ? `${exec.version ?? ''} (${exec.path ?? ''})` : `unavailable: ${exec.detail}`}`,
      `cgroups:    ${probe.cgroups.detail}`,
      `platform:   ${engine.platformName} (new sandboxes; --platform or $HUTCH_PLATFORM chooses)`,
      `gvisor:     ${gvisor.available ? `runsc ${gvisor.version} (${gvisor.path}), runs with --platform=${gvisor.used}` : `unavailable: ${gvisor.detail}`}`,
      ...gvisor.platforms.map((p) => `  ${p.name.padEnd(22)} ${p.works ? 'yes' : 'no '}  ${p.detail}${p.name === gvisor.used ? ' (used)' : ''}`),
      'hardening:',
      ...Object.entries(hardening).map(([k, f]) => `  ${k.padEnd(22)} ${mark(f)}`),
      'other:',
      `  ${'qemu'.padEnd(22)} ${mark(probe.qemu)}`,
      `  ${'kvm'.padEnd(22)} ${mark(probe.kvm)}`,
      `  ${'criu binary'.padEnd(22)} ${mark(probe.criu)}`,
      `  ${'/dev/net/tun'.padEnd(22)} ${mark(probe.tun)}`,
      `  ${'/dev/fuse'.padEnd(22)} ${mark(probe.fuse)}`,
    ];
    ctx.out(lines.join('\n') + '\n');
    return 0;
  },
};

function summaryOf(engine: { knownPlatforms(): { name: string; summary: string }[] }, name: string): string {
  return engine.knownPlatforms().find((p) => p.name === name)?.summary ?? '';
}
