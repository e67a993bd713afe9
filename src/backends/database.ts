import type { Pool, PoolClient, QueryResult, QueryResultRow } from 'pg';
import { BaseCache, Culling, NOT_A_NUMBER, type TimeToLive } from '../base.js';
import { loadClient } from '../clients.js';
import type { CacheParams, DatabaseBackendOptions } from '../config.js';
import { NearCache, nearCacheOption, type TimedValue } from '../near-cache.js';
import { decodeValue, encodeValue } from './raw-integers.js';

/**
 * What fragcache changes in pg's Pool defaults, so that a database that is down or stalled costs a page
 * a bounded wait: 500 ms to connect (pg waits forever by default) and 1 s for a statement.
 * `options.client` overrides each.
 */
export const DATABASE_CLIENT_DEFAULTS = { connectionTimeoutMillis: 500, query_timeout: 1000 };

/** A row that has not expired; expires is NULL for entries that never expire. */
const LIVE = '(expires IS NULL OR expires > now())';

/** The table a cache's location names; anything else is refused. */
function tableOf(location: string | string[] | undefined): string {
  if (typeof location !== 'string' || location === '') throw new TypeError('The database backend needs a table name as its location');
  return location;
}

function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** pg's `relation "…" does not exist`, said with what to do about it; other errors as they are. */
function explained(error: unknown, table: string): unknown {
  if (!(error instanceof Error) || !('code' in error) || error.code !== '42P01') return error;
  return new Error(`The cache table '${table}' does not exist: create it with \`fragcache createcachetable --config <your cache config>\` (${error.message})`, {
    cause: error,
  });
}

/** What `createTable` did: the table, whether it created it, and the statements it ran. */
export interface CreateTableResult {
  table: string;
  created: boolean;
  sql: string[];
}

/**
 * PostgreSQL through pg. `location` names the table (create it with `fragcache createcachetable`);
 * `options.client` holds pg Pool options (`connectionString`, `max`, …), and pg's PG* environment
 * variables apply as usual. Expired rows are purged, and the table culled as Django does, whenever a row is
 * written. `clear()` empties the table: it belongs to this cache.
 */
export class DatabaseCache extends BaseCache {
  static readonly optionNames = ['client', 'nearCache', ...Culling.optionNames];
  readonly table: string;
  private readonly quotedTable: string;
  private readonly pool: Pool;
  private readonly culling: Culling;

  constructor(location: string | string[] | undefined, params: CacheParams<DatabaseBackendOptions>) {
    super(location, params);
    const nearCache = nearCacheOption(params.options?.nearCache, 'database');
    if (nearCache !== undefined) this.near = new NearCache(nearCache, this.serializer, { toldOfChanges: false });
    const pg = loadClient<typeof import('pg')>('database', 'pg');
    this.table = tableOf(location);
    this.quotedTable = quoteIdentifier(this.table);
    this.culling = new Culling(params.options);
    this.pool = new pg.Pool({ ...DATABASE_CLIENT_DEFAULTS, ...params.options?.client });
    // An idle connection that dies (the server restarted) is an 'error' event on the pool, which would
    // stop the process unheard; the pool replaces it, and the next statement reports any outage.
    this.pool.on('error', () => undefined);
  }

  /** The statements that create the table a cache's `location` names, and its expiry index. */
  static tableSql(location: string | string[] | undefined): string[] {
    const table = tableOf(location);
    const quotedTable = quoteIdentifier(table);
    return [
      `CREATE TABLE IF NOT EXISTS ${quotedTable} (cache_key text PRIMARY KEY, value bytea NOT NULL, expires timestamptz NULL)`,
      `CREATE INDEX IF NOT EXISTS ${quoteIdentifier(`${table}_expires`)} ON ${quotedTable} (expires)`,
    ];
  }

  /** The statements that create this cache's table and its expiry index. */
  tableSql(): string[] {
    return DatabaseCache.tableSql(this.table);
  }

  /** Creates the table and its index unless the table exists. */
  async createTable(): Promise<CreateTableResult> {
    const { rows } = await this.pool.query<{ exists: boolean }>('SELECT to_regclass($1) IS NOT NULL AS exists', [this.quotedTable]);
    if (rows[0]!.exists) return { table: this.table, created: false, sql: [] };
    const sql = this.tableSql();
    for (const statement of sql) await this.pool.query(statement);
    return { table: this.table, created: true, sql };
  }

  /** A statement on a pooled connection; a missing table is explained. */
  private async query<Row extends QueryResultRow>(text: string, values?: unknown[]): Promise<QueryResult<Row>> {
    try {
      return await this.pool.query<Row>(text, values);
    } catch (error) {
      throw explained(error, this.table);
    }
  }

  private decode(data: Buffer): unknown {
    return decodeValue(data, this.serializer);
  }

  /** bytea takes bytes: text is sent as its UTF-8. */
  private encode(value: unknown): Buffer {
    const data = encodeValue(value, this.serializer);
    return typeof data === 'string' ? Buffer.from(data) : data;
  }

  /** Django's cull, run before each write: purge expired rows, then thin the table if it is too full. */
  private async cull(client: PoolClient): Promise<void> {
    await client.query(`DELETE FROM ${this.quotedTable} WHERE expires <= now()`);
    const { rows } = await client.query<{ count: string }>(`SELECT count(*) AS count FROM ${this.quotedTable}`);
    const count = Number(rows[0]!.count);
    const doomed = this.culling.toRemove(count);
    if (doomed === 0) return;
    if (doomed >= count) {
      await client.query(`DELETE FROM ${this.quotedTable}`);
      return;
    }
    await client.query(
      `DELETE FROM ${this.quotedTable} WHERE cache_key < (SELECT cache_key FROM ${this.quotedTable} ORDER BY cache_key LIMIT 1 OFFSET $1)`,
      [doomed],
    );
  }

