// Isolation platforms behind one interface.
export * from './types.js';
export { ContainerPlatform, processAlive, makeExecutor, OciExecutor, ensureAgentRuntime, installDir } from './container/index.js';
