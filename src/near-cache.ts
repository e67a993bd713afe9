/**
 * A near cache: the values a process read recently from a shared backend, kept in its own memory so
 * that the next read of each answers synchronously, with no round trip. What keeps it from serving a
 * value another process has since changed is its backend's business (docs/backends/redis.md): Redis
 * tells it which keys changed (server-assisted client-side caching), and the other shared backends
 * bound how long it serves an entry without asking (`maxStaleness`).
 *
 * BaseCache reads through it and makes every write of this process forget the key, before and after
 * the write, so that a process always reads its own writes.
 */
import { LRUCache } from 'lru-cache';
import type { Serializer } from './serializers.js';
import { settingsOf } from './settings.js';
import { fromSlot, slotBytes, toSlot, type Slot } from './slots.js';
import { isStaleEnvelope } from './stale.js';

/** How big a near cache may grow. */
export interface NearCacheOptions {
  /** How many entries it holds at most; the least recently used goes first. Default 10 000. */
  maxEntries?: number;
  /** How many bytes of keys and values it holds at most (text counts two bytes a character). Default 32 MiB. */
  maxBytes?: number;
}

/** The near cache of a backend that cannot tell which keys changed (memcached, database). */
export interface BoundedNearCacheOptions extends NearCacheOptions {
  /**
   * Milliseconds an entry is served from memory, counted from when the read that brought it was sent:
   * how stale a read may be after another process changes the key (or after it expires). Default 1000.
   */
  maxStaleness?: number;
}

/**
 * The near cache a config asks for: `undefined` (or `false`) for none, `true` for the defaults, or its
 * options. Anything else is refused, before the backend opens a connection.
 */
export function nearCacheOption<T extends NearCacheOptions>(value: T | boolean | undefined, backend: string): T | true | undefined {
  if (value === undefined || value === false) return undefined;
  if (value === true || (typeof value === 'object' && value !== null)) return value;
  throw new TypeError(`The ${backend} backend's nearCache must be true, false or an object of its options, not ${String(value)}`);
}

/** What a read for the near cache found: the value, and for how many more milliseconds it lives. */
export interface TimedValue {
  readonly value: unknown;
  /** `null` never expires; `undefined` when the backend does not say. */
  readonly ttl: number | null | undefined;
}

const DEFAULT_MAX_ENTRIES = 10_000;
const DEFAULT_MAX_BYTES = 32 * 1024 * 1024;
const DEFAULT_MAX_STALENESS = 1000;
/** What an entry costs besides its key and value (lru-cache's slots, the Map entry), roughly. */
const ENTRY_OVERHEAD = 64;

/**
 * Starts *untrusted*: its entries are not served until its backend says they can be (`trust()`), and
 * whenever the backend can no longer say (`distrust()`), they stop being served at once. While it is
 * untrusted, reads go to the backend and keep nothing; the entries it held are kept for `outageCopy`.
 *
 * A read is kept only if nothing told the near cache to forget its key while the read was under way:
 * the news that a key changed may arrive before the reply that read its old value.
 */
export class NearCache {
  private readonly entries: LRUCache<string, Slot>;
  /** The token of the read under way for each key; a read whose token is gone must not be stored. */
  private readonly readsUnderWay = new Map<string, number>();
  private lastToken = 0;
  private trusted: boolean;
  /** The longest an entry is served, in ms, when its backend does not tell of changes; 0 when it does. */
  private readonly maxStaleness: number;

  constructor(
    options: BoundedNearCacheOptions | true,
    private readonly serializer: Serializer,
    { toldOfChanges }: { readonly toldOfChanges: boolean },
  ) {
    // A near cache told of every change has no staleness to bound.
    const names: ReadonlyArray<keyof BoundedNearCacheOptions> = toldOfChanges ? ['maxEntries', 'maxBytes'] : ['maxEntries', 'maxBytes', 'maxStaleness'];
    const setting = settingsOf('options.nearCache', options === true ? undefined : options, names, 'true, false or ');
    this.entries = new LRUCache<string, Slot>({
      max: Math.ceil(setting('maxEntries', 'count', DEFAULT_MAX_ENTRIES)),
      maxSize: Math.ceil(setting('maxBytes', 'count', DEFAULT_MAX_BYTES)),
    });
    this.maxStaleness = toldOfChanges ? 0 : setting('maxStaleness', 'milliseconds', DEFAULT_MAX_STALENESS);
    this.trusted = !toldOfChanges;
  }

