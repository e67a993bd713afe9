import { expect } from 'chai';
import { LocMemCache, type CullingOptions } from 'fragcache';
import { describeConformance } from './conformance.js';
import { unique } from './helpers.js';

const location = unique('conformance');
describeConformance('locmem', {
  create: (overrides) => new LocMemCache(location, { ...overrides }),
  shortTimeout: 0.15,
  expiryWaitMs: 300,
});

describe('locmem', function () {
  const create = (options: CullingOptions | undefined, name = unique('locmem')) => new LocMemCache(name, { options });

  async function fill(cache: LocMemCache, count: number): Promise<void> {
    for (let i = 0; i < count; i++) await cache.set(`k${i}`, i);
  }

  async function present(cache: LocMemCache, count: number): Promise<string[]> {
    return Object.keys(await cache.getMany(Array.from({ length: count }, (_, i) => `k${i}`)));
  }

  it('culls floor(count / cullFrequency) least recently used entries when full', async function () {
    const cache = create({ maxEntries: 9, cullFrequency: 3 });
    await fill(cache, 9);
    await cache.set('new', 'x');
    // 9 entries reached the limit: 3 of them (the oldest) made room for the new one.
    expect(await present(cache, 9)).to.deep.equal(['k3', 'k4', 'k5', 'k6', 'k7', 'k8']);
    expect(await cache.get('new')).to.equal('x');
  });

  it('clears everything on a cull when cullFrequency is 0', async function () {
    const cache = create({ maxEntries: 5, cullFrequency: 0 });
    await fill(cache, 5);
    await cache.set('new', 'x');
    expect(await present(cache, 5)).to.deep.equal([]);
    expect(await cache.get('new')).to.equal('x');
  });

  it('refreshes recency on get, set and incr, so those entries survive a cull', async function () {
    const cache = create({ maxEntries: 4, cullFrequency: 2 });
    await fill(cache, 4);
    await cache.get('k0');
    await cache.incr('k1');
    await cache.set('new', 'x');
    expect(await present(cache, 4)).to.deep.equal(['k0', 'k1']);
  });

  it('falls back to 300 entries and a third per cull for invalid settings', async function () {
    const cache = create({ maxEntries: 'many' as unknown as number, cullFrequency: -1 });
    await fill(cache, 300);
    expect(await present(cache, 300)).to.have.length(300);
    await cache.set('new', 'x');
    // 300 entries reached the limit: a third of them, the 100 oldest, made room for the new one.
    expect(await present(cache, 300)).to.deep.equal(Array.from({ length: 200 }, (_, i) => `k${i + 100}`));
  });

  it('shares one store per location and keeps locations apart', async function () {
    const name = unique('shared');
    const first = create(undefined, name);
    const second = create(undefined, name);
    const elsewhere = create(undefined);
    await first.set('key', 'value');
    expect(await second.get('key')).to.equal('value');
    expect(await elsewhere.get('key')).to.equal(undefined);
  });

  it('answers synchronously at the made-key level, so a template hit awaits nothing', function () {
    const cache = create(undefined);
    cache.setByMadeKey(cache.makeKey('key'), 'html', 60);
    expect(cache.getByMadeKey(cache.makeKey('key'))).to.equal('html');
  });
});
