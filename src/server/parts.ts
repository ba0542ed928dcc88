// The server's parts that the lifetime work provides: events, metrics, TTLs, the warm pool.
export { EventBus, Metrics, LifetimeKeeper, WarmPool, TTL_LABEL, MANAGED_LABEL, type LifecycleEvent, type LifecycleEventType, type PoolSpec } from './interim.js';
/** The label that marks a warm pool's sandbox that is not claimed yet. */
export const POOL_LABEL = 'dev.hutch.pool';
