// The OCI layer: runtime-spec types, validation with precise errors, spec generation and
// hutch's hardening profiles. Imports nothing from other layers but errors.ts.
export * from './types.js';
export {
  ALL_CAPABILITIES, DEFAULT_CAPABILITIES, DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS,
  IO_URING_ANNOTATION, PROFILE_ANNOTATION, type SeccompOptions, type SeccompProfileName, allowedSyscalls, defaultSeccompProfile,
  profileFromAnnotations, seccompArchitectures,
} from './hardening.js';
export {
  DEFAULT_RLIMITS, OCI_VERSION, type SandboxSpecInput, type SpecTemplateOptions,
  buildSandboxSpec, defaultMounts, specTemplate, specToJson,
} from './generate.js';
export {
  RLIMIT_TYPES, type SpecProblem, type ValidateOptions, findSpecProblems, loadBundleSpec,
  parseSpec, validateSpec,
} from './validate.js';
