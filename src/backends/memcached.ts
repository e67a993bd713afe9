import type { Client } from 'memjs';
import { BaseCache, NOT_A_NUMBER, type TimeToLive } from '../base.js';
import { loadClient } from '../clients.js';
import type { CacheParams, MemcachedBackendOptions } from '../config.js';
import { InvalidCacheKeyError } from '../errors.js';
import { memcachedKeyProblems } from '../keys.js';
import { NearCache, nearCacheOption } from '../near-cache.js';
import { decodeValue, encodeValue } from './raw-integers.js';

/** Memcached reads an expiry over 30 days as a Unix time rather than a number of seconds. */
const RELATIVE_LIMIT = 60 * 60 * 24 * 30;
/** As the expiry of incr/decr, tells memcached to fail on a missing key instead of creating it. */
const DO_NOT_CREATE = 0xffffffff;
const silentLogger = { log() {} };

/**
 * What fragcache changes in memjs's defaults, so that a dead server fails an operation at once: one
 * attempt per operation (memjs retries after 200 ms by default). memjs's own 0.5 s timeout stays, a
 * backstop for code that calls the cache: the template tags wait only their breaker's timeout, 50 ms.
 * memjs logs every failure to the console unless given a logger; errors reach callers instead.
 * `options.client` overrides each.
 */
export const MEMCACHED_CLIENT_DEFAULTS = { retries: 1, logger: silentLogger };

/** Django's conversion of a timeout to memcached's expiry field, in whole seconds: null is 0 (never). */
function expiryOf(ttl: TimeToLive): number {
  if (ttl === null) return 0;
  const seconds = Math.ceil(ttl / 1000);
  return seconds > RELATIVE_LIMIT ? Math.floor(Date.now() / 1000) + seconds : seconds;
}

function statusOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Memcached through memjs (binary protocol; it runs on current Node and has no native parts).
 * `location` is one `host:port` or a list of them: keys are spread over the servers by hash, and a
 * server that is down fails only the keys that live on it. Keys memcached cannot store are refused
 * with InvalidCacheKeyError instead of a warning. `options.client` goes to memjs (`timeout`, `retries`,
 * `failover`, `username`/`password`, …).
 *
 * Memcached cannot list keys: `clear()` flushes every server in `location`.
 */
export class MemcachedCache extends BaseCache {
  static readonly optionNames = ['client', 'nearCache'];

  private readonly client: Client;

  constructor(location: string | string[] | undefined, params: CacheParams<MemcachedBackendOptions>) {
    super(location, params);
    const nearCache = nearCacheOption(params.options?.nearCache, 'memcached');
    if (nearCache !== undefined) this.near = new NearCache(nearCache, this.serializer, { toldOfChanges: false });
    const memjs = loadClient<typeof import('memjs')>('memcached', 'memjs');
    const servers = location === undefined ? '127.0.0.1:11211' : Array.isArray(location) ? location.join(',') : location;
    this.client = memjs.Client.create(servers, { ...MEMCACHED_CLIENT_DEFAULTS, ...params.options?.client });
  }

  override validateKey(key: string): void {
    const [problem] = memcachedKeyProblems(key);
    if (problem !== undefined) throw new InvalidCacheKeyError(problem);
  }

  protected async getEntry(key: string): Promise<unknown> {
    const { value } = await this.client.get(key);
    return value === null ? undefined : decodeValue(value, this.serializer);
  }

  /** A value the server refuses (too large) is not stored and the old one is deleted, as in Django. */
  protected async setEntry(key: string, value: unknown, ttl: TimeToLive): Promise<void> {
    await this.store(key, value, ttl);
  }

  private async store(key: string, value: unknown, ttl: TimeToLive): Promise<boolean> {
    const data = encodeValue(value, this.serializer);
    try {
      await this.client.set(key, data, { expires: expiryOf(ttl) });
      return true;
    } catch (error) {
      if (!statusOf(error).includes('Value too large')) throw error;
      await this.client.delete(key);
      return false;
    }
  }

  protected async addEntry(key: string, value: unknown, ttl: TimeToLive): Promise<boolean> {
    try {
      return await this.client.add(key, encodeValue(value, this.serializer), { expires: expiryOf(ttl) });
    } catch (error) {
      if (statusOf(error).includes('Key exists')) return false;
      throw error;
    }
  }

  protected async deleteEntry(key: string): Promise<boolean> {
    return this.client.delete(key);
  }

  protected async hasEntry(key: string): Promise<boolean> {
    return (await this.client.get(key)).value !== null;
  }

  protected async touchEntry(key: string, ttl: TimeToLive): Promise<boolean> {
    return this.client.touch(key, expiryOf(ttl));
  }

  /** The server's atomic incr/decr. Memcached counters are unsigned: decr stops at 0. */
  protected async incrEntry(key: string, delta: number): Promise<number | undefined | typeof NOT_A_NUMBER> {
    const options = { expires: DO_NOT_CREATE };
    try {
      const { value } = delta >= 0 ? await this.client.increment(key, delta, options) : await this.client.decrement(key, -delta, options);
      return value ?? undefined;
    } catch (error) {
      const status = statusOf(error);
      if (status.includes('Key not found')) return undefined;
      if (status.includes('non-numeric')) return NOT_A_NUMBER;
      throw error;
    }
  }

  protected async clearEntries(): Promise<void> {
    await this.client.flush();
  }

  protected override async setEntries(entries: ReadonlyMap<string, unknown>, ttl: TimeToLive): Promise<string[]> {
    const pairs = [...entries];
    const stored = await Promise.all(pairs.map(([key, value]) => this.store(key, value, ttl)));
    return pairs.filter((_, i) => !stored[i]).map(([key]) => key);
  }

  override async close(): Promise<void> {
    await super.close();
    this.client.close();
  }
}
