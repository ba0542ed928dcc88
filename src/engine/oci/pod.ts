// Pod sandboxes: the CRI annotations (containerd's and cri-o's) that say a container is a pod's
// sandbox, or a container of the pod whose sandbox has a given id.
import { HutchError } from '../../errors.js';
import type { Spec } from '../../oci/index.js';
import type { PodMembership } from './store.js';

const CONTAINERD_TYPE = 'io.kubernetes.cri.container-type';
const CONTAINERD_SANDBOX = 'io.kubernetes.cri.sandbox-id';
const CRIO_TYPE = 'io.kubernetes.cri-o.ContainerType';
const CRIO_SANDBOX = 'io.kubernetes.cri-o.SandboxID';

/** The namespaces a pod's containers share with its sandbox (pid only when the caller's spec sets it). */
export const POD_SHARED_NAMESPACES: readonly { type: string; file: string }[] = [
  { type: 'network', file: 'net' }, { type: 'ipc', file: 'ipc' }, { type: 'uts', file: 'uts' },
];

/** The pod membership `spec` declares for container `id` (sandboxId names the pod); undefined outside any pod. */
export function podMembershipOf(id: string, spec: Spec): PodMembership | undefined {
  const a = spec.annotations ?? {};
  const type = a[CONTAINERD_TYPE] ?? a[CRIO_TYPE];
  const sandboxId = a[CONTAINERD_SANDBOX] ?? a[CRIO_SANDBOX];
  if (type === undefined) return undefined;
  // podman names the pod, not the sandbox container, in SandboxID: the sandbox is known by either.
  if (type === 'sandbox') return { role: 'sandbox', sandboxId: sandboxId || id };
  if (type === 'container') {
    if (sandboxId === undefined || sandboxId === '') {
      throw new HutchError('EINVAL', `config.json: annotations["${CONTAINERD_SANDBOX}"]: a pod container needs its sandbox's id`, { id });
    }
    return { role: 'container', sandboxId };
  }
  throw new HutchError('EINVAL', `config.json: annotations["${a[CONTAINERD_TYPE] !== undefined ? CONTAINERD_TYPE : CRIO_TYPE}"]: unknown container type "${type}" (want sandbox or container)`, { id });
}

/**
 * Removes the pod annotations from a spec given to runsc: runsc would put a pod's containers into
 * the pod's one sandbox, and report that sandbox's pid for each, which containerd's runc shim (it
 * tracks containers by their init pids) cannot follow: StartContainer of the second hangs. Each
 * container gets a gVisor sandbox of its own; hutch's record still knows the pod (docs/gvisor.md).
 */
export function withoutPodAnnotations(spec: Spec): void {
  if (!spec.annotations) return;
  for (const k of [CONTAINERD_TYPE, CONTAINERD_SANDBOX, CRIO_TYPE, CRIO_SANDBOX]) delete spec.annotations[k];
}

/** True when `record` is the sandbox container of the pod `sandboxId` (named by its container id or pod id). */
export function isPodSandbox(record: { id: string; pod?: PodMembership }, sandboxId: string): boolean {
  return record.pod?.role === 'sandbox' && (record.id === sandboxId || record.pod.sandboxId === sandboxId);
}
