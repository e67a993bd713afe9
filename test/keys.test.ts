import { expect } from 'chai';
import { CacheRegistry, invalidateFragment, makeTemplateFragmentKey } from 'fragcache';

describe('makeTemplateFragmentKey', function () {
  // Expected values computed independently with Python's hashlib over the netstring encoding.
  const vectors: Array<[string, unknown[] | undefined, string]> = [
    ['sidebar', undefined, 'template.cache.sidebar.d41d8cd98f00b204e9800998ecf8427e'],
    ['sidebar', [], 'template.cache.sidebar.d41d8cd98f00b204e9800998ecf8427e'],
    ['sidebar', ['alice'], 'template.cache.sidebar.6496a001d04a089af74acbb2476031e4'],
    ['sidebar', ['a:b'], 'template.cache.sidebar.dc16319ae166c8df116bd88f10ca9d6e'],
    ['sidebar', ['a', 'b'], 'template.cache.sidebar.85e2d709642419eb2d254542ec75556a'],
    ['menu', [42, 'en'], 'template.cache.menu.0cda9f2afdbc52497ec73bc969f8bec6'],
    ['i18n', ['Ünïcödé 日本'], 'template.cache.i18n.3e41c9f9ead437740322708486de608d'],
    ['x', [null, undefined], 'template.cache.x.648633125574c0d8c54ae9894d4c2a44'],
    ['x', [1.5, true], 'template.cache.x.439cce56f12a2a442d98c26ef79b5986'],
  ];

  for (const [name, vary, expected] of vectors) {
    it(`${name} ${JSON.stringify(vary)}`, function () {
      expect(makeTemplateFragmentKey(name, vary)).to.equal(expected);
    });
  }

  it('does not let ["a:b"] and ["a", "b"] collide', function () {
    expect(makeTemplateFragmentKey('f', ['a:b'])).not.to.equal(makeTemplateFragmentKey('f', ['a', 'b']));
  });
});

describe('invalidateFragment', function () {
  it('deletes from template_fragments when configured, else default, else the alias given', async function () {
    const caches = new CacheRegistry({
      default: { backend: 'locmem', location: 'inv-default' },
      template_fragments: { backend: 'locmem', location: 'inv-fragments' },
      other: { backend: 'locmem', location: 'inv-other' },
    });
    const key = makeTemplateFragmentKey('sidebar', ['alice']);
    for (const alias of ['default', 'template_fragments', 'other']) await caches.get(alias).set(key, 'html');

    expect(await invalidateFragment('sidebar', ['alice'], { caches })).to.equal(true);
    expect(await caches.get('template_fragments').hasKey(key)).to.equal(false);
    expect(await caches.get('default').hasKey(key)).to.equal(true);
    expect(await invalidateFragment('sidebar', ['alice'], { caches })).to.equal(false);
    expect(await invalidateFragment('sidebar', ['alice'], { caches, using: 'other' })).to.equal(true);
    expect(await caches.get('other').hasKey(key)).to.equal(false);

    const plain = new CacheRegistry({ default: { backend: 'locmem', location: 'inv-plain' } });
    await plain.default.set(key, 'html');
    expect(await invalidateFragment('sidebar', ['alice'], { caches: plain })).to.equal(true);
  });
});
