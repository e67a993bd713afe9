import { expect } from 'chai';
import { Eta } from 'eta';
import { Redis } from 'ioredis';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createConnection, createServer, type AddressInfo, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import nunjucks from 'nunjucks';
import { CacheRegistry, DatabaseCache, MemcachedCache, NearCache, RedisCache, jsonSerializer, makeTemplateFragmentKey, type BaseCache, type RedisBackendOptions } from 'fragcache';
import { cachePlugin } from 'fragcache/eta';
import { CacheExtension } from 'fragcache/nunjucks';
import { memcachedServers, postgresServer, redisServers, startRedis, type RestartableServer } from '../servers/index.js';
import { SOURCES, rejectionOf, sleep, unique, until } from './helpers.js';

/** Polls `condition` every few milliseconds; fails the test if it does not hold within `limit` ms. */

/** Reads `key` until the near cache holds it: Redis tracks it for this process from then on. */
async function warm(cache: BaseCache, key: string): Promise<void> {
  await until(async () => (await cache.get(key)) !== undefined && cache.nearHit(cache.makeKey(key)) !== undefined, `the near cache holding '${key}'`);
}

function held(cache: BaseCache, key: string): unknown {
  return cache.nearHit(cache.makeKey(key));
}

/** The id of the first client `CLIENT LIST` shows with `field` (e.g. `flags=t`, `sub=1`), other than the asker. */
async function clientWith(admin: Redis, field: RegExp): Promise<string> {
  const list = String(await admin.client('LIST'));
  const line = list.split('\n').find((entry) => field.test(entry) && !/ cmd=client\|list /.test(entry));
  if (line === undefined) throw new Error(`no client with ${field} in ${list}`);
  return /^id=(\d+)/.exec(line)![1]!;
}

/**
 * A TCP proxy that can go silent as a network partition does: while cut, it holds every byte in both
 * directions and closes nothing; healed, it delivers them in order.
 */
