import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import Handlebars from 'handlebars';
import { CacheRegistry, CacheTagError, TemplateSyntaxError, invalidateFragment } from 'fragcache';
import { AsyncMemoryCache } from './fixtures/async-memory-cache.js';
import { registerCacheHelper } from './fixtures/handlebars-cache.mjs';
import { thrownBy, unique } from './helpers.js';

declare module 'handlebars' {
  // Handlebars reads srcName in compile() too (it names the template in helpers' options.loc); its types omit it.
  interface CompileOptions {
    srcName?: string;
  }
}

/** The Handlebars tag of docs/custom-engines.md: another engine is a parser plus a call. */
describe('a cache tag for another engine (Handlebars)', function () {
  const page = '<ul>{{#each users}}<li>{{#cache 60 "row" id}}{{name}} {{id}}{{/cache}}</li>{{/each}}</ul>';
  const plain = '<ul>{{#each users}}<li>{{name}} {{id}}</li>{{/each}}</ul>';

  function site() {
    const caches = new CacheRegistry({ default: { backend: 'locmem', location: unique('handlebars') }, slow: { backend: AsyncMemoryCache } });
    const handlebars = Handlebars.create();
    registerCacheHelper(handlebars, { caches });
    const data = (names: string[]) => ({ users: names.map((name, id) => ({ id, name: `<${name}>` })) });
    return { caches, handlebars, data };
  }

  it('renders as without the tag on a miss, serves the stored HTML on a hit, and again after invalidation', async function () {
    const { caches, handlebars, data } = site();
    const render = handlebars.compile(page, { srcName: 'page.hbs' });
    const uncached = Handlebars.create().compile(plain)(data(['ann', 'bob']));
    expect(uncached).to.equal('<ul><li>&lt;ann&gt; 0</li><li>&lt;bob&gt; 1</li></ul>');
    expect(render(data(['ann', 'bob']))).to.equal(uncached);
    expect(render(data(['ann', 'bob']))).to.equal(uncached);
    expect(render(data(['changed', 'bob']))).to.equal('<ul><li>&lt;ann&gt; 0</li><li>&lt;bob&gt; 1</li></ul>');
    expect(await invalidateFragment('row', [0], { caches })).to.equal(true);
    expect(render(data(['changed', 'bob']))).to.equal('<ul><li>&lt;changed&gt; 0</li><li>&lt;bob&gt; 1</li></ul>');
  });

  it('reports its errors with the template and line, and refuses a cache that answers asynchronously', function () {
    const { handlebars } = site();
    const tooFew = thrownBy(() => handlebars.compile('\n{{#cache 60}}x{{/cache}}', { srcName: 'few.hbs' })({}));
    expect(tooFew).to.be.instanceOf(TemplateSyntaxError);
    expect(tooFew.message).to.equal("few.hbs:2: 'cache' tag requires at least 2 arguments.");
    const badTimeout = thrownBy(() => handlebars.compile('{{#cache "soon" "x"}}x{{/cache}}', { srcName: 't.hbs' })({}));
    expect(badTimeout.message).to.equal(`t.hbs:1: "cache" tag got a non-integer timeout value: 'soon'`);
    const slow = thrownBy(() => handlebars.compile('{{#cache 60 "x" using="slow"}}x{{/cache}}', { srcName: 's.hbs' })({}));
    expect(slow).to.be.instanceOf(CacheTagError);
    expect(slow.message).to.equal(
      "s.hbs:1: The cache tag's cache (AsyncMemoryCache) answers asynchronously, and Handlebars renders synchronously: use an in-memory cache (locmem) for this tag",
    );
  });

  it('is the code docs/custom-engines.md shows', function () {
    const fixture = readFileSync('test/fixtures/handlebars-cache.mjs', 'utf8');
    const doc = readFileSync('docs/custom-engines.md', 'utf8');
    const shown = /```js\n([\s\S]*?)```/.exec(doc)?.[1];
    expect(shown).to.equal(fixture.split('\n').slice(1).join('\n'));
  });
});
