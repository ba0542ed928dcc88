// The gvisor platform: a sandbox is an OCI container run by gVisor's runsc, whose sentry (a kernel
// in user space) serves the sandbox's syscalls; the host kernel sees only the sentry's. The bundle,
// the agent and the rootfs are the container platform's (docs/gvisor.md).
import { ContainerPlatform, type ContainerVariant } from '../container/index.js';
import { makeExecutor } from '../container/executor.js';
import type { PlatformOptions } from '../registry.js';
import { adaptSpecForGvisor } from './spec.js';
import { killAndForgetRunscContainer } from './teardown.js';

export { probeGvisor, type GvisorProbe } from './probe.js';

const GVISOR_VARIANT: ContainerVariant = {
  name: 'gvisor',
  capabilities: { directExec: false, privateIds: false, checkpoint: false },
  executor: (opts) => makeExecutor('runsc', opts.stateRoot, 'v1'),
  adaptSpec: adaptSpecForGvisor,
  exitWatchOnStdin: true,
  killAndForget: (e, s, bundle) => killAndForgetRunscContainer(e.config.stateDir, s.containerId, bundle, s.cgroupsPath),
};

/** Sandboxes in gVisor. */
export class GvisorPlatform extends ContainerPlatform {
  constructor(opts: PlatformOptions) {
    super(opts, GVISOR_VARIANT);
  }
}
