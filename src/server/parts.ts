// The server's parts from the lifetime work: events, metrics, TTLs and recovery, the warm pool.
export { EventBus, type LifecycleEvent, type LifecycleEventType } from './events.js';
export { Metrics, METRICS_CONTENT_TYPE } from './metrics.js';
export { LifetimeKeeper, TTL_LABEL, MANAGED_LABEL, POOL_LABEL } from './lifetime.js';
export { WarmPool, type PoolSpec } from './pool.js';
