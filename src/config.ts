/**
 * The configuration users write, and what a backend's constructor receives from it. A cache's config is
 * a union keyed on `backend`, so a misspelt backend name or option is a type error; in a JSON config,
 * which nothing type-checks, the backends refuse unknown options at runtime with the same advice.
 */
import type { ClusterOptions, RedisOptions } from 'ioredis';
import type { ClientOptions as MemjsClientOptions, ServerOptions as MemjsServerOptions } from 'memjs';
import type { PoolConfig } from 'pg';
import type { BaseCache, Timeout } from './base.js';
import type { KeyFunction } from './keys.js';
import type { BoundedNearCacheOptions, NearCacheOptions } from './near-cache.js';
import type { Serializer } from './serializers.js';

/**
 * A module specifier naming an export: `"./path/to/module.js#Export"`, `"package#Export"`, or a path
 * (`"./module.js"`, `"/abs/module.js"`) for its default export. Resolved from the working directory and
 * loaded synchronously when the cache is first created.
 */
export type ModuleSpecifier = `${string}#${string}` | `.${string}` | `/${string}`;

/** What a backend's constructor receives besides its location: the config with every specifier loaded. */
export interface CacheParams<Options extends object = object> {
  /** Default timeout in seconds; `null` never expires; 0 or less expires at once. Default 300. */
  timeout?: Timeout;
  /** Prepended to every key by the default key function, to share one store between caches. Default `''`. */
  keyPrefix?: string;
  /** The version every key gets unless a call passes its own. Default 1. */
  version?: number;
  /** Builds the stored key. Default `${keyPrefix}:${version}:${key}`. */
  keyFunction?: KeyFunction;
  /** Turns values into text or bytes and back. Default JSON, which never runs code on load. */
  serializer?: Serializer;
  /** The tags' timeout and circuit breaker. Default `{ timeout: 50, failureThreshold: 3, retryAfter: 500 }`. */
  breaker?: BreakerOptions;
  /** The render lock's settings, `true` for the defaults. Default off. */
  lock?: LockOptions | boolean;
  /** The backend's own options. */
  options?: Options;
}

/**
 * The class of a backend taking `Options`, as the registry constructs it: `new Backend(location, params)`.
 * Without a type argument, any backend class, whatever options it takes.
 */
export type BackendClass<Options extends object = never> = new (location: string | string[] | undefined, params: CacheParams<Options>) => BaseCache;

/** How the template tags bound and skip a failing cache (docs/operations.md). */
export interface BreakerOptions {
  /** Consecutive failures that open the circuit: the backend is then skipped, with no round trip. Default 3. */
  failureThreshold?: number;
  /**
   * Milliseconds an open circuit skips the backend before it lets one operation through as a probe;
   * the probe's success closes it, so hits resume within about this long of a recovery. Default 500.
   */
  retryAfter?: number;
  /**
   * Milliseconds a template tag waits for one operation of this cache (a read, a write, taking a lock)
   * before it goes on without it, counting a failure. Time the process spends busy elsewhere (a long
   * render holding the event loop) is not counted. Default 50.
   */
  timeout?: number;
}

/**
 * The render lock of a shared cache (docs/operations.md): on a miss, one process renders a fragment (or
 * runs a `getOrSet` function) while the others wait for its result.
 */
export interface LockOptions {
  /** Milliseconds a lock lasts when its holder never releases it (it crashed or hung). Default 5000. */
  lease?: number;
  /** Milliseconds a process waits for another's result before it renders itself. Default 3000. */
  wait?: number;
  /** Milliseconds between two looks for that result (or for a free lock). Default 25. */
  pollInterval?: number;
}

/** Settings every backend takes: Django's CACHES entry, with specifiers where a JSON file needs them. */
interface CommonConfig {
  /** Default timeout in seconds; `null` never expires; 0 or less expires at once. Default 300. */
  timeout?: Timeout;
  /** Prepended to every key by the default key function, to share one store between caches. Default `''`. */
  keyPrefix?: string;
  /** The version every key gets unless a call passes its own. Default 1. */
  version?: number;
  /** Builds the stored key, or names a module export that does. Default `${keyPrefix}:${version}:${key}`. */
  keyFunction?: KeyFunction | ModuleSpecifier;
  /**
   * Turns values into text or bytes and back, or names a module export that does (an object with
   * `dumps` and `loads`, or a class that makes one). Default JSON, which never runs code on load.
   */
  serializer?: Serializer | ModuleSpecifier;
  /**
   * How the template tags bound and skip a failing backend: each operation's timeout, and the circuit
   * breaker. Default `{ timeout: 50, failureThreshold: 3, retryAfter: 500 }`.
   */
  breaker?: BreakerOptions;
  /** Lets one process fill a missing key while others wait for it; `true` for the defaults. Default off. */
  lock?: LockOptions | boolean;
}

