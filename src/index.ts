export { BaseCache, MAX_TIMEOUT } from './base.js';
export type {
  Awaitable,
  BackendClass,
  BackendConfig,
  BackendOptions,
  Timeout,
  TimeoutOptions,
  VersionOption,
} from './base.js';
export { CacheRegistry, caches } from './registry.js';
export type { CacheConfig } from './registry.js';
export { LocMemCache } from './backends/locmem.js';
export { DatabaseCache } from './backends/database.js';
export type { CreateTableResult } from './backends/database.js';
export { DummyCache } from './backends/dummy.js';
export { FileBasedCache } from './backends/file.js';
export { MemcachedCache } from './backends/memcached.js';
export { RedisCache } from './backends/redis.js';
export type { RedisBackendOptions } from './backends/redis.js';
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
  TemplateSyntaxError,
} from './errors.js';
export { fragmentCache, invalidateFragment, makeTemplateFragmentKey } from './fragments/index.js';
