import { expect } from 'chai';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { CacheRegistry, RedisCache, type CacheParams, type RedisBackendOptions } from 'fragcache';
import { describeConformance } from './conformance.js';
import { rejectionOf } from './helpers.js';
import { redisCluster, redisServers, type RedisServers } from '../servers/index.js';
import { describeTagRoundTrip } from './tag-round-trip.js';

describe('redis', function () {
  this.timeout(60_000);
  let servers: RedisServers;
  let clusterUrls: string[];

  before(async function () {
    servers = await redisServers();
    clusterUrls = await redisCluster();
  });

  describeConformance('redis (standalone)', {
    create: (overrides) => new RedisCache(servers.url, { ...overrides }),
    shortTimeout: 0.15,
    expiryWaitMs: 300,
  });

  describeConformance('redis (cluster)', {
    create: (overrides) => new RedisCache(clusterUrls, { ...overrides, options: { cluster: true } }),
    shortTimeout: 0.15,
    expiryWaitMs: 300,
  });

  describeConformance('redis (near cache)', {
    create: (overrides) => new RedisCache(servers.url, { ...overrides, options: { nearCache: true } }),
    shortTimeout: 0.15,
    expiryWaitMs: 300,
  });

  describeTagRoundTrip('redis', () => ({ backend: 'redis', location: servers.url }));
  describeTagRoundTrip('redis (near cache)', () => ({ backend: 'redis', location: servers.url, options: { nearCache: true } }));

  describe('redis specifics', function () {
    const opened: Array<RedisCache | Redis> = [];
    const cache = (params: CacheParams<RedisBackendOptions> = {}, location: string | string[] = servers.url) => {
      const made = new RedisCache(location, params);
      opened.push(made);
      return made;
    };
    const raw = (url = servers.url) => {
      const client = new Redis(url);
      opened.push(client);
      return client;
    };

    afterEach(async function () {
      await Promise.all(opened.splice(0).map((client) => (client instanceof Redis ? client.quit() : client.close())));
    });

    it('is created by the registry from its name, with client options passed to ioredis', async function () {
      const registry = new CacheRegistry({ default: { backend: 'redis', location: servers.url, options: { client: { connectionName: 'fragcache-test' } } } });
      await registry.default.set('named', 1);
      const clients = await raw().client('LIST');
      expect(String(clients)).to.include('name=fragcache-test');
      await registry.close();
    });

    it('says why a new cache could not connect: the client’s own error', async function () {
      const server = createServer();
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const address = server.address();
      if (address === null || typeof address === 'string') throw new Error('a TCP server has a port');
      const { port } = address;
      await new Promise((resolve) => server.close(resolve));
      const error = await rejectionOf(cache({}, `redis://127.0.0.1:${port}`).get('anything'));
      expect(error.message).to.equal(`Redis did not connect within 500 ms: connect ECONNREFUSED 127.0.0.1:${port}`);
    });

    it('stores exactly makeKey(key), integers as decimal text', async function () {
      const c = cache({ keyPrefix: 'app' });
      await c.set('count', 42);
      await c.set('doc', { a: 1 });
      const client = raw();
      expect(await client.get('app:1:count')).to.equal('42');
      expect(JSON.parse((await client.get('app:1:doc'))!)).to.deep.equal({ a: 1 });
    });

    it('increments atomically under concurrency', async function () {
      const c = cache();
      await c.set('counter', 0);
      const others = Array.from({ length: 4 }, () => cache());
      await Promise.all(others.flatMap((other) => Array.from({ length: 50 }, () => other.incr('counter'))));
      expect(await c.get('counter')).to.equal(200);
    });

    it('clear deletes only its own keys, never the rest of the database', async function () {
      const client = raw();
      await client.set('foreign', 'keep me');
      const mine = cache({ keyPrefix: 'mine' });
      const theirs = cache({ keyPrefix: 'theirs' });
      await mine.set('a', 1);
      await theirs.set('a', 2);
      await mine.clear();
      expect(await client.get('foreign')).to.equal('keep me');
      expect(await mine.get('a')).to.equal(undefined);
      expect(await theirs.get('a')).to.equal(2);
    });

    it('clear with a custom key function needs options.keyPattern', async function () {
      const keyFunction = (key: string) => `custom/${key}`;
      const error = await rejectionOf(cache({ keyFunction }).clear());
      expect(error.message).to.include('options.keyPattern');
      const patterned = cache({ keyFunction, options: { keyPattern: 'custom/*' } });
      await patterned.set('x', 1);
      await patterned.clear();
      expect(await patterned.get('x')).to.equal(undefined);
    });

    it('writes to the first location and reads from the replicas', async function () {
      const replica = raw(servers.replicaUrl);
      const readsBefore = Number(/cmdstat_get:calls=(\d+)/.exec(await replica.info('commandstats'))?.[1] ?? 0);
      const c = cache({}, [servers.url, servers.replicaUrl]);
      await c.set('replicated', 'value');
      await raw().wait(1, 1000);
      expect(await c.get('replicated')).to.equal('value');
      const readsAfter = Number(/cmdstat_get:calls=(\d+)/.exec(await replica.info('commandstats'))?.[1] ?? 0);
      expect(readsAfter).to.be.greaterThan(readsBefore);
      expect(await raw(servers.replicaUrl).get(':1:replicated')).to.equal('"value"');
    });

    it('runs the documented custom backend (Redis with another serializer) from a module specifier', async function () {
      const registry = new CacheRegistry({
        default: { backend: './test/fixtures/compressed-redis-cache.mjs#CompressedRedisCache', location: servers.url, keyPrefix: 'custom' },
      });
      const page = { html: '<li>item</li>'.repeat(1000) };
      await registry.default.set('page', page);
      expect(await registry.default.get('page')).to.deep.equal(page);
      const stored = await raw().getBuffer('custom:1:page');
      expect(stored!.length).to.be.lessThan(JSON.stringify(page).length / 20);
      await registry.close();
    });

    it('reads and writes keys of many slots at once in a cluster', async function () {
      const c = cache({}, clusterUrls);
      const clustered = new RedisCache(clusterUrls, { options: { cluster: true } });
      opened.push(clustered);
      const entries = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`key-${i}`, i]));
      expect(await clustered.setMany(entries)).to.deep.equal([]);
      expect(await clustered.getMany(Object.keys(entries))).to.deep.equal(entries);
      await clustered.deleteMany(Object.keys(entries).slice(0, 25));
      expect(Object.keys(await clustered.getMany(Object.keys(entries)))).to.have.length(25);
      await clustered.clear();
      expect(await clustered.getMany(Object.keys(entries))).to.deep.equal({});
      expect(c).to.be.instanceOf(RedisCache);
    });
  });
});
