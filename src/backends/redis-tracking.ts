/**
 * What keeps a Redis near cache coherent: Redis's server-assisted client-side caching in its RESP2
 * form. Reads for the near cache go through a connection with `CLIENT TRACKING ON REDIRECT <id>`, so
 * Redis remembers the keys it read and, when one changes (a write or delete from any client, `clear()`,
 * an expiry, an eviction), publishes its name on `__redis__:invalidate` to connection `<id>`, which
 * listens there. A flush publishes no name: everything is dropped.
 *
 * The near cache is trusted only while that chain is whole: both connections and the cache's main
 * connection up, the listener subscribed, tracking switched on for the listener's current id. The
 * moment any of them closes, news of a change could be lost, so the near cache stops serving; when all
 * are back, it starts again from empty (docs/backends/redis.md).
 */
import type { Redis, RedisOptions } from 'ioredis';
import type { NearCache, TimedValue } from '../near-cache.js';

const INVALIDATIONS = '__redis__:invalidate';

function ignore(): void {}

function isWrongType(error: unknown): boolean {
  return error instanceof Error && /WRONGTYPE/.test(error.message);
}

export class RedisTracking {
  /** The connection whose reads Redis tracks: it reads only for the near cache. */
  private readonly reader: Redis;
  /** The connection Redis tells of changes. */
  private readonly listener: Redis;
  /** The listener's client id while it is subscribed; tracking redirects there. */
  private listenerId: number | undefined;
  /** Counts connection losses, so that tracking switched on before the latest one is not trusted. */
  private losses = 0;
  /** ioredis's own key prefix, which the names Redis publishes include. */
  private readonly clientPrefix: string;

  constructor(
    ioredis: typeof import('ioredis'),
    url: string,
    options: RedisOptions,
    private readonly near: NearCache,
    private readonly main: Redis,
  ) {
    this.clientPrefix = options.keyPrefix ?? '';
    this.reader = new ioredis.Redis(url, options);
    // Subscribed again by hand after a reconnection: the listener's new id must be known first, which
    // a connection in subscriber mode cannot ask.
    this.listener = new ioredis.Redis(url, { ...options, autoResubscribe: false });
    this.listener.on('messageBuffer', (_channel: Buffer, keys: unknown) => this.invalidated(keys));
    for (const client of [this.reader, this.listener]) client.on('error', ignore);
    for (const client of [this.reader, this.listener, this.main]) {
      client.on('close', () => this.lost(client));
      client.on('ready', () => void this.connected(client).catch(ignore));
    }
  }

  private lost(client: Redis): void {
    this.losses++;
    if (client === this.listener) this.listenerId = undefined;
    this.near.distrust();
  }

  private async connected(client: Redis): Promise<void> {
    if (client === this.listener) {
      const id = await this.listener.client('ID');
      await this.listener.subscribe(INVALIDATIONS);
      if (this.listener.status === 'ready') this.listenerId = id;
    }
    await this.track();
  }

  /** Switches tracking on once every connection is up, then trusts the near cache (from empty). */
  private async track(): Promise<void> {
    const id = this.listenerId;
    if (id === undefined || this.reader.status !== 'ready' || this.main.status !== 'ready') return;
    const losses = this.losses;
    await this.reader.client('TRACKING', 'ON', 'REDIRECT', id);
    if (losses === this.losses && this.listenerId === id) this.near.trust();
  }

  /** A published change: the names of the keys that changed, or null when everything did (a flush). */
  private invalidated(keys: unknown): void {
    if (!Array.isArray(keys)) {
      this.near.forgetAll();
      return;
    }
    const prefix = this.clientPrefix;
    for (const key of keys) {
      const name = String(key);
      this.near.forget(prefix !== '' && name.startsWith(prefix) ? name.slice(prefix.length) : name);
    }
  }

  /**
   * Reads `key` on the tracked connection, with its time to live in the same round trip; `decode`
   * turns the stored bytes into the value (`undefined` for a corrupt entry). A key of another type is a miss.
   */
  async read(key: string, decode: (data: Buffer) => unknown): Promise<TimedValue | undefined> {
    const replies = await this.reader.pipeline().getBuffer(key).pttl(key).exec();
    const [[readError, data] = [null, null], [ttlError, ttl] = [null, -2]] = replies ?? [];
    if (readError) {
      if (isWrongType(readError)) return undefined;
      throw readError;
    }
    if (ttlError) throw ttlError;
    if (!Buffer.isBuffer(data) || typeof ttl !== 'number' || ttl === -2) return undefined;
    const value = decode(data);
    return value === undefined ? undefined : { value, ttl: ttl === -1 ? null : ttl };
  }

  async close(): Promise<void> {
    await Promise.all([this.reader, this.listener].map((client) => client.quit().catch(() => client.disconnect())));
  }
}
