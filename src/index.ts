export { BaseCache, MAX_TIMEOUT } from './base.js';
export type { Awaitable, FillTurn, GetOrSetOptions, LockSettings, TimeToLive, Timeout, TimeoutOptions, VersionOption } from './base.js';
export { FILL_WITHOUT_LOCK, NOT_A_NUMBER } from './base.js';
export { CacheIncidentWarning, CacheTimeoutError, CircuitBreaker } from './breaker.js';
export type { CacheIncident, CacheOperation, CacheRecovery, IncidentListener } from './breaker.js';
export type {
  BackendClass,
  BackendConfig,
  BreakerOptions,
  BuiltinBackend,
  CacheConfig,
  CacheParams,
  CullingOptions,
  CustomConfig,
  DatabaseBackendOptions,
  DatabaseConfig,
  DummyConfig,
  FileConfig,
  LocMemConfig,
  LockOptions,
  MemcachedBackendOptions,
  MemcachedConfig,
  ModuleSpecifier,
  RedisBackendOptions,
  RedisConfig,
} from './config.js';
export { NearCache } from './near-cache.js';
export type { BoundedNearCacheOptions, NearCacheOptions, TimedValue } from './near-cache.js';
export { CacheRegistry, caches } from './registry.js';
export type { CacheRegistryEvents } from './registry.js';
export { LocMemCache } from './backends/locmem.js';
export { DatabaseCache } from './backends/database.js';
export type { CreateTableResult } from './backends/database.js';
export { DummyCache } from './backends/dummy.js';
export { FileBasedCache } from './backends/file.js';
export { MemcachedCache } from './backends/memcached.js';
export { RedisCache } from './backends/redis.js';
export { defaultKeyFunction } from './keys.js';
export type { KeyFunction } from './keys.js';
export { JSONSerializer, jsonSerializer } from './serializers.js';
export type { Serializer } from './serializers.js';
export {
  CacheKeyWarning,
  CacheTagError,
  InvalidCacheBackendError,
  InvalidCacheKeyError,
  InvalidVaryValueError,
  KeyNotFoundError,
  TemplateSyntaxError,
} from './errors.js';
export { fragmentCache, invalidateFragment, makeTemplateFragmentKey } from './fragments/index.js';
