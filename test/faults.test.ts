/**
 * "A backend problem is never a page problem", tried on real servers that the tests kill, stop, stall
 * and poison, and with real processes racing for one fragment.
 */
import { expect } from 'chai';
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { Eta } from 'eta';
import { CacheRegistry, DatabaseCache, makeTemplateFragmentKey, type BackendConfig, type CacheIncident, type CacheRecovery } from 'fragcache';
import { cachePlugin } from 'fragcache/eta';
import { CacheExtension, renderStringAsync } from 'fragcache/nunjucks';
import memjs from 'memjs';
import nunjucks from 'nunjucks';
import pg from 'pg';
import { Redis } from 'ioredis';
import { memcachedServers, postgresServer, redisCli, redisServers, startMemcached, startPostgres, startRedis } from '../servers/index.js';
import { SOURCES, sleep, unique, until } from './helpers.js';

const runFile = promisify(execFile);

/** A registry on `config`, with its outages recorded instead of printed. */
function watchedRegistry(config: BackendConfig) {
  const caches = new CacheRegistry({ default: config });
  const incidents: CacheIncident[] = [];
  const recoveries: CacheRecovery[] = [];
  caches.on('incident', (incident) => incidents.push(incident));
  caches.on('recovery', (recovery) => recoveries.push(recovery));
  return { caches, incidents, recoveries };
}

/** A Nunjucks page with one block varying on `n`, whose body counts its renders. */
function nunjucksPage(caches: CacheRegistry) {
  const env = new nunjucks.Environment(null, { autoescape: true });
  env.addExtension('CacheExtension', new CacheExtension({ caches, async: true }));
  const counter = { bodies: 0 };
  const render = (n: number) =>
    renderStringAsync(env, 'A{% cache 60 row n %}<li>{{ body(n) }}</li>{% endcache %}B', {
      n,
      body: (value: number) => {
        counter.bodies++;
        return `row ${value}`;
      },
    });
  return { render, counter, expected: (n: number) => `A<li>row ${n}</li>B` };
}

