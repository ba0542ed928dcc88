// What `hutch info` says of gVisor here: runsc's version, which of its platforms work on this host
// and why the others do not, and which one hutch uses.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { findExecutable } from '../../linux/index.js';

/** One gVisor platform (how the sentry intercepts the sandbox's syscalls) on this host. */
export interface GvisorPlatformProbe { name: string; works: boolean; detail: string }

/** runsc here, and its platforms. */
export interface GvisorProbe {
  available: boolean; detail: string; path?: string; version?: string;
  /** The platform hutch runs runsc with ($HUTCH_GVISOR_PLATFORM, else ptrace). */
  used: string;
  platforms: GvisorPlatformProbe[];
}

/** systrap first shipped in gVisor's 2023-04 releases. */
const SYSTRAP_SINCE = 20230400;

/** Probes runsc without starting a sandbox (a kvm sandbox that hangs would hang the probe). */
export async function probeGvisor(): Promise<GvisorProbe> {
  const used = process.env.HUTCH_GVISOR_PLATFORM ?? 'ptrace';
  const file = findExecutable('runsc');
  if (file === null) return { available: false, detail: 'runsc not found in PATH (Debian package runsc; scripts/setup.sh installs it)', used, platforms: [] };
  const out = await new Promise<string>((resolve) => execFile(file, ['--version'], { timeout: 5000 }, (e, stdout) => resolve(e ? '' : stdout)));
  const version = /runsc version (\S+)/.exec(out)?.[1];
  if (version === undefined) return { available: false, path: file, detail: `${file} --version printed no version`, used, platforms: [] };
  const date = Number(/(20\d{6})/.exec(version)?.[1] ?? 0);
  const pvm = fs.existsSync('/sys/module/kvm_pvm');
  const platforms: GvisorPlatformProbe[] = [
    { name: 'ptrace', works: true, detail: 'works everywhere; every syscall is a ptrace stop (slowest)' },
    {
      name: 'systrap', works: date >= SYSTRAP_SINCE,
      detail: date >= SYSTRAP_SINCE ? 'seccomp traps instead of ptrace stops' : `not in this release (${version}; systrap came in 2023)`,
    },
    {
      name: 'kvm',
      works: !pvm && fs.existsSync('/dev/kvm'),
      detail: pvm ? '/dev/kvm is a PVM nested host (kvm_pvm): runsc\'s kvm platform hangs on it'
        : fs.existsSync('/dev/kvm') ? '/dev/kvm is there (not tried: HUTCH_GVISOR_PLATFORM=kvm uses it)' : 'no /dev/kvm',
    },
  ];
  return { available: true, path: file, version, detail: `${file} ${version}`, used, platforms };
}
