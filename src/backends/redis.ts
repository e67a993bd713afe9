import calculateSlot from 'cluster-key-slot';
import type { Cluster, Redis, RedisOptions } from 'ioredis';
import { BaseCache, NOT_A_NUMBER, type TimeToLive } from '../base.js';
import { loadClient } from '../clients.js';
import type { CacheParams, RedisBackendOptions } from '../config.js';
import { defaultKeyFunction } from '../keys.js';
import { NearCache, nearCacheOption, type TimedValue } from '../near-cache.js';
import { RedisTracking } from './redis-tracking.js';
import { decodeValue, encodeValue } from './raw-integers.js';

/** Adds to a key only if it exists, in one step, so that incr never creates a missing key. */
const INCR_IF_EXISTS = `if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('INCRBY', KEYS[1], ARGV[1]) end return false`;
/** Deletes a lock only while it still holds the token that took it. */
const RELEASE_IF_HELD = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;
const CLEAR_BATCH = 500;

/**
 * What fragcache changes in ioredis's defaults, so that a dead Redis fails commands at once instead of
 * holding them (docs/operations.md): no offline queue, which would grow without bound during an outage;
 * commands in flight fail when the connection drops; connecting and commands are bounded (backstops for
 * code that calls the cache: the template tags wait only their breaker's timeout, 50 ms); reconnection
 * is tried at least every half second, so hits resume soon after a restart. `options.client` overrides each.
 */
export const REDIS_CLIENT_DEFAULTS = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  connectTimeout: 500,
  commandTimeout: 1000,
  retryStrategy: (attempt: number): number => Math.min(attempt * 50, 500),
} satisfies RedisOptions;

type Client = Redis | Cluster;
type ClientWithCommands = Client & {
  fragcacheIncr(key: string, delta: number): Promise<number | null>;
  fragcacheRelease(key: string, token: string | Buffer): Promise<number>;
};


function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}

function isWrongType(error: unknown): boolean {
  return error instanceof Error && /not an integer|WRONGTYPE/.test(error.message);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Resolves when a client that has never been connected connects, or rejects after `limit` ms: the
 * first commands of a new cache wait for its connection, which later commands never do (with no offline
 * queue, a command to a disconnected client fails at once).
 */
function firstConnection(client: Client, limit: number): () => Promise<void> | undefined {
  let connected = false;
  // Why it does not connect (refused, unknown host, bad password): what the rejection should say.
  let lastError: Error | undefined;
  const remember = (error: Error) => {
    lastError = error;
  };
  client.on('error', remember);
  const ready = new Promise<void>((resolve) => {
    client.once('ready', () => {
      connected = true;
      client.off('error', remember);
      resolve();
    });
  });
  return () => {
    if (connected || client.status === 'ready') return undefined;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const reason = lastError === undefined ? '' : `: ${lastError.message}`;
        reject(new Error(`Redis did not connect within ${limit} ms${reason}`, { cause: lastError }));
      }, limit);
      void ready.then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  };
}

/** Groups made keys by cluster slot: in a cluster, one command may only touch keys of one slot. */
function bySlot<T>(items: readonly T[], keyOf: (item: T) => string): T[][] {
  const groups = new Map<number, T[]>();
  for (const item of items) {
    const slot = calculateSlot(keyOf(item));
    const group = groups.get(slot);
    if (group) group.push(item);
    else groups.set(slot, [item]);
  }
  return [...groups.values()];
}

/** The cluster's masters; a new cluster client knows them only once it is ready. */
async function clusterMasters(cluster: Cluster): Promise<Redis[]> {
  if (cluster.status !== 'ready') {
    await new Promise<void>((resolve, reject) => {
      cluster.once('ready', resolve);
      cluster.once('error', reject);
    });
  }
  return cluster.nodes('master');
}

/**
 * Redis through ioredis. `location` is a URL (`redis://[user:pass@]host:port/db`, `rediss://` for TLS)
 * or a list of them: writes go to the first, reads to a random one of the others (replicas). With
 * `options.cluster`, the URLs are the seed nodes of a Redis Cluster.
 *
 * Keys are exactly `makeKey(key)`; integers are stored as decimal text so that `incr` is an atomic
 * INCRBY. `clear()` deletes only this cache's keys (SCAN + UNLINK on every master), never FLUSHDB.
 */
export class RedisCache extends BaseCache {
  static readonly optionNames = ['client', 'cluster', 'clusterOptions', 'keyPattern', 'nearCache'];

  private readonly writer: ClientWithCommands;
  private readonly readers: Client[];
  private readonly clusterMode: boolean;
  /** The servers `clear()` scans: the primary, or every master of the cluster. */
  private readonly masters: () => Promise<Redis[]>;
  private readonly clearPattern: string | undefined;
  /** Which of the keys the pattern finds are this cache's: those with its prefix and an integer version. */
  private readonly ownKey: RegExp | undefined;
  /** For each client, the wait for its first connection (undefined once it has connected); none once all have. */
  private firstConnections: Array<() => Promise<void> | undefined> | undefined;
  /** The near cache's tracked connections, with `options.nearCache`. */
  private readonly tracking: RedisTracking | undefined;