describe('Faults on real servers', function () {
  this.timeout(120_000);

  it('Redis SIGKILLed during 10 000 renders and restarted: no failed render, none over 100 ms while it is down, hits within about a second of its restart', async function () {
    const redis = await startRedis('redis-killed');
    const { caches, incidents, recoveries } = watchedRegistry({ backend: 'redis', location: `redis://127.0.0.1:${redis.port}` });
    const page = nunjucksPage(caches);
    const failures: unknown[] = [];
    let slowestWhileDown = 0;
    let down = false;
    let restartedAt = 0;
    let firstHitAfterRestart = 0;
    let downSince = 0;
    for (let i = 0; i < 10_000 || firstHitAfterRestart === 0; i++) {
      if (i === 2000) {
        await redis.stop();
        down = true;
        downSince = performance.now();
      }
      if (down && performance.now() - downSince > 1500) {
        await redis.start();
        down = false;
        restartedAt = performance.now();
      }
      const bodiesBefore = page.counter.bodies;
      const started = performance.now();
      try {
        expect(await page.render(i % 20)).to.equal(page.expected(i % 20));
      } catch (error) {
        failures.push(error);
      }
      const took = performance.now() - started;
      if (down) slowestWhileDown = Math.max(slowestWhileDown, took);
      if (restartedAt > 0 && firstHitAfterRestart === 0 && page.counter.bodies === bodiesBefore) firstHitAfterRestart = performance.now();
      if (i > 100_000) throw new Error('no hit after the restart');
    }
    await caches.close();
    await redis.stop();
    expect(failures).to.deep.equal([]);
    expect(slowestWhileDown).to.be.below(100);
    expect(firstHitAfterRestart - restartedAt).to.be.below(1500);
    expect(incidents).to.have.length(1);
    expect(incidents[0]!.alias).to.equal('default');
    expect(recoveries).to.have.length(1);
  });

  it('one of two memcached servers down: no failed render, none slow', async function () {
    const [live, doomed] = [await startMemcached('memcached-live'), await startMemcached('memcached-doomed')];
    const { caches } = watchedRegistry({ backend: 'memcached', location: [live.location, doomed.location] });
    const page = nunjucksPage(caches);
    const failures: unknown[] = [];
    let slowest = 0;
    for (let i = 0; i < 2000; i++) {
      if (i === 500) await doomed.server.stop();
      const started = performance.now();
      try {
        expect(await page.render(i % 50)).to.equal(page.expected(i % 50));
      } catch (error) {
        failures.push(error);
      }
      if (i > 500) slowest = Math.max(slowest, performance.now() - started);
    }
    await caches.close();
    await live.server.stop();
    expect(failures).to.deep.equal([]);
    expect(slowest).to.be.below(100);
  });

  it('PostgreSQL stopped with idle pool connections and restarted: no failed render, no crash, hits again', async function () {
    const postgres = await startPostgres('postgres-stopped');
    const { caches, incidents, recoveries } = watchedRegistry({
      backend: 'database',
      location: 'fault_cache',
      options: { client: { connectionString: postgres.connectionString } },
    });
    await (caches.default as DatabaseCache).createTable();
    const page = nunjucksPage(caches);
    const failures: unknown[] = [];
    const renderSome = async (count: number) => {
      for (let i = 0; i < count; i++) {
        try {
          expect(await page.render(i % 10)).to.equal(page.expected(i % 10));
        } catch (error) {
          failures.push(error);
        }
      }
    };
    // Concurrent renders leave several idle connections in the pool.
    await Promise.all(Array.from({ length: 5 }, () => renderSome(20)));
    await postgres.server.stop('SIGINT');
    await renderSome(200);
    await postgres.server.start();
    const restartedAt = performance.now();
    let hit = false;
    while (!hit && performance.now() - restartedAt < 10_000) {
      const bodies = page.counter.bodies;
      await renderSome(1);
      hit = page.counter.bodies === bodies;
      await sleep(20);
    }
    await caches.close();
    await postgres.server.stop('SIGINT');
    expect(failures).to.deep.equal([]);
    expect(hit, 'a hit after the restart').to.equal(true);
    expect(incidents).to.have.length(1);
    expect(recoveries).to.have.length(1);
  });

  it('a stalled Redis (DEBUG SLEEP): pages wait no longer than the timeout, then skip it', async function () {
    const redis = await startRedis('redis-stalled', ['--enable-debug-command', 'yes']);
    const { caches, incidents } = watchedRegistry({ backend: 'redis', location: `redis://127.0.0.1:${redis.port}` });
    const page = nunjucksPage(caches);
    for (let n = 0; n < 5; n++) await page.render(n);
    const stall = runFile('redis-cli', ['-p', String(redis.port), 'DEBUG', 'SLEEP', '2']);
    await sleep(100);
    const latencies: number[] = [];
    for (let i = 0; i < 40; i++) {
      const started = performance.now();
      expect(await page.render(i % 5)).to.equal(page.expected(i % 5));
      latencies.push(performance.now() - started);
    }
    await stall;
    await caches.close();
    await redis.stop();
    expect(Math.max(...latencies)).to.be.below(150);
    // Three timeouts open the circuit: the other renders skip Redis without waiting.
    expect(latencies.filter((latency) => latency >= 40).length).to.be.at.most(3);
    expect(incidents).to.have.length(1);
    expect(incidents[0]!.error).to.have.property('name', 'CacheTimeoutError');
  });

  it('a block whose read timed out tries neither the lock nor the write: the page waits for one timeout, and nothing reaches Redis after its stall', async function () {
    const redis = await startRedis('redis-stalled-once', ['--enable-debug-command', 'yes']);
    const keyPrefix = unique('stall');
    const { caches, incidents } = watchedRegistry({ backend: 'redis', location: `redis://127.0.0.1:${redis.port}`, keyPrefix, lock: true });
    const page = nunjucksPage(caches);
    expect(await page.render(0)).to.equal(page.expected(0));
    const stall = runFile('redis-cli', ['-p', String(redis.port), 'DEBUG', 'SLEEP', '1']);
    await sleep(100);
    const started = performance.now();
    expect(await page.render(1)).to.equal(page.expected(1));
    const elapsed = performance.now() - started;
    await stall;
    const keys = redisCli(redis.port, 'KEYS', `${keyPrefix}*`).split('\n').filter(Boolean);
    await caches.close();
    await redis.stop();
    expect(elapsed, 'ms the page took').to.be.below(500);
    expect(keys, 'the keys in Redis after its stall').to.deep.equal([`${keyPrefix}:1:${makeTemplateFragmentKey('row', [0])}`]);
    expect(incidents).to.have.length(1);
  });

  it('a healthy Redis is not taken for a stalled one when the process is busy: a render followed by 100 ms of synchronous work is a hit', async function () {
    const { caches, incidents } = watchedRegistry({ backend: 'redis', location: (await redisServers()).url, keyPrefix: unique('busy') });
    const page = nunjucksPage(caches);
    await page.render(1);
    const bodies = page.counter.bodies;
    for (let i = 0; i < 5; i++) {
      const rendered = page.render(1);
      // Another request's handler holds the event loop in the same task as the render's read.
      const until = performance.now() + 100;
      while (performance.now() < until);
      expect(await rendered).to.equal(page.expected(1));
    }
    await caches.close();
    expect(page.counter.bodies - bodies, 'bodies rendered again').to.equal(0);
    expect(incidents).to.deep.equal([]);
  });
});

