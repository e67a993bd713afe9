/**
 * Scenario: the near cache in front of Redis. A `get` side by side with locmem's, plain Redis's and
 * bentocache's two-tier cache (memory L1, Redis L2, Redis bus); how soon another process stops serving a
 * value after a write (two processes, 1 000 writes); and the live heap of a process reading 100 000
 * distinct keys through a near cache bounded by `maxBytes`.
 */
import { BentoCache, bentostore } from 'bentocache';
import { memoryDriver } from 'bentocache/drivers/memory';
import { redisBusDriver, redisDriver } from 'bentocache/drivers/redis';
import { execFileSync, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { LocMemCache, RedisCache, type BaseCache } from 'fragcache';
import { measureSideBySide } from './measure.js';

export interface NearGetResult {
  locmem: number;
  near: number;
  redis: number;
  bentocache: number;
}

export interface InvalidationResult {
  writes: number;
  p50: number;
  p99: number;
  max: number;
}

export interface NearMemoryResult {
  maxBytes: number;
  fragmentBytes: number;
  /** Live heap after reading this many distinct keys through the near cache. */
  samples: Array<{ keys: number; heapUsedMiB: number; entries: number }>;
}

const VALUE = '<li>cached fragment</li>'.repeat(8);
const now = () => performance.timeOrigin + performance.now();
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Reads `key` until the near cache holds it. */
async function warm(cache: BaseCache, key: string): Promise<void> {
  while ((await cache.get(key)) === undefined || cache.nearHit(cache.makeKey(key)) === undefined) await pause(5);
}

export async function nearGets(redisUrl: string): Promise<NearGetResult> {
  const { hostname, port } = new URL(redisUrl);
  const connection = { host: hostname, port: Number(port) };
  const locmem = new LocMemCache('bench-near', {});
  const near = new RedisCache(redisUrl, { keyPrefix: 'bench-near', options: { nearCache: true } });
  const redis = new RedisCache(redisUrl, { keyPrefix: 'bench-plain' });
  const bento = new BentoCache({
    default: 'tiered',
    stores: { tiered: bentostore().useL1Layer(memoryDriver({ maxSize: '32mb' })).useL2Layer(redisDriver({ connection })).useBus(redisBusDriver({ connection })) },
  });
  try {
    for (const cache of [locmem, near, redis]) await cache.set('key', VALUE);
    await bento.set({ key: 'key', value: VALUE, ttl: '1h' });
    await warm(near, 'key');
    const rates = await measureSideBySide({
      locmem: () => locmem.get('key'),
      near: () => near.get('key'),
      redis: () => redis.get('key'),
      bentocache: () => bento.get({ key: 'key' }),
    });
    return rates;
  } finally {
    await Promise.all([near.close(), redis.close(), bento.disconnect()]);
  }
}

/**
 * This process writes a key 1 000 times; a second process holds it in its near cache and reports when
 * each write dropped it there. The latency is from the write's acknowledgement to that moment, on the
 * clock both processes share.
 */
export async function invalidationLatency(redisUrl: string, writes = 1000): Promise<InvalidationResult> {
  const keyPrefix = `bench-invalidation-${process.pid}`;
  const writer = new RedisCache(redisUrl, { keyPrefix });
  const reader = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--reader', redisUrl, keyPrefix], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: reader.stdout! })[Symbol.asyncIterator]();
  const next = async () => {
    const { value, done } = await lines.next();
    if (done) throw new Error('the reading process exited early');
    return value as string;
  };
  try {
    await writer.set('key', 0);
    if ((await next()) !== 'holding') throw new Error('the reading process did not start');
    const latencies: number[] = [];
    for (let i = 1; i <= writes; i++) {
      await writer.set('key', i);
      const acknowledged = now();
      const [dropped, holding] = (await next()).split(' ');
      if (Number(holding) !== i) throw new Error(`the reading process holds ${holding}, not ${i}`);
      latencies.push(Number(dropped) - acknowledged);
    }
    latencies.sort((a, b) => a - b);
    const at = (share: number) => latencies[Math.min(latencies.length - 1, Math.floor(share * latencies.length))]!;
    return { writes, p50: at(0.5), p99: at(0.99), max: latencies[latencies.length - 1]! };
  } finally {
    reader.kill();
    await writer.close();
  }
}

/** The reading process: reports when its near cache drops the key, then reads it again (and holds it). */
async function readInvalidations(redisUrl: string, keyPrefix: string): Promise<void> {
  const cache = new RedisCache(redisUrl, { keyPrefix, options: { nearCache: true } });
  const made = cache.makeKey('key');
  await warm(cache, 'key');
  console.log('holding');
  for (;;) {
    // Polled between turns of the event loop, as a server's request handlers would read it.
    while (cache.nearHit(made) !== undefined) await new Promise(setImmediate);
    const dropped = now();
    await warm(cache, 'key');
    console.log(`${dropped} ${String(await cache.get('key'))}`);
  }
}

/** In a fresh process: the live heap while 100 000 distinct keys are read through a near cache of `maxBytes`. */
async function measureMemory(redisUrl: string, keys = 100_000, maxBytes = 8 * 2 ** 20): Promise<NearMemoryResult> {
  const fragmentBytes = 1024;
  const cache = new RedisCache(redisUrl, { keyPrefix: `bench-near-memory-${process.pid}`, options: { nearCache: { maxBytes, maxEntries: keys } } });
  const fragment = (i: number) => `${i}:`.padEnd(fragmentBytes, 'x');
  for (let start = 0; start < keys; start += 1000) {
    await cache.setMany(Object.fromEntries(Array.from({ length: 1000 }, (_, j) => [`fragment-${start + j}`, fragment(start + j)])));
  }
  await warm(cache, 'fragment-0');
  const samples: NearMemoryResult['samples'] = [];
  const sample = (read: number) => {
    (globalThis as { gc?: () => void }).gc?.();
    samples.push({ keys: read, heapUsedMiB: Math.round((process.memoryUsage().heapUsed / 2 ** 20) * 10) / 10, entries: countHeld(cache, read) });
  };
  sample(0);
  for (let i = 0; i < keys; i++) {
    await cache.get(`fragment-${i}`);
    if ((i + 1) % 25_000 === 0) sample(i + 1);
  }
  await cache.clear();
  await cache.close();
  return { maxBytes, fragmentBytes, samples };
}

/** How many of the last keys read the near cache still holds (it holds no more than fit in maxBytes). */
function countHeld(cache: BaseCache, read: number): number {
  let held = 0;
  for (let i = Math.max(0, read - 20_000); i < read; i++) if (cache.nearHit(cache.makeKey(`fragment-${i}`)) !== undefined) held++;
  return held;
}

export function nearMemory(redisUrl: string): NearMemoryResult {
  const output = execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', fileURLToPath(import.meta.url), '--memory', redisUrl]);
  return JSON.parse(output.toString()) as NearMemoryResult;
}

const [role, url, prefix] = process.argv.slice(2);
if (role === '--reader') void readInvalidations(url!, prefix!);
if (role === '--memory') void measureMemory(url!).then((result) => console.log(JSON.stringify(result)));