  /** Runs `work` in a transaction, after a cull when it writes a row. */
  private async transaction<T>(work: (client: PoolClient) => Promise<T>, opts: { cull: boolean }): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      if (opts.cull) await this.cull(client);
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw explained(error, this.table);
    } finally {
      client.release();
    }
  }

  private writing<T>(work: (client: PoolClient) => Promise<T>): Promise<T> {
    return this.transaction(work, { cull: true });
  }

  private upsert(condition = ''): string {
    return `INSERT INTO ${this.quotedTable} AS t (cache_key, value, expires)
      VALUES ($1, $2, now() + $3 * interval '1 millisecond')
      ON CONFLICT (cache_key) DO UPDATE SET value = EXCLUDED.value, expires = EXCLUDED.expires ${condition}`;
  }

  protected async getEntry(key: string): Promise<unknown> {
    return (await this.getTimedEntry(key))?.value;
  }

  /** With the row's time to live, so that a near cache never keeps an entry past its expiry. */
  protected override async getTimedEntry(key: string): Promise<TimedValue | undefined> {
    // extract() gives a numeric, which pg hands over as text.
    const { rows } = await this.query<{ value: Buffer; ttl: string | null }>(
      `SELECT value, extract(epoch FROM expires - now()) * 1000 AS ttl FROM ${this.quotedTable} WHERE cache_key = $1 AND ${LIVE}`,
      [key],
    );
    const row = rows[0];
    const value = row === undefined ? undefined : this.decode(row.value);
    return row === undefined || value === undefined ? undefined : { value, ttl: row.ttl === null ? null : Number(row.ttl) };
  }

  protected async setEntry(key: string, value: unknown, ttl: TimeToLive): Promise<void> {
    const data = this.encode(value);
    await this.writing((client) => client.query(this.upsert(), [key, data, ttl]));
  }

  protected async addEntry(key: string, value: unknown, ttl: TimeToLive): Promise<boolean> {
    const data = this.encode(value);
    const { rowCount } = await this.writing((client) =>
      client.query(this.upsert('WHERE t.expires IS NOT NULL AND t.expires <= now()'), [key, data, ttl]),
    );
    return rowCount === 1;
  }

  protected async deleteEntry(key: string): Promise<boolean> {
    const { rows } = await this.query<{ live: boolean }>(
      `DELETE FROM ${this.quotedTable} WHERE cache_key = $1 RETURNING ${LIVE} AS live`,
      [key],
    );
    return rows[0]?.live === true;
  }

  protected async hasEntry(key: string): Promise<boolean> {
    const { rowCount } = await this.query(`SELECT 1 FROM ${this.quotedTable} WHERE cache_key = $1 AND ${LIVE}`, [key]);
    return rowCount === 1;
  }

  protected async touchEntry(key: string, ttl: TimeToLive): Promise<boolean> {
    const { rowCount } = await this.writing((client) =>
      client.query(`UPDATE ${this.quotedTable} SET expires = now() + $2 * interval '1 millisecond' WHERE cache_key = $1 AND ${LIVE}`, [
        key,
        ttl,
      ]),
    );
    return rowCount === 1;
  }

  /** Atomic: the row is locked from read to write. The expiry is kept. */
  protected async incrEntry(key: string, delta: number): Promise<number | undefined | typeof NOT_A_NUMBER> {
    return this.transaction(async (client) => {
      const { rows } = await client.query<{ value: Buffer }>(`SELECT value FROM ${this.quotedTable} WHERE cache_key = $1 AND ${LIVE} FOR UPDATE`, [key]);
      if (rows.length === 0) return undefined;
      const current = this.decode(rows[0]!.value);
      if (typeof current !== 'number') return NOT_A_NUMBER;
      const result = current + delta;
      await client.query(`UPDATE ${this.quotedTable} SET value = $2 WHERE cache_key = $1`, [key, this.encode(result)]);
      return result;
    }, { cull: false });
  }

  protected async clearEntries(): Promise<void> {
    await this.query(`DELETE FROM ${this.quotedTable}`);
  }

  protected override async getEntries(keys: readonly string[]): Promise<Map<string, unknown>> {
    const { rows } = await this.query<{ cache_key: string; value: Buffer }>(
      `SELECT cache_key, value FROM ${this.quotedTable} WHERE cache_key = ANY($1) AND ${LIVE}`,
      [keys],
    );
    const found = new Map<string, unknown>();
    for (const row of rows) {
      const value = this.decode(row.value);
      if (value !== undefined) found.set(row.cache_key, value);
    }
    return found;
  }

  protected override async setEntries(entries: ReadonlyMap<string, unknown>, ttl: TimeToLive): Promise<string[]> {
    const keys = [...entries.keys()];
    const values = [...entries.values()].map((value) => this.encode(value));
    await this.writing((client) =>
      client.query(
        `INSERT INTO ${this.quotedTable} (cache_key, value, expires)
          SELECT k, v, now() + $3 * interval '1 millisecond' FROM unnest($1::text[], $2::bytea[]) AS u(k, v)
          ON CONFLICT (cache_key) DO UPDATE SET value = EXCLUDED.value, expires = EXCLUDED.expires`,
        [keys, values, ttl],
      ),
    );
    return [];
  }

  protected override async deleteEntries(keys: readonly string[]): Promise<void> {
    await this.query(`DELETE FROM ${this.quotedTable} WHERE cache_key = ANY($1)`, [keys]);
  }

  override async close(): Promise<void> {
    await super.close();
    await this.pool.end();
  }
}
