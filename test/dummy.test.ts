import { expect } from 'chai';
import { DummyCache } from 'fragcache';
import { cacheKeyWarnings, rejectionOf } from './helpers.js';

describe('dummy', function () {
  const cache = new DummyCache(undefined, {});

  it('stores nothing: every read misses', async function () {
    await cache.set('key', 'value');
    expect(await cache.get('key')).to.equal(undefined);
    expect(await cache.get('key', { default: 'fallback' })).to.equal('fallback');
    expect(await cache.getMany(['key'])).to.deep.equal({});
    expect(await cache.hasKey('key')).to.equal(false);
  });

  it('answers add with true and setMany with no failures', async function () {
    expect(await cache.add('key', 'value')).to.equal(true);
    expect(await cache.setMany({ a: 1 })).to.deep.equal([]);
    expect(await cache.getOrSet('key', () => 'computed')).to.equal('computed');
  });

  it('answers touch and delete with false', async function () {
    expect(await cache.touch('key')).to.equal(false);
    expect(await cache.delete('key')).to.equal(false);
    await cache.deleteMany(['key']);
    await cache.clear();
  });

  it('rejects incr, decr, incrVersion and decrVersion as for a missing key', async function () {
    for (const attempt of [() => cache.incr('n'), () => cache.decr('n'), () => cache.incrVersion('n'), () => cache.decrVersion('n')]) {
      expect((await rejectionOf(attempt())).message).to.equal("Key 'n' not found");
    }
  });

  it('still validates keys and values', async function () {
    expect(await cacheKeyWarnings(() => cache.set('has space', 1))).to.have.length(1);
    expect(await rejectionOf(cache.set('key', undefined))).to.be.instanceOf(TypeError);
  });
});
