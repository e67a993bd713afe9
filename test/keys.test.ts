import { expect } from 'chai';
import { CacheRegistry, InvalidVaryValueError, invalidateFragment, makeTemplateFragmentKey } from 'fragcache';
import { thrownBy } from './helpers.js';

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
    ['list', [[1, 2]], 'template.cache.list.7ef749f6237521108719b00c11c99313'],
    ['list', [[]], 'template.cache.list.d751713988987e9331980363e24189ce'],
    ['nested', [[[1], 2]], 'template.cache.nested.a94f2918ad4511ee5622a2d80901d9e9'],
    ['url', [new URL('https://example.test/a?b')], 'template.cache.url.ad9aa8b769157ae6d5ec7489aa591100'],
  ];

  for (const [name, vary, expected] of vectors) {
    it(`${name} ${JSON.stringify(vary)}`, function () {
      expect(makeTemplateFragmentKey(name, vary)).to.equal(expected);
    });
  }

  it('does not let ["a:b"] and ["a", "b"] collide', function () {
    expect(makeTemplateFragmentKey('f', ['a:b'])).not.to.equal(makeTemplateFragmentKey('f', ['a', 'b']));
  });

  it('keeps arrays apart from the strings they print as, and from other nestings', function () {
    const keys = [[[1, 2]], ['1,2'], [1, 2], [[[1], 2]], [[1, [2]]], [[]], [''], [['a,b']], [['a', 'b']]].map((vary) =>
      makeTemplateFragmentKey('f', vary),
    );
    expect(new Set(keys).size).to.equal(keys.length);
  });

  it('uses the text of an object that defines its own toString', function () {
    class Slug {
      constructor(private readonly text: string) {}
      toString() {
        return this.text;
      }
    }
    expect(makeTemplateFragmentKey('f', [new Slug('ann')])).to.equal(makeTemplateFragmentKey('f', ['ann']));
    expect(makeTemplateFragmentKey('f', [{ toString: () => 'bob' }])).to.equal(makeTemplateFragmentKey('f', ['bob']));
  });

  it('refuses values whose text cannot tell them apart, naming the position and the kind, never the contents', function () {
    const cases: Array<[unknown[], string]> = [
      [[{ id: 1, secret: 's3cr3t' }], 'vary value 1 is a plain object'],
      [['ok', Object.create(null)], 'vary value 2 is an object without a prototype'],
      [[new Map()], 'vary value 1 is a Map'],
      [[Promise.resolve(1)], 'vary value 1 is a Promise'],
      [[() => 1], 'vary value 1 is a function'],
      [[Symbol('x')], 'vary value 1 is a symbol'],
      [[new Uint8Array([1])], 'vary value 1 is a Uint8Array'],
      [[[1, [2, {}]]], 'vary value 1[1][1] is a plain object'],
    ];
    for (const [vary, start] of cases) {
      const error = thrownBy(() => makeTemplateFragmentKey('f', vary));
      expect(error, start).to.be.instanceOf(InvalidVaryValueError);
      expect(error).to.be.instanceOf(TypeError);
      expect(error.message).to.equal(`${start}, which has no text of its own to tell one value from another: vary on a string or number that identifies it, such as user.id`);
      expect(error.message).not.to.include('s3cr3t');
    }
  });

  it('reports an object whose toString throws', function () {
    const error = thrownBy(() => makeTemplateFragmentKey('f', [{ toString: () => { throw new Error('boom'); } }]));
    expect(error).to.be.instanceOf(InvalidVaryValueError);
    expect(error.message).to.equal('vary value 1 (a plain object) could not be turned into text: Error: boom');
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
