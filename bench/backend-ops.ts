/**
 * Scenario 2: get, set, getMany(100) and setMany(100) per backend, against the raw client doing the
 * same commands with the same keys and values, one operation at a time.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { LRUCache } from 'lru-cache';
import memjs from 'memjs';
import pg from 'pg';
import { DatabaseCache, FileBasedCache, LocMemCache, MemcachedCache, RedisCache, type BaseCache } from 'fragcache';
import { measureSideBySide } from './measure.js';

export interface OperationResult {
  backend: string;
  operation: string;
  oursPerSecond: number;
  rawPerSecond: number;
}

/** The same four operations, done by fragcache and by the raw client. */
interface Contender {
  get(key: string): unknown;
  set(key: string, value: string): unknown;
  getMany(keys: string[]): unknown;
  setMany(entries: Record<string, string>): unknown;
}

const VALUE = '<li>cached fragment</li>'.repeat(8);
const KEYS = Array.from({ length: 100 }, (_, i) => `key-${i}`);
const ENTRIES = Object.fromEntries(KEYS.map((key) => [key, VALUE]));
/** What fragcache stores for VALUE with the JSON serializer; the raw clients store the same bytes. */
const STORED = JSON.stringify(VALUE);
const made = (key: string) => `:1:${key}`;

function ours(cache: BaseCache): Contender {
  return {
    get: (key) => cache.get(key),
    set: (key, value) => cache.set(key, value),
    getMany: (keys) => cache.getMany(keys),
    setMany: (entries) => cache.setMany(entries),
  };
}

async function compare(backend: string, cache: BaseCache, raw: Contender): Promise<OperationResult[]> {
  const contenders = { ours: ours(cache), raw };
  const results: OperationResult[] = [];
  for (const contender of Object.values(contenders)) await contender.setMany(ENTRIES);
  for (const operation of ['get', 'set', 'getMany(100)', 'setMany(100)'] as const) {
    const run = (c: Contender) => {
      switch (operation) {
        case 'get':
          return () => c.get('key-7');
        case 'set':
          return () => c.set('key-7', VALUE);
        case 'getMany(100)':
          return () => c.getMany(KEYS);
        case 'setMany(100)':
          return () => c.setMany(ENTRIES);
      }
    };
    const rates = await measureSideBySide({ ours: run(contenders.ours), raw: run(contenders.raw) });
    results.push({ backend, operation, oursPerSecond: rates.ours, rawPerSecond: rates.raw });
  }
  return results;
}

export interface BackendLocations {
  redis: string;
  memcached: string;
  postgres: string;
}

export async function backendOperations(at: BackendLocations): Promise<OperationResult[]> {
  const results: OperationResult[] = [];

  const lru = new LRUCache<string, string>({ max: 10_000 });
  results.push(
    ...(await compare('locmem', new LocMemCache('bench', { options: { maxEntries: 10_000 } }), {
      get: (key) => lru.get(made(key)),
      set: (key, value) => lru.set(made(key), value, { ttl: 300_000 }),
      getMany: (keys) => keys.map((key) => lru.get(made(key))),
      setMany: (entries) => {
        for (const [key, value] of Object.entries(entries)) lru.set(made(key), value, { ttl: 300_000 });
      },
    })),
  );

  const redis = new Redis(at.redis);
  const redisCache = new RedisCache(at.redis, {});
  results.push(
    ...(await compare('redis', redisCache, {
      get: (key) => redis.getBuffer(made(key)),
      set: (key) => redis.set(made(key), STORED, 'PX', 300_000),
      getMany: (keys) => redis.mgetBuffer(...keys.map(made)),
      setMany: (entries) => {
        const pipeline = redis.pipeline();
        for (const key of Object.keys(entries)) pipeline.set(made(key), STORED, 'PX', 300_000);
        return pipeline.exec();
      },
    })),
  );
  await Promise.all([redis.quit(), redisCache.close()]);

  const memcached = memjs.Client.create(at.memcached, { logger: { log() {} } });
  const memcachedCache = new MemcachedCache(at.memcached, {});
  const stored = Buffer.from(STORED);
  results.push(
    ...(await compare('memcached', memcachedCache, {
      get: (key) => memcached.get(made(key)),
      set: (key) => memcached.set(made(key), stored, { expires: 300 }),
      getMany: (keys) => Promise.all(keys.map((key) => memcached.get(made(key)))),
      setMany: (entries) => Promise.all(Object.keys(entries).map((key) => memcached.set(made(key), stored, { expires: 300 }))),
    })),
  );
  memcached.close();
  await memcachedCache.close();

  const dir = mkdtempSync(join(tmpdir(), 'fragcache-bench-'));
  const rawDir = mkdtempSync(join(tmpdir(), 'fragcache-bench-raw-'));
  const pathOf = (key: string) => join(rawDir, key);
  const writeAtomically = async (key: string) => {
    await writeFile(`${pathOf(key)}.tmp`, STORED);
    await rename(`${pathOf(key)}.tmp`, pathOf(key));
  };
  results.push(
    ...(await compare('file', new FileBasedCache(dir, { options: { maxEntries: 10_000 } }), {
      get: (key) => readFile(pathOf(key)),
      set: (key) => writeAtomically(key),
      getMany: (keys) => Promise.all(keys.map((key) => readFile(pathOf(key)))),
      setMany: (entries) => Promise.all(Object.keys(entries).map((key) => writeAtomically(key))),
    })),
  );
  rmSync(dir, { recursive: true, force: true });
  rmSync(rawDir, { recursive: true, force: true });

  const database = new DatabaseCache('bench_cache', { options: { client: { connectionString: at.postgres } } });
  await database.createTable();
  const pool = new pg.Pool({ connectionString: at.postgres });
  const upsert = `INSERT INTO bench_cache (cache_key, value, expires) VALUES ($1, $2, now() + interval '300 seconds')
    ON CONFLICT (cache_key) DO UPDATE SET value = EXCLUDED.value, expires = EXCLUDED.expires`;
  results.push(
    ...(await compare('database', database, {
      get: (key) => pool.query('SELECT value FROM bench_cache WHERE cache_key = $1 AND (expires IS NULL OR expires > now())', [made(key)]),
      set: (key) => pool.query(upsert, [made(key), stored]),
      getMany: (keys) => pool.query('SELECT cache_key, value FROM bench_cache WHERE cache_key = ANY($1)', [keys.map(made)]),
      setMany: (entries) =>
        pool.query(
          `INSERT INTO bench_cache (cache_key, value, expires) SELECT k, $2, now() + interval '300 seconds' FROM unnest($1::text[]) AS u(k)
           ON CONFLICT (cache_key) DO UPDATE SET value = EXCLUDED.value, expires = EXCLUDED.expires`,
          [Object.keys(entries).map(made), stored],
        ),
    })),
  );
  await Promise.all([pool.end(), database.close()]);
  return results;
}