  /** Whether its entries are served, and reads through it are kept. */
  get isTrusted(): boolean {
    return this.trusted;
  }

  /** The value held for `key` while trusted; `undefined` when none is (or it is not trusted). */
  get(key: string): unknown {
    return this.trusted ? this.held(key) : undefined;
  }

  /**
   * The value held for `key`, whatever the trust. One the serializer cannot read back is dropped and a
   * miss: the template tags read the near cache outside their guard, and a page must not fail on it.
   */
  private held(key: string): unknown {
    const slot = this.entries.get(key);
    if (slot === undefined) return undefined;
    try {
      return fromSlot(slot, this.serializer);
    } catch {
      this.entries.delete(key);
      return undefined;
    }
  }

  /**
   * Reads `key` with `read` and keeps what it found, unless the key was forgotten meanwhile or the near
   * cache stopped being trusted. Resolves to the value (`undefined` for a miss).
   */
  async readThrough(key: string, read: () => Promise<TimedValue | undefined>): Promise<unknown> {
    const token = ++this.lastToken;
    this.readsUnderWay.set(key, token);
    const started = Date.now();
    let found: TimedValue | undefined;
    let current = false;
    try {
      found = await read();
    } finally {
      current = this.readsUnderWay.get(key) === token;
      if (current) this.readsUnderWay.delete(key);
    }
    if (found === undefined) return undefined;
    if (current && this.trusted) this.keep(key, found, started);
    return found.value;
  }

  private keep(key: string, { value, ttl }: TimedValue, started: number): void {
    // Both limits count from when the read was sent: the value may have changed any time after that.
    let lifetime = typeof ttl === 'number' ? started + ttl - Date.now() : Infinity;
    if (this.maxStaleness > 0) lifetime = Math.min(lifetime, started + this.maxStaleness - Date.now());
    if (lifetime <= 0) return;
    const slot = toSlot(value, this.serializer);
    // lru-cache's ttl 0 is "never expires".
    this.entries.set(key, slot, { ttl: lifetime === Infinity ? 0 : Math.ceil(lifetime), size: ENTRY_OVERHEAD + 2 * key.length + slotBytes(slot) });
  }

  /** Drops `key`, and any read of it under way will not be kept. */
  forget(key: string): void {
    this.entries.delete(key);
    this.readsUnderWay.delete(key);
  }

  /** Drops everything, and no read under way will be kept. */
  forgetAll(): void {
    this.entries.clear();
    this.readsUnderWay.clear();
  }

  /** Stops serving entries and drops them: the cache is closed. */
  close(): void {
    this.distrust();
    this.entries.clear();
  }

  /** Stops serving entries: the backend can no longer tell of changes. They are kept as outage copies. */
  distrust(): void {
    this.trusted = false;
    this.readsUnderWay.clear();
  }

  /** Serves entries again, from empty: any change may have gone untold while it was distrusted. */
  trust(): void {
    this.entries.clear();
    this.readsUnderWay.clear();
    this.trusted = true;
  }

  /**
   * While distrusted, the copy of `key` that was held when its backend went away, if it was stored with
   * a grace period (`stale=`, getOrSet's `stale`): its writer accepted serving it stale. Never past the
   * time the backend would have kept it.
   */
  outageCopy(key: string): unknown {
    if (this.trusted) return undefined;
    const value = this.held(key);
    return isStaleEnvelope(value) ? value : undefined;
  }

  /** How many entries it holds, for tests and the bench. */
  get size(): number {
    return this.entries.size;
  }
}
