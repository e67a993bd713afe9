import calculateSlot from 'cluster-key-slot';
import type { Cluster, Redis } from 'ioredis';
import { BaseCache, NOT_A_NUMBER, type TimeToLive } from '../base.js';
import { loadClient } from '../clients.js';
import type { CacheParams, RedisBackendOptions } from '../config.js';
import { defaultKeyFunction } from '../keys.js';
import { decodeValue, encodeValue } from './raw-integers.js';

/** Adds to a key only if it exists, in one step, so that incr never creates a missing key. */
const INCR_IF_EXISTS = `if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('INCRBY', KEYS[1], ARGV[1]) end return false`;
const CLEAR_BATCH = 500;

type Client = Redis | Cluster;
type ClientWithIncr = Client & { fragcacheIncr(key: string, delta: number): Promise<number | null> };


function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}

function isWrongType(error: unknown): boolean {
  return error instanceof Error && /not an integer|WRONGTYPE/.test(error.message);
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
  static readonly optionNames = ['client', 'cluster', 'clusterOptions', 'keyPattern'];

  private readonly writer: ClientWithIncr;
  private readonly readers: Client[];
  private readonly clusterMode: boolean;
  /** The servers `clear()` scans: the primary, or every master of the cluster. */
  private readonly masters: () => Promise<Redis[]>;
  private readonly clearPattern: string | undefined;

  constructor(location: string | string[] | undefined, params: CacheParams<RedisBackendOptions>) {
    super(location, params);
    const urls = location === undefined ? ['redis://127.0.0.1:6379'] : Array.isArray(location) ? location : [location];
    if (urls.length === 0) throw new TypeError('The redis backend needs at least one URL in location');
    const options = params.options ?? {};
    const ioredis = loadClient<typeof import('ioredis')>('redis', 'ioredis');
    const clientOptions = options.client ?? {};
    this.clusterMode = options.cluster === true;
    this.clearPattern =
      options.keyPattern ?? (params.keyFunction === undefined || params.keyFunction === defaultKeyFunction ? `${escapeGlob(this.keyPrefix)}:*` : undefined);

    if (this.clusterMode) {
      const seeds = urls.map((url) => {
        const { hostname, port } = new URL(url);
        return { host: hostname, port: Number(port || 6379) };
      });
      const cluster = new ioredis.Cluster(seeds, { ...options.clusterOptions, redisOptions: clientOptions });
      this.writer = cluster as ClientWithIncr;
      this.readers = [cluster];
      this.masters = () => clusterMasters(cluster);
    } else {
      const [primary, ...replicas] = urls.map((url) => new ioredis.Redis(url, clientOptions));
      this.writer = primary as ClientWithIncr;
      this.masters = async () => [primary!];
      this.readers = replicas.length > 0 ? replicas : [this.writer];
    }
    this.writer.defineCommand('fragcacheIncr', { numberOfKeys: 1, lua: INCR_IF_EXISTS });
  }

  private reader(): Client {
    const readers = this.readers;
    return readers.length === 1 ? readers[0]! : readers[Math.floor(Math.random() * readers.length)]!;
  }

  private decode(data: Buffer | null): unknown {
    return data === null ? undefined : decodeValue(data, this.serializer);
  }

  protected async getEntry(key: string): Promise<unknown> {
    return this.decode(await this.reader().getBuffer(key));
  }

  protected async setEntry(key: string, value: unknown, ttl: TimeToLive): Promise<void> {
    const data = encodeValue(value, this.serializer);
    if (ttl === null) await this.writer.set(key, data);
    else await this.writer.set(key, data, 'PX', ttl);
  }

  protected async addEntry(key: string, value: unknown, ttl: TimeToLive): Promise<boolean> {
    const data = encodeValue(value, this.serializer);
    const reply = ttl === null ? await this.writer.set(key, data, 'NX') : await this.writer.set(key, data, 'PX', ttl, 'NX');
    return reply === 'OK';
  }

  protected async deleteEntry(key: string): Promise<boolean> {
    return (await this.writer.del(key)) > 0;
  }

  protected async hasEntry(key: string): Promise<boolean> {
    return (await this.reader().exists(key)) > 0;
  }

  protected async touchEntry(key: string, ttl: TimeToLive): Promise<boolean> {
    if (ttl !== null) return (await this.writer.pexpire(key, ttl)) === 1;
    // PERSIST answers 0 for a key without expiry too, so existence is asked in the same transaction.
    const replies = await this.writer.multi().persist(key).exists(key).exec();
    return replies?.[1]?.[1] === 1;
  }

  protected async incrEntry(key: string, delta: number): Promise<number | undefined | typeof NOT_A_NUMBER> {
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
    const masters = await this.masters();
    await Promise.all(masters.map((node) => this.clearNode(node, this.clearPattern!)));
  }

  private async clearNode(node: Redis, pattern: string): Promise<void> {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', CLEAR_BATCH);
      cursor = next;
      // In a cluster, a node holds many slots; UNLINK takes one slot's keys at a time.
      for (const group of this.clusterMode ? bySlot(keys, (key) => key) : [keys]) {
        if (group.length > 0) await node.unlink(...group);
      }
    } while (cursor !== '0');
  }

  protected override async getEntries(keys: readonly string[]): Promise<Map<string, unknown>> {
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
    const groups = this.clusterMode ? bySlot(keys, (key) => key) : [keys];
    await Promise.all(groups.map((group) => (group.length > 0 ? this.writer.del(...group) : 0)));
  }

  override async close(): Promise<void> {
    const clients = new Set<Client>([this.writer, ...this.readers]);
    await Promise.all([...clients].map((client) => client.quit().catch(() => client.disconnect())));
  }
}
