export { BaseCache, MAX_TIMEOUT } from './base.js';
export type { Awaitable, TimeToLive, Timeout, TimeoutOptions, VersionOption } from './base.js';
export { NOT_A_NUMBER } from './base.js';
export type {
  BackendClass,
  BackendConfig,
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
  MemcachedBackendOptions,
  MemcachedConfig,
  ModuleSpecifier,
  RedisBackendOptions,
  RedisConfig,
} from './config.js';
export { CacheRegistry, caches } from './registry.js';
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