/** The options of the backends that cull themselves when full (locmem, file, database). */
export interface CullingOptions {
  /** How many entries the cache holds before a cull. Default 300. */
  maxEntries?: number;
  /** A cull removes `1 / cullFrequency` of the entries; 0 removes them all. Default 3. */
  cullFrequency?: number;
}

/** The process-local cache on lru-cache. */
export interface LocMemConfig extends CommonConfig {
  backend: 'locmem';
  /** Caches with the same location share one store. Default `''`. */
  location?: string;
  options?: CullingOptions;
}

/** Caches nothing, with the whole API in place. */
export interface DummyConfig extends CommonConfig {
  backend: 'dummy';
  location?: string;
  options?: Record<string, never>;
}

/** One file per key in a directory. */
export interface FileConfig extends CommonConfig {
  backend: 'file';
  /** The directory; created 0700 if missing. */
  location: string;
  options?: CullingOptions;
}

/** The redis backend's options. */
export interface RedisBackendOptions {
  /** ioredis options for every connection: `password`, `tls`, `connectTimeout`, `db`… Default ioredis's own. */
  client?: RedisOptions;
  /** Treat `location` as the seed nodes of a Redis Cluster. Default false. */
  cluster?: boolean;
  /** ioredis Cluster options, with `cluster`; `client` becomes their `redisOptions`. Default ioredis's own. */
  clusterOptions?: Omit<ClusterOptions, 'redisOptions'>;
  /**
   * The SCAN pattern `clear()` deletes. Default: the keys the default key function makes for this cache
   * (`<keyPrefix>:<version>:*`); required with a custom key function.
   */
  keyPattern?: string;
  /**
   * Keeps recently read values in this process, told by Redis which keys change (server-assisted
   * client-side caching), so that a hit answers from memory; `true` for the default sizes. Opens two
   * more connections to the primary. Not with `cluster`. Default off (docs/backends/redis.md).
   */
  nearCache?: NearCacheOptions | boolean;
}

/** Redis through ioredis (an optional peer dependency: `npm install ioredis`). */
export interface RedisConfig extends CommonConfig {
  backend: 'redis';
  /** A URL (`redis://user:pass@host:port/db`, `rediss://` for TLS) or a list: writes go to the first. Default `redis://127.0.0.1:6379`. */
  location?: string | string[];
  options?: RedisBackendOptions;
}

/** The memcached backend's options. */
export interface MemcachedBackendOptions {
  /** memjs client options: `timeout`, `retries`, `failover`, `username`, `password`… Default memjs's own. */
  client?: MemjsClientOptions & MemjsServerOptions;
  /**
   * Keeps recently read values in this process for at most `maxStaleness` ms (memcached cannot tell
   * what changed), so that a hit answers from memory; `true` for the defaults. Default off.
   */
  nearCache?: BoundedNearCacheOptions | boolean;
}

/** Memcached through memjs (an optional peer dependency: `npm install memjs`). */
export interface MemcachedConfig extends CommonConfig {
  backend: 'memcached';
  /** `host:port`, or a list that keys are spread over. Default `127.0.0.1:11211`. */
  location?: string | string[];
  options?: MemcachedBackendOptions;
}

/** The database backend's options. */
export interface DatabaseBackendOptions extends CullingOptions {
  /** pg Pool options: `connectionString`, `max`, `ssl`… Default pg's own and its PG* environment variables. */
  client?: PoolConfig;
  /**
   * Keeps recently read values in this process for at most `maxStaleness` ms, so that a hit answers
   * from memory; `true` for the defaults. Default off.
   */
  nearCache?: BoundedNearCacheOptions | boolean;
}

/** PostgreSQL through pg (an optional peer dependency: `npm install pg`). */
export interface DatabaseConfig extends CommonConfig {
  backend: 'database';
  /** The table; create it with `fragcache createcachetable`. */
  location: string;
  options?: DatabaseBackendOptions;
}

/** A backend of your own: a class extending BaseCache, or a module specifier naming one. */
export interface CustomConfig extends CommonConfig {
  backend: ModuleSpecifier | BackendClass;
  location?: string | string[];
  /** The backend's own options, as its class defines them. */
  options?: object;
}

/** One cache's configuration. */
export type BackendConfig = LocMemConfig | DummyConfig | FileConfig | RedisConfig | MemcachedConfig | DatabaseConfig | CustomConfig;

/** The names of the built-in backends. */
export type BuiltinBackend = Exclude<BackendConfig['backend'], CustomConfig['backend']>;

/** Alias → configuration; must define `default`. */
export type CacheConfig = Record<string, BackendConfig>;
