// `features`: what the executor reports (hutch passes every spec field on to it), narrowed to
// what hutch validates, plus hutch's own annotations.
import { HutchError } from '../../errors.js';
import { PROFILE_ANNOTATION } from '../../oci/index.js';
import { PLATFORM_ANNOTATION, executorMessage, type OciRuntime } from '../../engine/oci/index.js';
import { runCaptured } from '../../platform/container/oci-passthrough.js';

/** hutch's features document: runc's shape (ociVersionMin/Max, hooks, mountOptions, linux, annotations). */
export async function runtimeFeatures(runtime: OciRuntime): Promise<Record<string, unknown>> {
  const executor = runtime.executor();
  const r = await runCaptured(executor, ['features']);
  if (r.code !== 0) throw new HutchError('EEXEC', `${executor.name} features: ${executorMessage(r.stderr)}`);
  const features = JSON.parse(r.stdout) as Record<string, unknown>;
  const version = (await runCaptured(executor, ['--version'])).stdout.split('\n')[0] ?? executor.name;
  features.annotations = {
    ...(features.annotations as Record<string, string> | undefined ?? {}),
    'dev.hutch.executor': version,
    [`${PROFILE_ANNOTATION}.values`]: 'off,default,strict',
    [`${PLATFORM_ANNOTATION}.values`]: 'container',
    'dev.hutch.pods': 'io.kubernetes.cri.container-type,io.kubernetes.cri.sandbox-id,io.kubernetes.cri-o.ContainerType,io.kubernetes.cri-o.SandboxID',
    'dev.hutch.checkpoint': 'unsupported',
  };
  return features;
}
