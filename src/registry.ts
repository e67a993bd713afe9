import { EventEmitter } from 'node:events';
import { BaseCache } from './base.js';
import { warningListener, type CacheIncident, type CacheRecovery, type IncidentListener } from './breaker.js';
import type { BackendClass, BackendConfig, BuiltinBackend, CacheConfig, CustomConfig } from './config.js';
import { DatabaseCache } from './backends/database.js';
import { DummyCache } from './backends/dummy.js';
import { FileBasedCache } from './backends/file.js';
import { LocMemCache } from './backends/locmem.js';
import { MemcachedCache } from './backends/memcached.js';
import { RedisCache } from './backends/redis.js';
import { InvalidCacheBackendError } from './errors.js';
import type { KeyFunction } from './keys.js';
import { loadExport } from './modules.js';
import { unknownName } from './settings.js';
import type { Serializer } from './serializers.js';

/** A built-in backend class, which names the options it takes. */
type BuiltinClass = BackendClass & { readonly optionNames: readonly string[] };

const builtinBackends = new Map<string, BuiltinClass>(Object.entries({
  locmem: LocMemCache,
  dummy: DummyCache,
  redis: RedisCache,
  file: FileBasedCache,
  memcached: MemcachedCache,
  database: DatabaseCache,
} satisfies Record<BuiltinBackend, BuiltinClass>));

/** Whether `backend` names a built-in backend (rather than a module specifier or a class). */
export function isBuiltinBackend(backend: unknown): boolean {
  return typeof backend === 'string' && builtinBackends.has(backend);
}

/**
 * Refuses options a built-in backend does not know, so that a misspelt option in a JSON config (which
 * nothing type-checks) fails at once instead of being ignored.
 */
function checkOptions(backend: string, options: object | undefined, known: readonly string[]): void {
  const name = unknownName(options ?? {}, known);
  if (name === undefined) return;
  const allowed = known.length === 0 ? 'it takes none' : `it takes ${known.join(', ')}`;
  const advice = known.includes('client') ? '; options of the client library go under options.client' : '';
  throw new TypeError(`Unknown option '${name}' for the ${backend} backend: ${allowed}${advice}`);
}

/** A class extending BaseCache; the registry passes it the options of its config, whatever they are. */
function isBackendClass(value: unknown): value is BackendClass<object> {
  return typeof value === 'function' && value.prototype instanceof BaseCache;
}

/**
 * Loads a module specifier, reporting failure as the registry's error: the first line of the reason
 * (Node's require stack names our loader, not the user's code), after `context` when given.
 */
function loadSpecified(spec: string, context?: string): unknown {
  try {
    return loadExport(spec);
  } catch (error) {
    const reason = error instanceof Error ? error.message.split('\n', 1)[0] : String(error);
    throw new InvalidCacheBackendError(`Could not find backend '${spec}': ${context === undefined ? '' : `${context}: `}${reason}`, { cause: error });
  }
}

/** A backend named like a built-in one (no path, no `#Export`) that is none is most likely misspelt. */
function looksBuiltin(spec: string): boolean {
  return !/^[./]|#/.test(spec);
}

/** The backend class a config names; a built-in one first checks the config's options. */
function resolveBackend(spec: string | BackendClass, options: object | undefined): BackendClass<object> {
  if (typeof spec !== 'string') {
    if (isBackendClass(spec)) return spec;
    throw new InvalidCacheBackendError(`Could not find backend '${String(spec)}': not a class extending BaseCache`);
  }
  const builtin = builtinBackends.get(spec);
  if (builtin !== undefined) checkOptions(spec, options, builtin.optionNames);
  const context = looksBuiltin(spec) ? `not a built-in backend (${[...builtinBackends.keys()].join(', ')}), nor a module that loads` : undefined;
  const loaded = builtin ?? loadSpecified(spec, context);
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

function isSerializer(value: unknown): value is Serializer {
  return typeof value === 'object' && value !== null && 'dumps' in value && typeof value.dumps === 'function' && 'loads' in value && typeof value.loads === 'function';
}

/** A serializer, or a module export that is one or a class that makes one. */
function resolveSerializer(spec: Serializer | string | undefined): Serializer | undefined {
  if (typeof spec !== 'string') return spec;
  const loaded = loadSpecified(spec);
  const serializer = typeof loaded === 'function' && isSerializer(loaded.prototype) ? Reflect.construct(loaded, []) : loaded;
  if (!isSerializer(serializer)) {
    throw new InvalidCacheBackendError(`Could not find backend '${spec}': the serializer has no dumps and loads methods`);
  }
  return serializer;
}

/** What a cache's config may set; a backend's own options go under `options`. */
const CACHE_SETTINGS = Object.keys({
  backend: true,
  location: true,
  timeout: true,
  keyPrefix: true,
  version: true,
  keyFunction: true,
  serializer: true,
  breaker: true,
  lock: true,
  options: true,
} satisfies Record<keyof CustomConfig, true>);

/** Refuses a setting no cache takes, such as a misspelt `timout`, which would otherwise be ignored. */
function checkSettings(alias: string, config: BackendConfig): void {
  const name = unknownName(config, CACHE_SETTINGS);
  if (name === undefined) return;
  throw new TypeError(`Unknown setting '${name}' in cache '${alias}': a cache takes ${CACHE_SETTINGS.join(', ')}; a backend's own options go under options`);
}

function checkedConfig(config: CacheConfig): CacheConfig {
  if (!Object.hasOwn(config, 'default')) {
    throw new InvalidCacheBackendError("You must define a 'default' cache in your cache configuration.");
  }
  for (const [alias, settings] of Object.entries(config)) {
    if (typeof settings !== 'object' || settings === null || Array.isArray(settings)) {
      throw new InvalidCacheBackendError(`The cache '${alias}' must be an object of its settings, such as { "backend": "locmem" }, not ${JSON.stringify(settings)}`);
    }
  }
  return config;
}

/** The events of a registry: each outage of one of its caches, as the template tags met it, and its end. */
export interface CacheRegistryEvents {
  /** A cache failed or timed out, the first time in an outage: pages render without it meanwhile. */
  incident: [incident: CacheIncident];
  /** A cache answered again after an outage. */
  recovery: [recovery: CacheRecovery];
}

/**
 * The configured caches, each created on first use and then shared: the same alias always gives the
 * same instance, as Django's `caches[alias]` does.
 *
 * It reports the outages its caches go through, once each (docs/operations.md): listen to `incident`
 * and `recovery` to log or count them; with no listener, each is a process warning.
 */
export class CacheRegistry extends EventEmitter<CacheRegistryEvents> {
  private config: CacheConfig;
  private readonly created = new Map<string, BaseCache>();
  private readonly reporter: IncidentListener = {
    incident: (incident) => {
      if (!this.emit('incident', incident)) warningListener.incident(incident);
    },
    recovery: (recovery) => {
      if (!this.emit('recovery', recovery)) warningListener.recovery(recovery);
    },
  };

  constructor(config: CacheConfig = { default: { backend: 'locmem' } }) {
    super();
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
    const config = this.config[alias]!;
    checkSettings(alias, config);
    const { backend, location, keyFunction, serializer, ...params } = config;
    const Backend = resolveBackend(backend, params.options);
    const cache = new Backend(location, { ...params, keyFunction: resolveKeyFunction(keyFunction), serializer: resolveSerializer(serializer) });
    cache.breaker.reportTo(this.reporter, alias);
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