async function partitionableProxy(port: number) {
  let cut = false;
  const held: Array<() => void> = [];
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = createConnection(port, '127.0.0.1');
    for (const [from, to] of [[client, upstream], [upstream, client]] as const) {
      sockets.add(from);
      from.on('data', (chunk: Buffer) => (cut ? held.push(() => to.write(chunk)) : to.write(chunk)));
      from.on('error', () => undefined);
      from.on('close', () => to.destroy());
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    cut: () => void (cut = true),
    heal: () => {
      cut = false;
      for (const deliver of held.splice(0)) deliver();
    },
    close: () => {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

describe('Near cache in front of Redis', function () {
  this.timeout(60_000);
  const opened: Array<BaseCache | Redis | CacheRegistry> = [];
  const nearCache = (url: string | string[], options: RedisBackendOptions = {}, keyPrefix = unique('near')) => {
    const cache = new RedisCache(url, { keyPrefix, options: { nearCache: true, ...options } });
    opened.push(cache);
    return cache;
  };
  /** A registry whose default cache is a near-cached Redis at `url`, its outages expected rather than printed. */
  const quietRegistry = (url: string) => {
    const caches = new CacheRegistry({ default: { backend: 'redis', location: url, options: { nearCache: true } } });
    caches.on('incident', () => undefined);
    caches.on('recovery', () => undefined);
    opened.push(caches);
    return caches;
  };
  const admin = (url: string) => {
    const client = new Redis(url);
    opened.push(client);
    return client;
  };

  afterEach(async function () {
    await Promise.all(opened.splice(0).map((item) => (item instanceof Redis ? item.quit() : item.close())));
  });

  it('answers a hit from memory, synchronously, even while Redis is paused', async function () {
    const { url } = await redisServers();
    const cache = nearCache(url);
    await cache.set('page', '<nav>');
    await warm(cache, 'page');
    const answer = cache.getByMadeKey(cache.makeKey('page'));
    expect(answer).not.to.be.instanceOf(Promise);
    expect(answer).to.equal('<nav>');

    const caches = new CacheRegistry({ default: { backend: 'redis', location: url, keyPrefix: unique('near-tag'), options: { nearCache: true } } });
    opened.push(caches);
    const eta = new Eta({ plugins: [cachePlugin({ caches })] });
    let bodies = 0;
    const page = '[<% cache 60 nav %><%= it.body() %><% endcache %>]';
    const render = () => eta.renderStringAsync(page, { body: () => `nav ${++bodies}` });
    expect(await render()).to.equal('[nav 1]');
    await until(async () => (await render()) === '[nav 1]' && held(caches.default, makeTemplateFragmentKey('nav')) !== undefined, 'a near hit');
    await admin(url).client('PAUSE', 500, 'ALL');
    expect(await render()).to.equal('[nav 1]');
    expect(bodies).to.equal(1);
  });

  it('a process reads its own writes at once, even with its own reads of the old value under way', async function () {
    const cache = nearCache((await redisServers()).url);
    await cache.set('count', 0);
    await warm(cache, 'count');
    for (let i = 1; i <= 200; i++) {
      const readUnderWay = cache.get('count');
      await cache.set('count', i);
      expect(await cache.get('count')).to.equal(i);
      await readUnderWay;
      expect(await cache.get('count')).to.equal(i);
    }
  });

  it("another process's set, delete, touch, incr and clear drop the key from this one's near cache", async function () {
    const { url } = await redisServers();
    const keyPrefix = unique('near-shared');
    const here = nearCache(url, {}, keyPrefix);
    const there = nearCache(url, {}, keyPrefix);
    const changes: Array<[string, () => Promise<unknown>, unknown]> = [
      ['set', () => there.set('k', 'new'), 'new'],
      ['delete', () => there.delete('k'), undefined],
      ['touch', () => there.touch('k', { timeout: 120 }), 'old'],
      ['incr', () => there.set('k', 1).then(() => here.get('k')).then(() => there.incr('k')), 2],
      ['setMany', () => there.setMany({ k: 'many' }), 'many'],
      ['clear', () => there.clear(), undefined],
    ];
    for (const [change, run, after] of changes) {
      await here.set('k', 'old');
      await warm(here, 'k');
      await run();
      await until(() => held(here, 'k') !== 'old' && held(here, 'k') !== 1, `dropping the key after another process's ${change}`);
      expect(await here.get('k'), change).to.equal(after);
    }
  });

  it('a key that expires or that Redis evicts under maxmemory is not served from memory', async function () {
    const redis = await startRedis('redis-near-evicting', ['--maxmemory', '2mb', '--maxmemory-policy', 'allkeys-lru']);
    const url = `redis://127.0.0.1:${redis.port}`;
    const keyPrefix = unique('near-evicted');
    const here = nearCache(url, {}, keyPrefix);
    await here.set('short', 'lived', { timeout: 0.3 });
    await warm(here, 'short');
    await sleep(350);
    expect(held(here, 'short')).to.equal(undefined);
    expect(await here.get('short')).to.equal(undefined);

    await here.set('old', 'value');
    await warm(here, 'old');
    const filler = nearCache(url, {}, keyPrefix);
    const raw = admin(url);
    const big = 'x'.repeat(20_000);
    for (let i = 0; (await raw.exists(here.makeKey('old'))) === 1; i++) {
      if (i > 5000) throw new Error('Redis never evicted the key');
      await filler.set(`fill-${i}`, big);
    }
    await until(() => held(here, 'old') === undefined, 'dropping the evicted key');
    expect(await here.get('old')).to.equal(undefined);
  });

  it('FLUSHALL empties the near cache', async function () {
    const redis = await startRedis('redis-near-flushed');
    const url = `redis://127.0.0.1:${redis.port}`;
    const here = nearCache(url);
    await here.setMany({ a: 1, b: 2 });
    await warm(here, 'a');
    await warm(here, 'b');
    await admin(url).flushall();
    await until(() => held(here, 'a') === undefined && held(here, 'b') === undefined, 'emptying after FLUSHALL');
    expect(await here.getMany(['a', 'b'])).to.deep.equal({});
  });

  // Each of the near-cached cache's three connections is named 'here'; only its main one has flags=N.
  for (const [connection, field] of [
    ['the tracking connection', / name=here .*flags=\S*t/],
    ['the listening connection', / name=here .* sub=1 /],
    ['the main connection', / name=here .*flags=N /],
  ] as const) {
    it(`${connection} killed with CLIENT KILL: nothing is served from memory until tracking is back, and no change made meanwhile is missed`, async function () {
      const redis = await startRedis(`redis-near-killed-${connection.split(' ')[1]}`);
      const url = `redis://127.0.0.1:${redis.port}`;
      const keyPrefix = unique('near-killed');
      const here = nearCache(url, { client: { connectionName: 'here' } }, keyPrefix);
      const there = new RedisCache(url, { keyPrefix });
      opened.push(there);
      await here.set('k', 'before');
      await warm(here, 'k');
      const raw = admin(url);
      await raw.client('KILL', 'ID', await clientWith(raw, field));
      await until(() => held(here, 'k') === undefined, 'distrusting the near cache');
      await there.set('k', 'during');
      await until(async () => (await here.get('k').catch(() => undefined)) === 'during' && held(here, 'k') === 'during', 'near hits again');
      expect(await here.get('k')).to.equal('during');
      await there.set('k', 'after');
      await until(() => held(here, 'k') !== 'during', 'dropping the key changed after the reconnection');
      expect(await here.get('k')).to.equal('after');
    });
  }

  it('Redis stalled for 2 s (DEBUG SLEEP): the listener is reconnected, near hits resume, and no refusal is reported', async function () {
    const redis = await startRedis('redis-near-stalled', ['--enable-debug-command', 'yes']);
    const url = `redis://127.0.0.1:${redis.port}`;
    const keyPrefix = unique('near-stalled');
    const here = nearCache(url, {}, keyPrefix);
    const there = new RedisCache(url, { keyPrefix });
    opened.push(there);
    await here.set('k', 'old');
    await warm(here, 'k');
    // The test fails on any process warning, such as a CacheIncidentWarning saying tracking was refused.
    const stall = admin(url).call('DEBUG', 'SLEEP', '2');
    const reads = (async () => {
      const end = Date.now() + 3000;
      while (Date.now() < end) {
        await here.get('k').catch(() => undefined);
        await sleep(20);
      }
    })();
    await stall;
    await reads;
    await there.set('k', 'new');
    await until(async () => (await here.get('k').catch(() => undefined)) === 'new' && held(here, 'k') === 'new', 'near hits after the stall', 10_000);
  });

  it('a silent network cut (nothing closed, nothing delivered): nothing served from memory within a few heartbeats, near hits again once healed', async function () {
    const redis = await startRedis('redis-near-partitioned');
    const proxy = await partitionableProxy(redis.port);
    const keyPrefix = unique('near-partitioned');
    const here = nearCache(`redis://127.0.0.1:${proxy.port}`, {}, keyPrefix);
    const there = new RedisCache(`redis://127.0.0.1:${redis.port}`, { keyPrefix });
    opened.push(there);
    try {
      await here.set('k', 'old');
      await warm(here, 'k');
      proxy.cut();
      await there.set('k', 'new');
      await until(() => held(here, 'k') === undefined, 'distrusting the near cache after a silent cut', 2000);
      proxy.heal();
      await until(async () => (await here.get('k').catch(() => undefined)) === 'new' && held(here, 'k') === 'new', 'near hits after the cut healed', 10_000);
    } finally {
      proxy.close();
    }
  });

  it('Redis restarted: the near cache is bypassed while it is down, empty after, and blocks with stale= are served their copy meanwhile', async function () {
    const redis = await startRedis('redis-near-restarted');
    const url = `redis://127.0.0.1:${redis.port}`;
    const caches = quietRegistry(url);
    const eta = new Eta({ plugins: [cachePlugin({ caches })] });
    let bodies = 0;
    const body = (name: string) => `${name} ${++bodies}`;
    const page = '<% cache 60 plain %><%= it.body("plain") %><% endcache %>|<% cache 60 graced stale=300 %><%= it.body("graced") %><% endcache %>';
    const render = () => eta.renderStringAsync(page, { body });
    expect(await render()).to.equal('plain 1|graced 2');
    const cache = caches.default;
    const plainKey = makeTemplateFragmentKey('plain');
    await until(
      async () => (await render()) === 'plain 1|graced 2' && held(cache, plainKey) !== undefined,
      'near hits',
    );
    await redis.stop();
    await until(() => held(cache, plainKey) === undefined, 'distrusting the near cache');
    expect(await render()).to.equal('plain 3|graced 2');
    expect(await rejectionOf(cache.get(plainKey))).to.be.an('error');
    await redis.start();
    // Redis came back empty: nothing from before the restart may be served, by either block.
    await until(async () => (await render()).startsWith('plain') && bodies >= 5, 'renders after the restart');
    const after = await render();
    expect(after).not.to.include('plain 1');
    expect(after).not.to.include('graced 2');
    // While the breaker still skips Redis a render is uncached, so recovery is two renders alike and a near hit.
    await until(async () => (await render()) === (await render()) && held(cache, plainKey) !== undefined, 'near hits again after the restart');
  });

  it('Redis down: a block with stale= whose copy has expired is served the copy, not rendered again on every render', async function () {
    const redis = await startRedis('redis-near-expired-copy');
    const url = `redis://127.0.0.1:${redis.port}`;
    const caches = quietRegistry(url);
    const eta = new Eta({ plugins: [cachePlugin({ caches })] });
    let bodies = 0;
    const render = () => eta.renderStringAsync('<% cache 1 graced stale=300 %><%= it.body() %><% endcache %>', { body: () => `b${++bodies}` });
    await until(async () => (await render()) === 'b1' && held(caches.default, makeTemplateFragmentKey('graced')) !== undefined, 'the block served from memory');
    await redis.stop();
    await sleep(1200);
    const rendered = [];
    for (let i = 0; i < 5; i++) rendered.push(await render());
    await redis.start();
    expect(rendered).to.deep.equal(['b1', 'b1', 'b1', 'b1', 'b1']);
  });

  it('one failed read elsewhere does not stop a block served from memory from being refreshed and stored once it expires', async function () {
    const { url } = await redisServers();
    const caches = new CacheRegistry({ default: { backend: 'redis', location: url, keyPrefix: unique('blip'), options: { nearCache: true } } });
    const events: string[] = [];
    caches.on('incident', ({ operation }) => events.push(`incident ${operation}`));
    caches.on('recovery', () => events.push('recovery'));
    opened.push(caches);
    const eta = new Eta({ plugins: [cachePlugin({ caches })] });
    let bodies = 0;
    const render = (page: string) => eta.renderStringAsync(page, { body: () => `b${++bodies}` });
    const boxPage = '<% cache 1 box stale=60 %><%= it.body() %><% endcache %>';
    const cache = caches.default;
    const boxKey = makeTemplateFragmentKey('box');
    await until(async () => (await render(boxPage)) === 'b1' && held(cache, boxKey) !== undefined, 'the box served from memory');
    // One blip: Redis pauses while another page reads a key it does not hold.
    await admin(url).client('PAUSE', 150, 'ALL');
    await render('<% cache 60 other %><%= it.body() %><% endcache %>');
    expect(events).to.deep.equal(['incident read']);
    await sleep(1300);
    // The box is past its timeout, within its grace, and still in memory: the first render refreshes it.
    const before = bodies;
    for (let i = 0; i < 20; i++) await render(boxPage);
    expect(bodies - before, 'bodies rendered in 20 renders').to.equal(1);
    expect(events).to.deep.equal(['incident read', 'recovery']);
  });

  it('with replicas, fills go to the primary and stay coherent', async function () {
    const { url, replicaUrl } = await redisServers();
    const keyPrefix = unique('near-replicated');
    const here = nearCache([url, replicaUrl], {}, keyPrefix);
    const there = nearCache([url, replicaUrl], {}, keyPrefix);
    await here.set('k', 'v1');
    await warm(here, 'k');
    await there.set('k', 'v2');
    await until(() => held(here, 'k') === undefined, 'dropping the key');
    await until(async () => (await here.get('k')) === 'v2', 'reading the new value');
  });

  it('is refused with a cluster, saying why; false is off, and a value that is not an option is refused', async function () {
    expect(() => new RedisCache(['redis://127.0.0.1:1'], { options: { cluster: true, nearCache: true } })).to.throw(TypeError, "The redis backend's nearCache does not work with cluster");
    expect(nearCache((await redisServers()).url, { nearCache: false }).hasNearCache).to.equal(false);
    expect(() => new RedisCache('redis://127.0.0.1:1', { options: { nearCache: null as unknown as boolean } })).to.throw(TypeError, "The redis backend's nearCache must be true, false or an object of its options, not null");
  });

  it('after close() nothing is served from memory', async function () {
    const cache = nearCache((await redisServers()).url);
    await cache.set('k', 'v');
    await warm(cache, 'k');
    await cache.close();
    expect(held(cache, 'k')).to.equal(undefined);
    expect(cache.outageCopy(cache.makeKey('k'))).to.equal(undefined);
  });

  it('a render that cannot wait refuses a near-cached cache on hits as on misses', async function () {
    const caches = new CacheRegistry({ default: { backend: 'redis', location: (await redisServers()).url, keyPrefix: unique('near-sync'), options: { nearCache: true } } });
    opened.push(caches);
    const env = new nunjucks.Environment(null, { autoescape: true });
    env.addExtension('CacheExtension', new CacheExtension({ caches }));
    const source = '{% cache 60 box %}x{% endcache %}';
    await caches.default.set(makeTemplateFragmentKey('box'), 'x');
    await warm(caches.default, makeTemplateFragmentKey('box'));
    expect(() => env.renderString(source, {})).to.throw(/answers asynchronously/);
    const error = await new Promise<Error | null>((resolve) => env.renderString(source, {}, (failure) => resolve(failure)));
    expect(error?.message).to.match(/answers asynchronously/);
  });
});

describe('Near cache coherence across processes', function () {
  this.timeout(120_000);
  const BOUND_MS = 50;

  interface WorkerLog {
    writes: Array<[key: string, value: string, sent: number, acknowledged: number]>;
    reads: Array<[key: string, value: string | null, sent: number]>;
    nearHits: number;
    failures: number;
  }

  async function runWorkers(url: string, count: number, durationMs: number, during?: () => Promise<void>): Promise<WorkerLog[]> {
    const directory = mkdtempSync(join(tmpdir(), 'fragcache-near-'));
    const keys = ['a', 'b', 'c'].map((key) => unique(`near-${key}`));
    const workers = await Promise.all(
      Array.from({ length: count }, async (_, i) => {
        const out = join(directory, `worker-${i}.json`);
        const options = { url, keys, durationMs, writeShare: 0.1, id: `w${i}`, out };
        const child = spawn(process.execPath, [...SOURCES, 'test/fixtures/near-worker.mts', JSON.stringify(options)], { stdio: ['pipe', 'pipe', 'inherit'] });
        const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
        const next = async () => {
          const { value, done } = await lines.next();
          if (done) throw new Error('a near-cache worker exited early');
          return value as string;
        };
        expect(await next()).to.equal('ready');
        return { child, next, out };
      }),
    );
    for (const worker of workers) worker.child.stdin!.write('go\n');
    await during?.();
    const logs: WorkerLog[] = [];
    for (const worker of workers) {
      expect(await worker.next()).to.equal('done');
      logs.push(JSON.parse(readFileSync(worker.out, 'utf8')) as WorkerLog);
      worker.child.kill('SIGKILL');
    }
    return logs;
  }

  /**
   * The reads that returned a value older than the last write acknowledged more than BOUND_MS before
   * the read was sent: a write certainly later than the one that stored the value (sent after it was
   * acknowledged) had been acknowledged by then.
   */
  function staleReads(logs: WorkerLog[]): string[] {
    const writes = logs.flatMap((log) => log.writes);
    const byValue = new Map(writes.map((write) => [write[1], write]));
    const byKey = new Map<string, typeof writes>();
    for (const write of writes) byKey.set(write[0], [...(byKey.get(write[0]) ?? []), write]);
    const stale: string[] = [];
    for (const [key, value, sent] of logs.flatMap((log) => log.reads)) {
      if (value === null) continue;
      const source = byValue.get(value);
      if (source === undefined) continue;
      const superseding = byKey.get(key)!.find((write) => write[2] > source[3] && write[3] + BOUND_MS < sent);
      if (superseding !== undefined) stale.push(`read ${value} at ${sent.toFixed(1)}, but ${superseding[1]} was acknowledged at ${superseding[3].toFixed(1)}`);
    }
    return stale;
  }

  for (const count of [2, 4]) {
    const restart = count === 4;
    it(`${count} processes reading and writing the same keys${restart ? ', Redis restarted mid-run' : ''}: no read older than the last acknowledged write plus ${BOUND_MS} ms`, async function () {
      const redis: RestartableServer = await startRedis(`redis-near-${count}`);
      const url = `redis://127.0.0.1:${redis.port}`;
      const logs = await runWorkers(url, count, 4000, async () => {
        if (!restart) return;
        await sleep(1500);
        await redis.stop();
        await sleep(400);
        await redis.start();
      });
      const reads = logs.flatMap((log) => log.reads);
      const othersSeen = logs.filter((log, i) => log.reads.some(([, value]) => value !== null && !value.startsWith(`w${i}:`))).length;
      expect(staleReads(logs)).to.deep.equal([]);
      expect(reads.length).to.be.greaterThan(1000 * count);
      expect(othersSeen, "processes that read another's writes").to.equal(count);
      for (const log of logs) expect(log.nearHits, 'near hits in each process').to.be.greaterThan(200);
      if (restart) expect(logs.some((log) => log.failures > 0), 'operations failed while Redis was down').to.equal(true);
    });
  }
});

describe('Near cache in front of memcached and PostgreSQL: bounded staleness', function () {
  this.timeout(60_000);
  const opened: BaseCache[] = [];
  afterEach(async function () {
    await Promise.all(opened.splice(0).map((cache) => cache.close()));
  });

  const backends: Array<[string, (near: boolean, keyPrefix: string) => Promise<BaseCache>]> = [
    ['memcached', async (near, keyPrefix) => new MemcachedCache(await memcachedServers(), { keyPrefix, options: near ? { nearCache: { maxStaleness: 300 } } : {} })],
    [
      'PostgreSQL',
      async (near, keyPrefix) => {
        const cache = new DatabaseCache('near_cache', { keyPrefix, options: { client: { connectionString: (await postgresServer()).connectionString }, ...(near ? { nearCache: { maxStaleness: 300 } } : {}) } });
        await cache.createTable();
        return cache;
      },
    ],
  ];

  for (const [name, make] of backends) {
    it(`${name}: own writes at once, another process's within maxStaleness, expiry kept`, async function () {
      const keyPrefix = unique('bounded');
      const here = await make(true, keyPrefix);
      const there = await make(false, keyPrefix);
      opened.push(here, there);
      await here.set('k', 'v1');
      expect(await here.get('k')).to.equal('v1');
      expect(held(here, 'k')).to.equal('v1');
      await here.set('k', 'v2');
      expect(held(here, 'k')).to.equal(undefined);
      expect(await here.get('k')).to.equal('v2');
      await there.set('k', 'v3');
      await sleep(350);
      expect(await here.get('k')).to.equal('v3');
      await here.set('short', 'lived', { timeout: name === 'memcached' ? 1 : 0.2 });
      expect(await here.get('short')).to.equal('lived');
      await sleep(name === 'memcached' ? 2200 : 350);
      expect(await here.get('short')).to.equal(undefined);
    });
  }
});

describe('NearCache', function () {
  const tracked = () => {
    const near = new NearCache({ maxEntries: 100, maxBytes: 20_000 }, jsonSerializer, { toldOfChanges: true });
    near.trust();
    return near;
  };

  it('keeps an entry no longer than the time to live its backend reported, counted from the read', async function () {
    const near = tracked();
    await near.readThrough('k', async () => {
      await sleep(30);
      return { value: 'v', ttl: 60 };
    });
    expect(near.get('k')).to.equal('v');
    await sleep(40);
    expect(near.get('k')).to.equal(undefined);
  });

  it('does not keep a read whose key was forgotten (or that was distrusted) while it was under way', async function () {
    const near = tracked();
    const read = near.readThrough('k', async () => {
      await sleep(10);
      return { value: 'old', ttl: null };
    });
    near.forget('k');
    expect(await read).to.equal('old');
    expect(near.get('k')).to.equal(undefined);
    const distrusted = near.readThrough('k', async () => ({ value: 'old', ttl: null }));
    near.distrust();
    near.trust();
    await distrusted;
    expect(near.get('k')).to.equal(undefined);
  });

  it('is bounded in entries and in bytes', async function () {
    const near = tracked();
    for (let i = 0; i < 1000; i++) await near.readThrough(`small-${i}`, async () => ({ value: i, ttl: null }));
    expect(near.size).to.equal(100);
    for (let i = 0; i < 100; i++) await near.readThrough(`large-${i}`, async () => ({ value: 'x'.repeat(1000), ttl: null }));
    expect(near.size).to.be.at.most(10);
  });

  it('takes a value its serializer cannot read back for a miss, and drops it, instead of failing the read', async function () {
    let loads = 0;
    const once = { dumps: (value: unknown) => JSON.stringify(value), loads: (data: string | Uint8Array) => (++loads > 1 ? JSON.parse('{') : JSON.parse(String(data))) };
    const near = new NearCache(true, once, { toldOfChanges: true });
    near.trust();
    await near.readThrough('k', async () => ({ value: { a: 1 }, ttl: null }));
    expect(near.get('k')).to.deep.equal({ a: 1 });
    expect(near.get('k')).to.equal(undefined);
    expect(near.size).to.equal(0);
  });

  it('hands out copies of objects, so that a caller changing one changes nothing held', async function () {
    const near = tracked();
    const value = await near.readThrough('k', async () => ({ value: { list: [1] }, ttl: null }));
    (near.get('k') as { list: number[] }).list.push(2);
    expect(near.get('k')).to.deep.equal({ list: [1] });
    expect(value).to.deep.equal({ list: [1] });
  });

  it('serves nothing while distrusted but the outage copies of values stored with a grace period', async function () {
    const near = tracked();
    await near.readThrough('plain', async () => ({ value: 'p', ttl: null }));
    const envelope = { 'fragcache:freshUntil': Date.now() + 1000, value: 'g' };
    await near.readThrough('graced', async () => ({ value: envelope, ttl: null }));
    near.distrust();
    expect(near.get('plain')).to.equal(undefined);
    expect(near.outageCopy('plain')).to.equal(undefined);
    expect(near.outageCopy('graced')).to.deep.equal(envelope);
    near.trust();
    expect(near.outageCopy('graced')).to.equal(undefined);
    expect(near.size).to.equal(0);
  });
});