  constructor(location: string | string[] | undefined, params: CacheParams<RedisBackendOptions>) {
    super(location, params);
    const urls = location === undefined ? ['redis://127.0.0.1:6379'] : Array.isArray(location) ? location : [location];
    if (urls.length === 0) throw new TypeError('The redis backend needs at least one URL in location');
    const options = params.options ?? {};
    const nearCache = nearCacheOption(options.nearCache, 'redis');
    if (options.cluster === true && nearCache !== undefined) {
      throw new TypeError(
        "The redis backend's nearCache does not work with cluster: Redis tells a connection of changes only to keys on its own node. Use a near cache on a standalone Redis (with replicas), or none",
      );
    }
    // Made before any connection opens, so that a wrong setting of it leaks none.
    const near = nearCache === undefined ? undefined : new NearCache(nearCache, this.serializer, { toldOfChanges: true });
    const ioredis = loadClient<typeof import('ioredis')>('redis', 'ioredis');
    const clientOptions: RedisOptions = { ...REDIS_CLIENT_DEFAULTS, ...options.client };
    this.clusterMode = options.cluster === true;
    const defaultKeys = params.keyFunction === undefined || params.keyFunction === defaultKeyFunction;
    this.clearPattern = options.keyPattern ?? (defaultKeys ? `${escapeGlob(this.keyPrefix)}:*` : undefined);
    this.ownKey = options.keyPattern === undefined && defaultKeys ? new RegExp(`^${escapeRegExp(this.keyPrefix)}:-?\\d+:`, 's') : undefined;

    if (this.clusterMode) {
      const seeds = urls.map((url) => {
        const { hostname, port } = new URL(url);
        return { host: hostname, port: Number(port || 6379) };
      });
      const cluster = new ioredis.Cluster(seeds, { enableOfflineQueue: false, ...options.clusterOptions, redisOptions: clientOptions });
      this.writer = cluster as ClientWithCommands;
      this.readers = [cluster];
      this.masters = () => clusterMasters(cluster);
    } else {
      const [primary, ...replicas] = urls.map((url) => new ioredis.Redis(url, clientOptions));
      this.writer = primary as ClientWithCommands;
      this.masters = async () => [primary!];
      this.readers = replicas.length > 0 ? replicas : [this.writer];
      if (near !== undefined) {
        this.near = near;
        this.tracking = new RedisTracking(ioredis, urls[0]!, clientOptions, near, primary!);
      }
    }
    this.writer.defineCommand('fragcacheIncr', { numberOfKeys: 1, lua: INCR_IF_EXISTS });
    this.writer.defineCommand('fragcacheRelease', { numberOfKeys: 1, lua: RELEASE_IF_HELD });
    const connectTimeout = clientOptions.connectTimeout ?? REDIS_CLIENT_DEFAULTS.connectTimeout;
    this.firstConnections = [...new Set([this.writer, ...this.readers])].map((client) => {
      // A connection error would otherwise be an unhandled 'error' event. Commands report errors to their
      // callers, and the template tags' breaker reports outages, once each.
      client.on('error', () => undefined);
      return firstConnection(client, connectTimeout);
    });
  }

  /**
   * Nothing once every client has connected before (so a command awaits no extra Promise); until then,
   * the bounded wait for the first connections.
   */
  private connected(): Promise<void> | undefined {
    if (this.firstConnections === undefined) return undefined;
    const pending = this.firstConnections.map((connection) => connection()).filter((wait) => wait !== undefined);
    if (pending.length === 0) {
      this.firstConnections = undefined;
      return undefined;
    }
    return Promise.all(pending).then(() => undefined);
  }

  private reader(): Client {
    const readers = this.readers;
    return readers.length === 1 ? readers[0]! : readers[Math.floor(Math.random() * readers.length)]!;
  }

  private decode(data: Buffer | null): unknown {
    return data === null ? undefined : decodeValue(data, this.serializer);
  }

  /** Reads for the near cache go through its tracked connection, to the primary, with the key's time to live. */
  protected override async getTimedEntry(key: string): Promise<TimedValue | undefined> {
    if (this.tracking === undefined) return super.getTimedEntry(key);
    try {
      return await this.tracking.read(key, (data) => this.decode(data));
    } catch (error) {
      if (isWrongType(error)) return undefined;
      throw error;
    }
  }

  /** A key holding another type (a LIST, a HASH…) is not this cache's entry: a miss that the next write replaces. */
  protected async getEntry(key: string): Promise<unknown> {
    await this.connected();
    try {
      return this.decode(await this.reader().getBuffer(key));
    } catch (error) {
      if (isWrongType(error)) return undefined;
      throw error;
    }
  }

