import { expect } from 'chai';
import {
  BaseCache,
  CacheRegistry,
  DummyCache,
  InvalidCacheBackendError,
  LocMemCache,
  caches,
  type CacheParams,
  type CullingOptions,
} from 'fragcache';
import { unique } from './helpers.js';

describe('CacheRegistry', function () {
  it('gives the same instance for the same alias, created on first use', function () {
    const registry = new CacheRegistry({ default: { backend: 'locmem' }, other: { backend: 'dummy' } });
    expect(registry.all({ initializedOnly: true })).to.deep.equal([]);
    expect(registry.get('default')).to.equal(registry.default);
    expect(registry.get('other')).to.be.instanceOf(DummyCache);
    expect(registry.all({ initializedOnly: true })).to.have.length(2);
    expect(registry.all()).to.have.length(2);
    expect(registry.has('other')).to.equal(true);
    expect(registry.has('nope')).to.equal(false);
  });

  it('starts the process-wide registry with an in-memory default', function () {
    expect(caches.default).to.be.instanceOf(LocMemCache);
  });

  it("rejects an unknown alias with The connection '<alias>' doesn't exist.", function () {
    const registry = new CacheRegistry();
    expect(() => registry.get('nope')).to.throw(InvalidCacheBackendError, "The connection 'nope' doesn't exist.");
  });

  it('requires a default cache', function () {
    const message = "You must define a 'default' cache in your cache configuration.";
    expect(() => new CacheRegistry({ other: { backend: 'locmem' } })).to.throw(InvalidCacheBackendError, message);
    expect(() => new CacheRegistry().configure({})).to.throw(InvalidCacheBackendError, message);
  });

  it('requires each cache to be an object of settings, as a JSON config might not give', function () {
    // @ts-expect-error -- a cache is an object of settings
    expect(() => new CacheRegistry({ default: null })).to.throw(
      InvalidCacheBackendError,
      `The cache 'default' must be an object of its settings, such as { "backend": "locmem" }, not null`,
    );
    // @ts-expect-error -- a backend name alone is not a cache
    expect(() => new CacheRegistry({ default: { backend: 'locmem' }, other: 'redis' })).to.throw(
      InvalidCacheBackendError,
      `The cache 'other' must be an object of its settings, such as { "backend": "locmem" }, not "redis"`,
    );
  });

  it('reports a backend that cannot be loaded', function () {
    const registry = new CacheRegistry({
      default: { backend: 'locmem' },
      missing: { backend: './no/such/module.js#Nope' },
      wrongExport: { backend: './test/fixtures/custom-backend.mjs#notABackend' },
      // @ts-expect-error -- a misspelt backend name is a type error, and an error at runtime for JSON configs
      unknownName: { backend: 'memcache' },
    });
    expect(() => registry.get('missing')).to.throw(InvalidCacheBackendError, "Could not find backend './no/such/module.js#Nope': ");
    expect(() => registry.get('wrongExport')).to.throw(
      InvalidCacheBackendError,
      "Could not find backend './test/fixtures/custom-backend.mjs#notABackend': it is not a class extending BaseCache",
    );
    expect(() => registry.get('unknownName')).to.throw(
      InvalidCacheBackendError,
      /^Could not find backend 'memcache': not a built-in backend \(locmem, dummy, redis, file, memcached, database\), nor a module that loads: Cannot find module 'memcache'$/,
    );
  });

  it('refuses a misspelt setting of a cache, and a wrong or misspelt breaker, lock or near cache setting, at compile time and at runtime', function () {
    const registry = new CacheRegistry({
      default: { backend: 'locmem' },
      // @ts-expect-error -- a misspelt setting
      timout: { backend: 'locmem', timout: 60 },
      // @ts-expect-error -- a number, not a string
      breakerText: { backend: 'locmem', breaker: { timeout: '200' } },
      breakerZero: { backend: 'locmem', breaker: { failureThreshold: 0 } },
      // @ts-expect-error -- a misspelt breaker setting
      breakerName: { backend: 'locmem', breaker: { timeOut: 200 } },
      // @ts-expect-error -- a misspelt lock setting
      lockName: { backend: 'locmem', lock: { leese: 100 } },
      lockNegative: { backend: 'locmem', lock: { lease: -1 } },
      // @ts-expect-error -- an object of settings, not null
      breakerNull: { backend: 'locmem', breaker: null },
      // @ts-expect-error -- an object of settings, not text
      lockText: { backend: 'locmem', lock: 'true' },
      breakerTooLong: { backend: 'locmem', breaker: { timeout: 3e9 } },
      // @ts-expect-error -- a misspelt near cache setting
      nearName: { backend: 'memcached', options: { nearCache: { maxByte: 5 } } },
      // @ts-expect-error -- Redis tells of every change: there is no staleness to bound
      nearRedis: { backend: 'redis', options: { nearCache: { maxStaleness: 5 } } },
    });
    const aliases = ['timout', 'breakerText', 'breakerZero', 'breakerName', 'lockName', 'lockNegative', 'breakerNull', 'lockText', 'breakerTooLong', 'nearName', 'nearRedis'];
    const refusals = aliases.map((alias) => {
      try {
        registry.get(alias);
        return `${alias}: created`;
      } catch (error) {
        return `${alias}: ${(error as Error).name}: ${(error as Error).message}`;
      }
    });
    expect(refusals).to.deep.equal([
      "timout: TypeError: Unknown setting 'timout' in cache 'timout': a cache takes backend, location, timeout, keyPrefix, version, keyFunction, serializer, breaker, lock, options; a backend's own options go under options",
      "breakerText: TypeError: breaker.timeout must be a positive number of milliseconds, at most 2147483647, not '200'",
      'breakerZero: TypeError: breaker.failureThreshold must be a positive number or Infinity, not 0',
      "breakerName: TypeError: Unknown setting 'timeOut' in breaker: it takes failureThreshold, retryAfter, timeout",
      "lockName: TypeError: Unknown setting 'leese' in lock: it takes lease, wait, pollInterval",
      'lockNegative: TypeError: lock.lease must be a positive number of milliseconds, at most 2147483647, not -1',
      'breakerNull: TypeError: breaker must be an object of settings, not null',
      "lockText: TypeError: lock must be true, false or an object of settings, not 'true'",
      // A longer timer would fire at once, and every read would time out.
      'breakerTooLong: TypeError: breaker.timeout must be a positive number of milliseconds, at most 2147483647, not 3000000000',
      "nearName: TypeError: Unknown setting 'maxByte' in options.nearCache: it takes maxEntries, maxBytes, maxStaleness",
      "nearRedis: TypeError: Unknown setting 'maxStaleness' in options.nearCache: it takes maxEntries, maxBytes",
    ]);
    expect(new CacheRegistry({ default: { backend: 'locmem', breaker: { failureThreshold: Infinity } } }).default.breaker.allows()).to.equal(true);
  });

  it('refuses an option a built-in backend does not know, at compile time and at runtime', function () {
    const registry = new CacheRegistry({
      default: { backend: 'locmem' },
      // @ts-expect-error -- client options go under options.client
      redis: { backend: 'redis', options: { connectTimeout: 50 } },
      // @ts-expect-error -- a misspelt option
      local: { backend: 'locmem', options: { maxEntry: 10 } },
    });
    expect(() => registry.get('redis')).to.throw(
      TypeError,
      "Unknown option 'connectTimeout' for the redis backend: it takes client, cluster, clusterOptions, keyPattern, nearCache; options of the client library go under options.client",
    );
    expect(() => registry.get('local')).to.throw(TypeError, "Unknown option 'maxEntry' for the locmem backend: it takes maxEntries, cullFrequency");
  });

  it('loads a serializer from a module specifier: an object, or a class it instantiates', async function () {
    const registry = new CacheRegistry({
      default: { backend: 'locmem', location: unique('serializer'), serializer: './test/fixtures/shouting-serializer.mjs#shouting' },
      byClass: { backend: 'locmem', location: unique('serializer'), serializer: './test/fixtures/shouting-serializer.mjs#Shouting' },
      wrong: { backend: 'locmem', serializer: './test/fixtures/shouting-serializer.mjs#notASerializer' },
    });
    for (const cache of [registry.default, registry.get('byClass')]) {
      await cache.set('k', { name: 'ann' });
      expect(await cache.get('k')).to.deep.equal({ NAME: 'ANN' });
    }
    expect(() => registry.get('wrong')).to.throw(
      InvalidCacheBackendError,
      "Could not find backend './test/fixtures/shouting-serializer.mjs#notASerializer': the serializer has no dumps and loads methods",
    );
  });

  it('creates custom backends from a class or a module specifier', async function () {
    class Recording extends LocMemCache {
      readonly seen: { location: unknown; params: CacheParams<CullingOptions & { flavour: string }> };
      constructor(location: string | string[] | undefined, params: CacheParams<CullingOptions & { flavour: string }>) {
        super(location, params);
        this.seen = { location, params };
      }
    }
    const location = unique('custom');
    const registry = new CacheRegistry({
      default: { backend: Recording, location, timeout: 60, options: { flavour: 'x' } },
      specifier: { backend: './test/fixtures/custom-backend.mjs#ShoutingCache', location },
      defaultExport: { backend: './test/fixtures/custom-backend.mjs', location },
    });
    const recording = registry.default as Recording;
    expect(recording.seen.location).to.equal(location);
    expect(recording.seen.params.options).to.deep.equal({ flavour: 'x' });
    expect(recording.defaultTimeout).to.equal(60);

    await registry.default.set('greeting', 'hello');
    expect(registry.get('specifier')).to.be.instanceOf(BaseCache);
    expect(await registry.get('specifier').get('greeting')).to.equal('HELLO');
    expect(await registry.get('defaultExport').get('greeting')).to.equal('HELLO');
  });

  it('loads a key function from a module specifier', async function () {
    const registry = new CacheRegistry({
      default: { backend: 'locmem', keyPrefix: 'p', keyFunction: './test/fixtures/key-function.cjs#dashedKey' },
      broken: { backend: 'locmem', keyFunction: './test/fixtures/key-function.cjs#absent' },
    });
    expect(registry.default.makeKey('key')).to.equal('p-1-key');
    expect(() => registry.get('broken')).to.throw(InvalidCacheBackendError, "Could not find backend './test/fixtures/key-function.cjs#absent'");
  });

  it('configure replaces the caches, closing those created before', async function () {
    const closed: string[] = [];
    class Closing extends LocMemCache {
      override async close(): Promise<void> {
        closed.push('closed');
      }
    }
    const registry = new CacheRegistry({ default: { backend: Closing } });
    const before = registry.default;
    registry.configure({ default: { backend: 'dummy' } });
    expect(registry.default).to.be.instanceOf(DummyCache).and.not.equal(before);
    await new Promise((resolve) => setImmediate(resolve));
    expect(closed).to.deep.equal(['closed']);
  });

  it('close closes every created cache; they are created anew afterwards', async function () {
    let closes = 0;
    class Counting extends LocMemCache {
      override async close(): Promise<void> {
        closes += 1;
      }
    }
    const registry = new CacheRegistry({ default: { backend: Counting }, b: { backend: Counting } });
    const first = registry.default;
    registry.get('b');
    await registry.close();
    expect(closes).to.equal(2);
    expect(registry.default).not.to.equal(first);
  });
});
