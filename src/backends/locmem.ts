import { LRUCache } from 'lru-cache';
import { BaseCache, Culling, NOT_A_NUMBER, type TimeToLive } from '../base.js';
import type { CacheParams, CullingOptions } from '../config.js';
import { fromSlot, toSlot, type Slot } from '../slots.js';

/** Stores shared by every cache with the same `location`, like Django's module-level dictionaries. */
const stores = new Map<string, LRUCache<string, Slot>>();

/** lru-cache's TTL: 0 means "never expires". */
function lruTtl(ttl: TimeToLive): number {
  return ttl ?? 0;
}

/**
 * The process-local cache, on lru-cache. Entries are kept in least-recently-used order (get, set and
 * incr refresh it); when the count reaches `maxEntries`, a cull drops the least recently used
 * `floor(count / cullFrequency)` entries (all when `cullFrequency` is 0), as Django's LocMemCache does.
 *
 * Values are held as src/slots.ts says: immutable ones as they are, anything else serialized.
 * Every hook answers synchronously.
 */
export class LocMemCache extends BaseCache {
  static readonly optionNames = Culling.optionNames;

  private readonly store: LRUCache<string, Slot>;
  private readonly culling: Culling;

  constructor(location: string | string[] | undefined, params: CacheParams<CullingOptions>) {
    super(location, params);
    this.culling = new Culling(params.options);
    const name = Array.isArray(location) ? location.join(',') : (location ?? '');
    let store = stores.get(name);
    if (store === undefined) {
      // max is a backstop: the cull below runs first and keeps the count under it.
      store = new LRUCache<string, Slot>({ max: Math.max(1, this.culling.maxEntries) });
      stores.set(name, store);
    }
    this.store = store;
  }

  private cullIfFull(): void {
    const doomed = this.culling.toRemove(this.store.size);
    if (doomed === this.store.size) this.store.clear();
    else for (let count = doomed; count > 0; count--) this.store.pop();
  }

  protected getEntry(key: string): unknown {
    return fromSlot(this.store.get(key), this.serializer);
  }

  protected setEntry(key: string, value: unknown, ttl: TimeToLive): void {
    const slot = toSlot(value, this.serializer);
    this.cullIfFull();
    this.store.set(key, slot, { ttl: lruTtl(ttl) });
  }

  protected addEntry(key: string, value: unknown, ttl: TimeToLive): boolean {
    if (this.store.has(key)) return false;
    this.setEntry(key, value, ttl);
    return true;
  }

  protected deleteEntry(key: string): boolean {
    // has() first: lru-cache's delete() also reports entries that have expired but not been purged.
    return this.store.has(key) && this.store.delete(key);
  }

  protected hasEntry(key: string): boolean {
    return this.store.has(key);
  }

  protected touchEntry(key: string, ttl: TimeToLive): boolean {
    const slot = this.store.get(key);
    if (slot === undefined) return false;
    this.store.set(key, slot, { ttl: lruTtl(ttl) });
    return true;
  }

  protected incrEntry(key: string, delta: number): number | undefined | typeof NOT_A_NUMBER {
    const slot = this.store.get(key);
    if (slot === undefined) return undefined;
    if (typeof slot !== 'number') return NOT_A_NUMBER;
    const value = slot + delta;
    this.store.set(key, value, { noUpdateTTL: true });
    return value;
  }

  protected clearEntries(): void {
    this.store.clear();
  }
}