describe('Poisoned entries are misses that the next render repairs', function () {
  this.timeout(60_000);

  /** Renders the block, poisons its entry with `poison`, and checks a miss then a hit. */
  async function poisonedThenRepaired(config: BackendConfig, poison: (madeKey: string, caches: CacheRegistry) => Promise<void>) {
    const { caches, incidents } = watchedRegistry(config);
    const page = nunjucksPage(caches);
    const n = Date.now();
    expect(await page.render(n)).to.equal(page.expected(n));
    await poison(caches.default.makeKey(makeTemplateFragmentKey('row', [n])), caches);
    expect(await page.render(n)).to.equal(page.expected(n));
    expect(page.counter.bodies, 'the poisoned entry is a miss').to.equal(2);
    expect(await page.render(n)).to.equal(page.expected(n));
    expect(page.counter.bodies, 'and the render after is a hit').to.equal(2);
    expect(incidents, 'a poisoned entry is no outage').to.deep.equal([]);
    await caches.close();
  }

  for (const [poisonName, raw] of [
    ['invalid JSON', (key: string, client: Redis) => client.set(key, '{"unfinished')],
    ['a LIST', async (key: string, client: Redis) => {
      await client.del(key);
      await client.lpush(key, 'x');
    }],
  ] as const) {
    it(`Redis: ${poisonName} under the key`, async function () {
      const { url } = await redisServers();
      const client = new Redis(url);
      await poisonedThenRepaired({ backend: 'redis', location: url, keyPrefix: unique('poison') }, async (key) => {
        await raw(key, client);
      });
      client.disconnect();
    });
  }

  it('memcached: invalid JSON under the key', async function () {
    const servers = await memcachedServers();
    const client = memjs.Client.create(servers[0], { logger: { log() {} } });
    await poisonedThenRepaired({ backend: 'memcached', location: servers[0]!, keyPrefix: unique('poison') }, async (key) => {
      await client.set(key, '{"unfinished', {});
    });
    client.close();
  });

  it('PostgreSQL: invalid JSON in a row that never expires', async function () {
    const { connectionString } = await postgresServer();
    const pool = new pg.Pool({ connectionString });
    const config: BackendConfig = { backend: 'database', location: 'poison_cache', options: { client: { connectionString } } };
    const creator = new CacheRegistry({ default: config });
    await (creator.default as DatabaseCache).createTable();
    await creator.close();
    await poisonedThenRepaired(config, async (key) => {
      await pool.query(`UPDATE poison_cache SET value = $2, expires = NULL WHERE cache_key = $1`, [key, Buffer.from('{"unfinished')]);
    });
    await pool.end();
  });

  for (const [poisonName, poison] of [
    [
      'a directory',
      (path: string) => {
        rmSync(path, { force: true });
        mkdirSync(join(path, 'inside'), { recursive: true });
      },
    ],
    ['garbage bytes', (path: string) => writeFileSync(path, 'fragcache/1 never\n\u0000garbage')],
  ] as const) {
    it(`file: ${poisonName} in place of the cache file`, async function () {
      const directory = mkdtempSync(join(tmpdir(), 'fragcache-poison-'));
      await poisonedThenRepaired({ backend: 'file', location: directory }, async (key) => {
        const path = join(directory, `${createHash('md5').update(key).digest('hex')}.fragcache`);
        poison(path);
      });
    });
  }
});

