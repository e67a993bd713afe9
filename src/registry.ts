import { BaseCache, type BackendClass, type BackendConfig } from './base.js';
import { DatabaseCache } from './backends/database.js';
import { DummyCache } from './backends/dummy.js';
import { FileBasedCache } from './backends/file.js';
import { LocMemCache } from './backends/locmem.js';
import { MemcachedCache } from './backends/memcached.js';
import { RedisCache } from './backends/redis.js';
import { InvalidCacheBackendError } from './errors.js';
import type { KeyFunction } from './keys.js';
import { loadExport } from './modules.js';

/** Alias → backend configuration; must define `default`. */
export type CacheConfig = Record<string, BackendConfig>;

const builtinBackends: Readonly<Record<string, BackendClass>> = {
  locmem: LocMemCache,
  dummy: DummyCache,
  redis: RedisCache,
  file: FileBasedCache,
  memcached: MemcachedCache,
  database: DatabaseCache,
};

function isBackendClass(value: unknown): value is BackendClass {
  return typeof value === 'function' && value.prototype instanceof BaseCache;
}

/** Loads a module specifier, reporting failure as the registry's error. */
function loadSpecified(spec: string): unknown {
  try {
    return loadExport(spec);
  } catch (error) {
    throw new InvalidCacheBackendError(`Could not find backend '${spec}': ${(error as Error).message}`, { cause: error });
  }
}

function resolveBackend(spec: string | BackendClass): BackendClass {
  if (typeof spec !== 'string') {
    if (isBackendClass(spec)) return spec;
    throw new InvalidCacheBackendError(`Could not find backend '${String(spec)}': not a class extending BaseCache`);
  }
  const builtin = Object.hasOwn(builtinBackends, spec) ? builtinBackends[spec] : undefined;
  if (builtin) return builtin;
  const loaded = loadSpecified(spec);
  if (!isBackendClass(loaded)) {
    throw new InvalidCacheBackendError(`Could not find backend '${spec}': it is not a class extending BaseCache`);
  }
  return loaded;
}

function resolveKeyFunction(spec: KeyFunction | string | undefined): KeyFunction | undefined {
  if (typeof spec !== 'string') return spec;
  const loaded = loadSpecified(spec);
  if (typeof loaded !== 'function') {
    throw new InvalidCacheBackendError(`Could not find backend '${spec}': the key function is not a function`);
  }
  return loaded as KeyFunction;
}

function checkedConfig(config: CacheConfig): CacheConfig {
  if (!Object.hasOwn(config, 'default')) {
    throw new InvalidCacheBackendError("You must define a 'default' cache in your cache configuration.");
  }
  return config;
}

/**
 * The configured caches, each created on first use and then shared: the same alias always gives the
 * same instance, as Django's `caches[alias]` does.
 */
export class CacheRegistry {
  private config: CacheConfig;
  private readonly created = new Map<string, BaseCache>();

  constructor(config: CacheConfig = { default: { backend: 'locmem' } }) {
    this.config = checkedConfig(config);
  }

  /**
   * Replaces the configuration. Caches created under the old one are closed in the background; to wait
   * for that, `await registry.close()` first.
   */
  configure(config: CacheConfig): void {
    this.config = checkedConfig(config);
    const replaced = [...this.created.values()];
    this.created.clear();
    for (const cache of replaced) {
      cache.close().catch((error: unknown) => process.emitWarning(`fragcache: closing a replaced cache failed: ${String(error)}`));
    }
  }

  has(alias: string): boolean {
    return Object.hasOwn(this.config, alias);
  }

  get(alias: string): BaseCache {
    const existing = this.created.get(alias);
    if (existing) return existing;
    if (!this.has(alias)) throw new InvalidCacheBackendError(`The connection '${alias}' doesn't exist.`);
    const params = this.config[alias]!;
    const Backend = resolveBackend(params.backend);
    const cache = new Backend(params.location, { ...params, keyFunction: resolveKeyFunction(params.keyFunction) });
    this.created.set(alias, cache);
    return cache;
  }

  get default(): BaseCache {
    return this.get('default');
  }

  /** Every configured cache (creating them), or only those already created. */
  all(opts?: { initializedOnly?: boolean }): BaseCache[] {
    if (opts?.initializedOnly) return [...this.created.values()];
    return Object.keys(this.config).map((alias) => this.get(alias));
  }

  /** Closes every cache created so far; they are created anew on next use. */
  async close(): Promise<void> {
    const open = [...this.created.values()];
    this.created.clear();
    await Promise.all(open.map((cache) => cache.close()));
  }
}

/** The process-wide registry, starting with an in-memory `default`. */
export const caches = new CacheRegistry();
