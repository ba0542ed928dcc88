// Isolation platforms behind one interface (docs/platforms.md). Only types and the registry here:
// a platform's code is loaded when a sandbox needs it.
export * from './types.js';
export { builtinPlatforms, platformEntry, type PlatformEntry, type PlatformOptions, type PlatformRegistry } from './registry.js';