  protected async setEntry(key: string, value: unknown, ttl: TimeToLive): Promise<void> {
    await this.connected();
    const data = encodeValue(value, this.serializer);
    if (ttl === null) await this.writer.set(key, data);
    else await this.writer.set(key, data, 'PX', ttl);
  }

  protected async addEntry(key: string, value: unknown, ttl: TimeToLive): Promise<boolean> {
    await this.connected();
    const data = encodeValue(value, this.serializer);
    const reply = ttl === null ? await this.writer.set(key, data, 'NX') : await this.writer.set(key, data, 'PX', ttl, 'NX');
    return reply === 'OK';
  }

  protected async deleteEntry(key: string): Promise<boolean> {
    await this.connected();
    return (await this.writer.del(key)) > 0;
  }

  protected async hasEntry(key: string): Promise<boolean> {
    await this.connected();
    return (await this.reader().exists(key)) > 0;
  }

  protected async touchEntry(key: string, ttl: TimeToLive): Promise<boolean> {
    await this.connected();
    if (ttl !== null) return (await this.writer.pexpire(key, ttl)) === 1;
    // PERSIST answers 0 for a key without expiry too, so existence is asked in the same transaction.
    const replies = await this.writer.multi().persist(key).exists(key).exec();
    return replies?.[1]?.[1] === 1;
  }

  protected async incrEntry(key: string, delta: number): Promise<number | undefined | typeof NOT_A_NUMBER> {
    await this.connected();
    try {
      return (await this.writer.fragcacheIncr(key, delta)) ?? undefined;
    } catch (error) {
      if (isWrongType(error)) return NOT_A_NUMBER;
      throw error;
    }
  }

  protected async clearEntries(): Promise<void> {
    if (this.clearPattern === undefined) {
      throw new Error('clear() cannot know which keys a custom key function made: set options.keyPattern (a SCAN pattern) for this cache');
    }
    await this.connected();
    const masters = await this.masters();
    await Promise.all(masters.map((node) => this.clearNode(node, this.clearPattern!)));
  }

  private async clearNode(node: Redis, pattern: string): Promise<void> {
    let cursor = '0';
    do {
      const [next, found] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', CLEAR_BATCH);
      cursor = next;
      const ownKey = this.ownKey;
      const keys = ownKey === undefined ? found : found.filter((key) => ownKey.test(key));
      // In a cluster, a node holds many slots; UNLINK takes one slot's keys at a time.
      for (const group of this.clusterMode ? bySlot(keys, (key) => key) : [keys]) {
        if (group.length > 0) await node.unlink(...group);
      }
    } while (cursor !== '0');
  }

  protected override async releaseLockEntry(key: string, token: string): Promise<void> {
    await this.connected();
    await this.writer.fragcacheRelease(key, encodeValue(token, this.serializer));
  }

  protected override async getEntries(keys: readonly string[]): Promise<Map<string, unknown>> {
    await this.connected();
    const found = new Map<string, unknown>();
    const groups = this.clusterMode ? bySlot(keys, (key) => key) : [keys];
    await Promise.all(
      groups.map(async (group) => {
        if (group.length === 0) return;
        const values = await this.reader().mgetBuffer(...group);
        group.forEach((key, i) => {
          const value = this.decode(values[i] ?? null);
          if (value !== undefined) found.set(key, value);
        });
      }),
    );
    return found;
  }

  protected override async setEntries(entries: ReadonlyMap<string, unknown>, ttl: TimeToLive): Promise<string[]> {
    await this.connected();
    const encoded = [...entries].map(([key, value]) => [key, encodeValue(value, this.serializer)] as const);
    const failed: string[] = [];
    const groups = this.clusterMode ? bySlot(encoded, ([key]) => key) : [encoded];
    await Promise.all(
      groups.map(async (group) => {
        const pipeline = this.writer.pipeline();
        for (const [key, data] of group) {
          if (ttl === null) pipeline.set(key, data);
          else pipeline.set(key, data, 'PX', ttl);
        }
        const replies = (await pipeline.exec()) ?? [];
        group.forEach(([key], i) => {
          if (replies[i]?.[0]) failed.push(key);
        });
      }),
    );
    return failed;
  }

  protected override async deleteEntries(keys: readonly string[]): Promise<void> {
    await this.connected();
    const groups = this.clusterMode ? bySlot(keys, (key) => key) : [keys];
    await Promise.all(groups.map((group) => (group.length > 0 ? this.writer.del(...group) : 0)));
  }

  override async close(): Promise<void> {
    await super.close();
    const clients = new Set<Client>([this.writer, ...this.readers]);
    await Promise.all([...clients].map((client) => client.quit().catch(() => client.disconnect())));
    await this.tracking?.close();
  }
}
