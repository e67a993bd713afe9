import { expect } from 'chai';
import { Eta } from 'eta';
import { CacheRegistry, CacheTagError, InvalidCacheKeyError, MemcachedCache, type CacheParams, type MemcachedBackendOptions } from 'fragcache';
import { cachePlugin } from 'fragcache/eta';
import { describeConformance } from './conformance.js';
import { rejectionOf } from './helpers.js';
import { memcachedServers, startMemcached } from '../servers/index.js';
import { describeTagRoundTrip } from './tag-round-trip.js';

describe('memcached', function () {
  this.timeout(60_000);
  let servers: string[];

  before(async function () {
    servers = await memcachedServers();
  });

  describeConformance('memcached', {
    create: (overrides) => new MemcachedCache(servers, { ...overrides }),
    // Memcached counts expiry in whole seconds on a coarse clock.
    shortTimeout: 1,
    expiryWaitMs: 2500,
    strictKeys: true,
  });

  describeConformance('memcached (near cache)', {
    create: (overrides) => new MemcachedCache(servers, { ...overrides, options: { nearCache: true } }),
    shortTimeout: 1,
    expiryWaitMs: 2500,
    strictKeys: true,
  });

  describeTagRoundTrip('memcached', () => ({ backend: 'memcached', location: servers }));
  describeTagRoundTrip('memcached (near cache)', () => ({ backend: 'memcached', location: servers, options: { nearCache: true } }));

  describe('memcached specifics', function () {
    const opened: MemcachedCache[] = [];
    const cache = (location: string | string[], params: CacheParams<MemcachedBackendOptions> = {}) => {
      const made = new MemcachedCache(location, params);
      opened.push(made);
      return made;
    };
    afterEach(async function () {
      await Promise.all(opened.splice(0).map((made) => made.close()));
    });

    it('is created by the registry from its name', async function () {
      const registry = new CacheRegistry({ default: { backend: 'memcached', location: servers[0] } });
      await registry.default.set('named', 'value');
      expect(await registry.default.get('named')).to.equal('value');
      await registry.close();
    });

    it('spreads keys over the servers', async function () {
      const both = cache(servers);
      const keys = Array.from({ length: 40 }, (_, i) => `spread-${i}`);
      await both.setMany(Object.fromEntries(keys.map((key) => [key, key])));
      const counts = await Promise.all(servers.map(async (server) => Object.keys(await cache(server).getMany(keys)).length));
      expect(counts[0]! + counts[1]!).to.equal(40);
      expect(counts[0]).to.be.greaterThan(0);
      expect(counts[1]).to.be.greaterThan(0);
    });

    it('keeps serving the keys of live servers when another server is down', async function () {
      const doomed = await startMemcached('memcached-doomed');
      const pair = cache([servers[0]!, doomed.location], { options: { client: { retries: 1, timeout: 0.5 } } });
      const keys = Array.from({ length: 20 }, (_, i) => `survivor-${i}`);
      await pair.setMany(Object.fromEntries(keys.map((key) => [key, key])));
      await doomed.server.stop();
      const onLiveServer = Object.keys(await cache(servers[0]!).getMany(keys));
      expect(onLiveServer.length).to.be.greaterThan(0);
      for (const key of onLiveServer) expect(await pair.get(key)).to.equal(key);
      const onDeadServer = keys.find((key) => !onLiveServer.includes(key))!;
      expect(await rejectionOf(pair.get(onDeadServer))).to.be.instanceOf(Error);
    });

    it('sends timeouts over 30 days as absolute times', async function () {
      const c = cache(servers);
      await c.set('long', 'value', { timeout: 60 * 60 * 24 * 31 });
      expect(await c.get('long')).to.equal('value');
    });

    it('does not store a value the server refuses, deletes the old one, and reports it from setMany', async function () {
      const c = cache(servers);
      const huge = 'x'.repeat(2 * 1024 * 1024);
      await c.set('big', 'small');
      await c.set('big', huge);
      expect(await c.get('big')).to.equal(undefined);
      expect(await c.setMany({ ok: 1, big: huge })).to.deep.equal(['big']);
      expect(await c.get('ok')).to.equal(1);
    });

    it('increments atomically under concurrency, and decr stops at zero', async function () {
      const c = cache(servers);
      await c.set('counter', 0);
      await Promise.all(Array.from({ length: 100 }, () => cache(servers).incr('counter')));
      expect(await c.get('counter')).to.equal(100);
      expect(await c.decr('counter', 500)).to.equal(0);
    });

    it('fails every render of a cache block whose key memcached refuses, naming the template and line, never rendering it uncached', async function () {
      const caches = new CacheRegistry({ default: { backend: 'memcached', location: servers } });
      const eta = new Eta({ plugins: [cachePlugin({ caches })] });
      const source = '<% cache 60 "two words" %>body<% endcache %>';
      try {
        for (let render = 0; render < 2; render++) {
          const error = await rejectionOf(eta.renderStringAsync(source, {}));
          expect(error).to.be.instanceOf(CacheTagError);
          expect(error.cause).to.be.instanceOf(InvalidCacheKeyError);
          expect(error.message).to.match(/^<string>:1: Cache key contains characters that will cause errors if used with memcached: ':1:template\.cache\.two words\./);
        }
      } finally {
        await caches.close();
      }
    });
  });
});
