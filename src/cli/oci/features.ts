// `features`: what the executor reports (hutch passes every spec field on to it, so the
// executor's limits are hutch's), plus hutch's own annotations.
import { PROFILE_ANNOTATION } from '../../oci/index.js';
import { PLATFORM_ANNOTATION, type OciRuntime } from '../../engine/oci/index.js';

/** hutch's features document: runc's shape (ociVersionMin/Max, hooks, mountOptions, linux, annotations). */
export async function runtimeFeatures(runtime: OciRuntime): Promise<Record<string, unknown>> {
  const { features, version } = await runtime.executorFeatures();
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