/** Starts a fragment worker process; resolves once it is ready, with the means to start it and read its result. */
async function startWorker(options: object) {
  const child = spawn(process.execPath, [...SOURCES, 'test/fixtures/fragment-worker.mts', JSON.stringify(options)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async (): Promise<string> => {
    const { value, done } = await lines.next();
    if (done) throw new Error('the worker exited early');
    return value as string;
  };
  expect(await next()).to.equal('ready');
  return {
    child,
    go: () => child.stdin!.write('go\n'),
    next,
    // The worker is stopped once it has answered: its result is all the test asserts.
    result: async () => {
      const result = JSON.parse(await next()) as { bodies: number; outputs: string[]; failures: string[] };
      child.kill('SIGKILL');
      return result;
    },
  };
}

describe('Stampedes', function () {
  this.timeout(60_000);

  for (const engine of ['Nunjucks', 'Eta'] as const) {
    for (const backend of ['locmem', 'redis'] as const) {
      it(`${engine} on ${backend}: 200 concurrent renders of a cold fragment run its body once, and all print it`, async function () {
        const config: BackendConfig = backend === 'redis' ? { backend, location: (await redisServers()).url, keyPrefix: unique('stampede') } : { backend, location: unique('stampede') };
        const caches = new CacheRegistry({ default: config });
        let bodies = 0;
        const slowBody = async () => {
          bodies++;
          await sleep(20);
          return 'expensive';
        };
        let render: () => Promise<string>;
        if (engine === 'Eta') {
          const eta = new Eta({ plugins: [cachePlugin({ caches })] });
          render = () => eta.renderStringAsync('[<% cache 60 cold %><%= await it.slowBody() %><% endcache %>]', { slowBody });
        } else {
          const env = new nunjucks.Environment(null);
          env.addExtension('CacheExtension', new CacheExtension({ caches, async: true }));
          env.addFilter('slow', (_value: unknown, done: (error: unknown, result?: string) => void) => void slowBody().then((text) => done(null, text)), true);
          render = () => renderStringAsync(env, '[{% cache 60 cold %}{{ 1 | slow }}{% endcache %}]');
        }
        const pages = await Promise.all(Array.from({ length: 200 }, render));
        await caches.close();
        expect(new Set(pages)).to.deep.equal(new Set(['[expensive]']));
        expect(bodies).to.equal(1);
      });
    }
  }

  it('a block never waits for itself: nested in a block of its own key, or in two pages nesting two keys in opposite orders', async function () {
    const caches = new CacheRegistry({ default: { backend: 'locmem', location: unique('nested') } });
    const eta = new Eta({ plugins: [cachePlugin({ caches })] });
    const slow = async () => {
      await sleep(10);
      return 'x';
    };
    const withinSeconds = <T>(promise: Promise<T>) =>
      Promise.race([promise, sleep(5000).then(() => Promise.reject(new Error('the render never finished')))]);
    expect(await withinSeconds(eta.renderStringAsync('<% cache 60 same %>[<% cache 60 same %><%= await it.slow() %><% endcache %>]<% endcache %>', { slow }))).to.equal('[x]');
    const [first, second] = await withinSeconds(
      Promise.all([
        eta.renderStringAsync('<% cache 60 a %>A<%= await it.slow() %>(<% cache 60 b %>B<%= await it.slow() %><% endcache %>)<% endcache %>', { slow }),
        eta.renderStringAsync('<% cache 60 b %>B<%= await it.slow() %>(<% cache 60 a %>A<%= await it.slow() %><% endcache %>)<% endcache %>', { slow }),
      ]),
    );
    expect(first).to.match(/^Ax\(B/);
    expect(second).to.match(/^Bx\(A/);
  });

  it('concurrent renders share the body’s error too', async function () {
    const caches = new CacheRegistry({ default: { backend: 'locmem', location: unique('failing') } });
    const eta = new Eta({ plugins: [cachePlugin({ caches })] });
    let bodies = 0;
    const failing = async () => {
      bodies++;
      await sleep(10);
      throw new Error('the database behind the fragment is down');
    };
    const pages = await Promise.allSettled(Array.from({ length: 20 }, () => eta.renderStringAsync('<% cache 60 f %><%= await it.failing() %><% endcache %>', { failing })));
    expect(bodies).to.equal(1);
    expect(pages.every((page) => page.status === 'rejected' && String(page.reason).includes('the database behind the fragment is down'))).to.equal(true);
  });

  for (const backend of ['locmem', 'redis'] as const) {
    it(`getOrSet on ${backend}: 200 concurrent calls for a missing key call the function once`, async function () {
      const config: BackendConfig = backend === 'redis' ? { backend, location: (await redisServers()).url, keyPrefix: unique('gos') } : { backend, location: unique('gos') };
      const caches = new CacheRegistry({ default: config });
      let calls = 0;
      const compute = async () => {
        calls++;
        await sleep(20);
        return { answer: 42 };
      };
      const values = await Promise.all(Array.from({ length: 200 }, () => caches.default.getOrSet('answer', compute)));
      await caches.close();
      expect(calls).to.equal(1);
      expect(values.every((value) => value.answer === 42)).to.equal(true);
    });
  }

  it('4 processes × 50 concurrent renders on Redis with the lock: the body runs once', async function () {
    const { url } = await redisServers();
    const config = { default: { backend: 'redis', location: url, keyPrefix: unique('processes'), lock: true } };
    const workers = await Promise.all(Array.from({ length: 4 }, () => startWorker({ config, concurrency: 50, bodyMs: 200 })));
    for (const worker of workers) worker.go();
    const results = await Promise.all(workers.map((worker) => worker.result()));
    expect(results.flatMap((result) => result.failures)).to.deep.equal([]);
    expect(results.reduce((sum, result) => sum + result.bodies, 0)).to.equal(1);
    expect(new Set(results.flatMap((result) => result.outputs)).size).to.equal(1);
  });

  it('a lock holder killed mid-render: another process renders once its lease ends', async function () {
    const { url } = await redisServers();
    const config = { default: { backend: 'redis', location: url, keyPrefix: unique('holder'), lock: { lease: 500, wait: 5000 } } };
    const holder = await startWorker({ config, concurrency: 1, bodyMs: 0, hold: true });
    holder.go();
    expect(await holder.next()).to.equal('holding');
    holder.child.kill('SIGKILL');
    const started = performance.now();
    const other = await startWorker({ config, concurrency: 1, bodyMs: 0 });
    other.go();
    const result = await other.result();
    expect(result).to.deep.include({ bodies: 1, failures: [] });
    expect(result.outputs).to.have.length(1);
    expect(performance.now() - started, 'it took the lock after the lease, before giving up waiting').to.be.below(4000);
  });
});

describe('Shutting down: caches.close() right after or during renders', function () {
  this.timeout(30_000);

  const shutdownConfigs: Record<string, () => Promise<BackendConfig>> = {
    redis: async () => ({ backend: 'redis', location: (await redisServers()).url, keyPrefix: unique('closing'), lock: true }),
    memcached: async () => ({ backend: 'memcached', location: await memcachedServers(), keyPrefix: unique('closing'), lock: true }),
    database: async () => ({ backend: 'database', location: unique('closing'), options: { client: { connectionString: (await postgresServer()).connectionString } }, lock: true }),
    file: async () => ({ backend: 'file', location: mkdtempSync(join(tmpdir(), 'fragcache-closing-')), lock: true }),
  };
  for (const [backend, configOf] of Object.entries(shutdownConfigs)) {
    it(`${backend}: closing the caches right after a render gives its lock back first, and reports no outage`, async function () {
      const config = await configOf();
      const { caches, incidents } = watchedRegistry(config);
      if (caches.default instanceof DatabaseCache) await caches.default.createTable();
      const page = nunjucksPage(caches);
      expect(await page.render(1)).to.equal(page.expected(1));
      await caches.close();
      const reopened = new CacheRegistry({ default: config });
      const fragmentKey = makeTemplateFragmentKey('row', [1]);
      const [stored, lock] = [await reopened.default.get(fragmentKey), await reopened.default.get(`${fragmentKey}:lock`)];
      await reopened.close();
      expect(stored).to.equal('<li>row 1</li>');
      expect(lock, 'the lock entry').to.equal(undefined);
      expect(incidents).to.deep.equal([]);
    });

    it(`${backend}: a render holding the lock when the caches close gives it back at close, not at the end of its lease`, async function () {
      const config = await configOf();
      const { caches, incidents } = watchedRegistry(config);
      if (caches.default instanceof DatabaseCache) await caches.default.createTable();
      const eta = new Eta({ plugins: [cachePlugin({ caches })] });
      const slow = () => new Promise((resolve) => setTimeout(() => resolve('body'), 150));
      const rendering = eta.renderStringAsync('<% cache 60 slow %><%= await it.slow() %><% endcache %>', { slow });
      const lockKey = `${makeTemplateFragmentKey('slow')}:lock`;
      const reader = new CacheRegistry({ default: config });
      await until(async () => (await reader.default.get(lockKey)) !== undefined, 'the render holding the lock');
      await caches.close();
      expect(await rendering).to.equal('body');
      const lock = await reader.default.get(lockKey);
      await reader.close();
      expect(lock, 'the lock entry after close').to.equal(undefined);
      expect(incidents).to.deep.equal([]);
    });

    it(`${backend}: a render under way when the caches close is served, and the cut-off read is not reported as an outage`, async function () {
      const config = await configOf();
      const { caches, incidents } = watchedRegistry(config);
      if (caches.default instanceof DatabaseCache) await caches.default.createTable();
      await caches.default.get('connected');
      const page = nunjucksPage(caches);
      const rendering = page.render(2);
      await new Promise((resolve) => setImmediate(resolve));
      await caches.close();
      expect(await rendering).to.equal(page.expected(2));
      expect(incidents).to.deep.equal([]);
    });
  }
});

describe('Serving stale', function () {
  this.timeout(30_000);

  it('stale=SECONDS: after the timeout, one render refreshes while the others are served the stale copy', async function () {
    const { url } = await redisServers();
    const caches = new CacheRegistry({ default: { backend: 'redis', location: url, keyPrefix: unique('stale') } });
    const env = new nunjucks.Environment(null);
    env.addExtension('CacheExtension', new CacheExtension({ caches, async: true }));
    const eta = new Eta({ plugins: [cachePlugin({ caches })] });
    let bodies = 0;
    const version = { current: 'v1' };
    const body = () => {
      bodies++;
      return version.current;
    };
    const renders = {
      Nunjucks: () => renderStringAsync(env, '{% cache 1 news stale=60 %}{{ body() }}{% endcache %}', { body }),
      Eta: () => eta.renderStringAsync('<% cache 1 news stale=60 %><%= it.body() %><% endcache %>', { body }),
    };
    for (const [engine, render] of Object.entries(renders)) {
      await caches.default.clear();
      version.current = 'v1';
      bodies = 0;
      expect(await render(), engine).to.equal('v1');
      expect(await render(), engine).to.equal('v1');
      await sleep(1100);
      version.current = 'v2';
      const concurrent = await Promise.all([render(), render(), render()]);
      expect(concurrent, engine).to.deep.equal(['v2', 'v1', 'v1']);
      expect(await render(), engine).to.equal('v2');
      expect(bodies, engine).to.equal(2);
    }
    await caches.close();
  });

  it('getOrSet with stale: the stale value is served while one caller computes the new one', async function () {
    const caches = new CacheRegistry({ default: { backend: 'locmem', location: unique('stale-gos') } });
    let version = 1;
    const compute = async () => {
      await sleep(50);
      return version;
    };
    expect(await caches.default.getOrSet('v', compute, { timeout: 0.2, stale: 60 })).to.equal(1);
    await sleep(300);
    version = 2;
    const [refresher, waiting] = await Promise.all([caches.default.getOrSet('v', compute, { timeout: 0.2, stale: 60 }), caches.default.getOrSet('v', compute, { timeout: 0.2, stale: 60 })]);
    expect([refresher, waiting]).to.deep.equal([2, 1]);
    expect(await caches.default.get('v')).to.equal(2);
  });
});

describe('The file cache under four processes', function () {
  this.timeout(60_000);

  it('writing, reading and culling one directory for 10 s: no corrupt read, no error, no temporary file left', async function () {
    const directory = mkdtempSync(join(tmpdir(), 'fragcache-churn-'));
    const results = await Promise.all(
      Array.from(
        { length: 4 },
        (_, writer) =>
          new Promise<{ writes: number; reads: number; corrupt: number; errors: string[] }>((resolve, reject) => {
            const child = spawn(process.execPath, [...SOURCES, 'test/fixtures/file-churner.mjs', directory, `w${writer}`, '10000'], { stdio: ['ignore', 'pipe', 'inherit'] });
            let output = '';
            child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
            child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(output)) : reject(new Error(`the writer exited with ${code}`))));
          }),
      ),
    );
    expect(results.flatMap((result) => result.errors)).to.deep.equal([]);
    expect(results.reduce((sum, result) => sum + result.corrupt, 0)).to.equal(0);
    expect(results.every((result) => result.writes > 100 && result.reads > 100)).to.equal(true);
    expect(readdirSync(directory).filter((name) => name.endsWith('.tmp'))).to.deep.equal([]);
  });
});

describe('Bounded and tidy', function () {
  it('Redis clear() deletes only this cache’s keys: not a longer prefix’s, not foreign ones', async function () {
    const { url, port } = await redisServers();
    const prefix = unique('p9');
    const caches = new CacheRegistry({ default: { backend: 'redis', location: url, keyPrefix: prefix }, longer: { backend: 'redis', location: url, keyPrefix: `${prefix}:x` } });
    await caches.default.set('mine', 1);
    await caches.get('longer').set('theirs', 1);
    redisCli(port, 'SET', `${prefix}:sessions:abc`, 'session');
    await caches.default.clear();
    expect(await caches.default.get('mine')).to.equal(undefined);
    expect(await caches.get('longer').get('theirs')).to.equal(1);
    expect(redisCli(port, 'GET', `${prefix}:sessions:abc`).trim()).to.equal('session');
    await caches.close();
  });
});
