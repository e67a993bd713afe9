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
 * are back, it starts again from empty (docs/backends/redis.md). A connection cut without a close (a
 * partition, a middlebox dropping an idle connection) is noticed by a heartbeat on the listener.
 */
import type { Redis, RedisOptions } from 'ioredis';
import { CacheIncidentWarning } from '../breaker.js';
import type { NearCache, TimedValue } from '../near-cache.js';

const INVALIDATIONS = '__redis__:invalidate';
/**
 * Milliseconds between two PINGs on the listener. A PING still unanswered at the next one stops the
 * near cache from serving: after a silent cut, a process serves what it holds for at most about twice this.
 */
export const HEARTBEAT_INTERVAL = 250;
/** Beats without an answer after which the listener is reconnected: the connection is taken for dead. */
const BEATS_BEFORE_RECONNECTING = 4;

function ignore(): void {}

/** Redis refused a command (as opposed to a connection lost): tracking will not work until someone acts. */
function isRefusal(error: unknown): error is Error {
  return error instanceof Error && error.name === 'ReplyError';
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
  /** Counts the listener's own losses, so that an id asked on a connection since lost is not kept. */
  private listenerLosses = 0;
  /** ioredis's own key prefix, which the names Redis publishes include. */
  private readonly clientPrefix: string;
  private readonly heartbeat: NodeJS.Timeout;
  /** Whether a heartbeat PING is unanswered, and whether it was found late (the near cache then distrusted). */
  private heartbeatPending = false;
  private heartbeatLate = false;
  private lateBeats = 0;
  private refusalReported = false;

  constructor(
    ioredis: typeof import('ioredis'),
    url: string,
    options: RedisOptions,
    private readonly near: NearCache,
    private readonly main: Redis,
  ) {
    this.clientPrefix = options.keyPrefix ?? '';
    // Both connect at once, whatever lazyConnect says: the near cache is useless until they have.
    this.reader = new ioredis.Redis(url, { ...options, lazyConnect: false });
    // Subscribed again by hand after a reconnection: the listener's new id must be known first, which
    // a connection in subscriber mode cannot ask.
    this.listener = new ioredis.Redis(url, { ...options, lazyConnect: false, autoResubscribe: false });
    this.listener.on('messageBuffer', (_channel: Buffer, keys: unknown) => this.invalidated(keys));
    for (const client of [this.reader, this.listener]) client.on('error', ignore);
    for (const client of [this.reader, this.listener, this.main]) {
      client.on('close', () => this.lost(client));
      client.on('ready', () => void this.connected(client).catch((error: unknown) => this.reportRefusal(error)));
    }
    this.heartbeat = setInterval(() => this.beat(), HEARTBEAT_INTERVAL).unref();
  }

  private lost(client: Redis): void {
    this.losses++;
    if (client === this.listener) {
      this.listenerLosses++;
      this.listenerId = undefined;
      this.heartbeatPending = false;
      this.heartbeatLate = false;
      this.lateBeats = 0;
    }
    this.near.distrust();
  }

  private async connected(client: Redis): Promise<void> {
    if (client === this.listener) {
      // Only the listener's own losses matter here: another connection dropping meanwhile leaves this
      // id good, and the listener would never set it again.
      const listenerLosses = this.listenerLosses;
      const id = await this.listener.client('ID');
      await this.listener.subscribe(INVALIDATIONS);
      if (listenerLosses === this.listenerLosses) this.listenerId = id;
    }
    await this.track();
  }

  /**
   * A PING on the listener, which answers in order with the invalidations: while one is unanswered at
   * the next beat, news of a change may be stuck on the way, so nothing is served from memory. Once it
   * answers, every invalidation sent before it has arrived, and the near cache starts again from empty.
   */
  private beat(): void {
    if (this.listenerId === undefined) return;
    if (this.heartbeatPending) {
      if (!this.heartbeatLate) {
        this.heartbeatLate = true;
        this.losses++;
        this.near.distrust();
      }
      if (++this.lateBeats === BEATS_BEFORE_RECONNECTING) this.listener.disconnect(true);
      return;
    }
    this.heartbeatPending = true;
    this.listener.ping().then(
      () => {
        this.heartbeatPending = false;
        this.lateBeats = 0;
        if (!this.heartbeatLate) return;
        this.heartbeatLate = false;
        void this.track().catch((error: unknown) => this.reportRefusal(error));
      },
      () => {
        this.heartbeatPending = false;
      },
    );
  }

  /** A refused CLIENT or SUBSCRIBE (Redis before 6, an ACL, a managed Redis) is said once; lost connections are not news. */
  private reportRefusal(error: unknown): void {
    if (!isRefusal(error) || this.refusalReported) return;
    this.refusalReported = true;
    process.emitWarning(new CacheIncidentWarning(`fragcache: the Redis near cache cannot track keys, so it serves nothing from memory: ${error.message}`));
  }

  /** Switches tracking on once every connection is up, then trusts the near cache (from empty). */
  private async track(): Promise<void> {
    const id = this.listenerId;
    if (id === undefined || this.reader.status !== 'ready' || this.main.status !== 'ready') return;
    const losses = this.losses;
    try {
      await this.reader.client('TRACKING', 'ON', 'REDIRECT', id);
    } catch (error) {
      // The listener was dropped while the command was on its way (after a stall, say), so Redis no
      // longer knows its id: not a refusal, since the listener's next connection tracks again.
      if (this.listenerId !== id) return;
      throw error;
    }
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
   * Reads `key` on the tracked connection, with its time to live (PTTL: -1 for none, -2 for no key) in
   * the same round trip; `decode` turns the stored bytes into the value (`undefined` for a corrupt entry).
   * Rejects with the first command's error.
   */
  async read(key: string, decode: (data: Buffer) => unknown): Promise<TimedValue | undefined> {
    const replies = await this.reader.pipeline().getBuffer(key).pttl(key).exec();
    if (replies === null) throw new Error('The Redis pipeline was discarded');
    for (const [error] of replies) if (error) throw error;
    const data = replies[0]?.[1];
    const ttl = replies[1]?.[1];
    if (!Buffer.isBuffer(data) || typeof ttl !== 'number' || ttl === -2) return undefined;
    const value = decode(data);
    return value === undefined ? undefined : { value, ttl: ttl === -1 ? null : ttl };
  }

  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    await Promise.all([this.reader, this.listener].map((client) => client.quit().catch(() => client.disconnect())));
  }
}
