// `features`: what the executor reports (hutch passes every spec field on to it, so the
// executor's limits are hutch's), plus hutch's own annotations. hutch accepts configs of every
// runtime-spec 1.x (as runc does), but implements only what its executor does: ociVersionMax is
// the executor's, and the fields of a later minor are passed on for the executor to ignore.
import { HOOK_KINDS, PROFILE_ANNOTATION } from '../../oci/index.js';
import { PLATFORM_ANNOTATION, type OciRuntime } from '../../engine/oci/index.js';

/** The oldest runtime-spec version whose configs hutch runs. */
const OCI_VERSION_MIN = '1.0.0';

/** hutch's features document: runc's shape (ociVersionMin/Max, hooks, mountOptions, linux, annotations). */
export async function runtimeFeatures(runtime: OciRuntime): Promise<Record<string, unknown>> {
  const { features: reported, version, specVersion } = await runtime.executorFeatures();
  // An executor without `features` (crun 1.8): the spec version its --version names, and the hooks every executor runs.
  const features = reported ?? { ociVersionMin: OCI_VERSION_MIN, ociVersionMax: specVersion ?? OCI_VERSION_MIN, hooks: [...HOOK_KINDS] };
  features.ociVersionMin = OCI_VERSION_MIN;
  features.annotations = {
    ...(features.annotations as Record<string, string> | undefined ?? {}),
    'dev.hutch.executor': version,
    'dev.hutch.ociVersion.accepted': '1.x',
    [`${PROFILE_ANNOTATION}.values`]: 'off,default,strict',
    [`${PLATFORM_ANNOTATION}.values`]: 'container',
    'dev.hutch.pods': 'io.kubernetes.cri.container-type,io.kubernetes.cri.sandbox-id,io.kubernetes.cri-o.ContainerType,io.kubernetes.cri-o.SandboxID',
    'dev.hutch.checkpoint': 'unsupported',
  };
  return features;
}
