import { expect } from 'chai';
import { Eta } from 'eta';
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { CacheRegistry, TemplateSyntaxError, makeTemplateFragmentKey, type CacheConfig } from 'fragcache';
import { cachePlugin } from 'fragcache/eta';
import { AsyncMemoryCache } from './fixtures/async-memory-cache.js';
import { rejectionOf, separateCopyOf, thrownBy, unique } from './helpers.js';
import { describeTagBehaviour } from './tag-behaviour.js';

type Templates = Record<string, string>;

interface Site {
  eta: Eta;
  caches: CacheRegistry;
  views: string;
  renders: Record<string, number>;
  data(extra?: object): object;
}

function site(templates: Templates, opts: { config?: CacheConfig; autoEscape?: boolean } = {}): Site {
  const views = mkdtempSync(join(tmpdir(), 'fragcache-eta-'));
  for (const [name, source] of Object.entries(templates)) {
    mkdirSync(dirname(join(views, name)), { recursive: true });
    writeFileSync(join(views, name), source);
  }
  const caches = new CacheRegistry(opts.config ?? { default: { backend: 'locmem', location: unique('eta') } });
  const eta = new Eta({ views, autoEscape: opts.autoEscape ?? true, plugins: [cachePlugin({ caches })] });
  const renders: Record<string, number> = {};
  const count = (name = 'body') => {
    renders[name] = (renders[name] ?? 0) + 1;
    return renders[name];
  };
  return { eta, caches, views, renders, data: (extra = {}) => ({ count, ...extra }) };
}



describeTagBehaviour('Eta', {
  open: (args) => `<% cache ${args} %>`,
  close: '<% endcache %>',
  variable: (name) => `it.${name}`,
  print: (name) => `<%= it.${name} %>`,
  count: '<%= it.count() %>',
  silentCount: '<% it.count() %>',
  forever: 'null',
  site(templates, config) {
    const named = Object.fromEntries(Object.entries(templates).map(([name, source]) => [`${name}.eta`, source]));
    const s = site(named, config === undefined ? {} : { config });
    return {
      caches: s.caches,
      renders: s.renders,
      render: (template, context) => s.eta.render(template, s.data(context)),
      renderAsync: (template, context) => s.eta.renderAsync(template, s.data(context)),
      place: (template, line) => `${join(s.views, `${template}.eta`)}:${line}`,
    };
  },
});

const asyncConfig = (): CacheConfig => ({ default: { backend: AsyncMemoryCache, location: unique('eta-async') } });

describe('Eta cache tag', function () {
  describe('caching', function () {
    it('keeps one entry per combination of vary values; expressions with spaces in parentheses', function () {
      const s = site({ 'page.eta': '<% cache 60 menu it.user.name.toLowerCase() (it.page + 1) %><%= it.user.name %><%= it.count() %><% endcache %>' });
      expect(s.eta.render('page', s.data({ user: { name: 'Ann' }, page: 1 }))).to.equal('Ann1');
      expect(s.eta.render('page', s.data({ user: { name: 'ANN' }, page: 1 }))).to.equal('Ann1');
      expect(s.eta.render('page', s.data({ user: { name: 'Ann' }, page: 2 }))).to.equal('Ann2');
    });

    it('shares entries with Nunjucks-rendered fragments of the same name and vary values', async function () {
      const s = site({ 'page.eta': '<% cache 60 shared it.id %>eta<% endcache %>' });
      await s.caches.default.set(makeTemplateFragmentKey('shared', [5]), 'from elsewhere');
      expect(s.eta.render('page', s.data({ id: 5 }))).to.equal('from elsewhere');
    });

    it('supports whitespace-trim markers', function () {
      const s = site({ 'page.eta': 'a\n<%- cache 60 t -%>\n  x\n<%_ endcache _%>\nb' });
      // `-` trims one newline, `_` all whitespace: the body's indentation stays.
      expect(s.eta.render('page', s.data())).to.equal('a  xb');
    });
  });

  describe('syntax errors, naming the template and line', function () {
    const cases: Array<[string, string]> = [
      ['x<% endcache %>', "Invalid block tag on line 2: 'endcache'."],
      ['<% cache 60 n it.a + 1 %>x<% endcache %>', "'cache' tag argument '+' is not a JavaScript expression: put an expression with spaces in parentheses, such as (it.page + 1)"],
    ];
    for (const [source, reason] of cases) {
      it(reason, async function () {
        const s = site({ 'broken.eta': `first line\n${source}` });
        const where = `${join(s.views, 'broken.eta')}:2: `;
        expect(thrownBy(() => s.eta.render('broken', s.data())).message).to.equal(where + reason);
        expect((await rejectionOf(s.eta.renderAsync('broken', s.data()))).message).to.equal(where + reason);
      });
    }

    it("leave the template's own syntax error to Eta, said as it says it without the cache tags", async function () {
      const s = site({});
      const plain = new Eta({ autoEscape: true });
      const page = '<% cache 60 a %><%= await Promise.resolve(1) %><% endcache %>\n<% if (it.x) { %>';
      const headline = (error: Error) => error.message.split('\n').slice(0, 3).join('\n');
      // Eta compiles before it returns its Promise, so a syntax error is thrown.
      const expected = headline(thrownBy(() => plain.renderStringAsync(page.replace(/<% (end)?cache[^%]*%>/g, ''), {})));
      expect(headline(thrownBy(() => s.eta.renderStringAsync(page, s.data())))).to.equal(expected);
    });

    it("show the template around the block in Eta's debug mode, the fragcache error as the cause", function () {
      const s = site({ 'broken.eta': 'first line\n<% cache 60 n %>never closed' });
      const debugging = new Eta({ views: s.views, debug: true, plugins: [cachePlugin({ caches: s.caches })] });
      const error = thrownBy(() => debugging.render('broken', s.data()));
      expect(error.message).to.include(`${join(s.views, 'broken.eta')}:2\n`).and.to.include(' >> 2| <% cache 60 n %>never closed');
      expect(error.cause).to.be.instanceOf(TemplateSyntaxError);
    });
  });

  const constructs: Templates = {
    'page.eta': [
      '<% for (const item of it.items) { %><% cache 60 row item %><<%= item %>:<%= it.count() %>><% endcache %><% } %>',
      '<% if (true) { %><% cache 60 iffy %>i<%= it.count() %><% endcache %><% } %>',
      '<%~ include("./partial", { count: it.count }) %>',
      '<% cache 60 outer %>O<%= it.count() %><% cache 60 inner %>I<%= it.count() %><% endcache %><% endcache %>',
    ].join('|'),
    'partial.eta': '<% cache 60 partial %>p<%= it.count() %><% endcache %>',
    'layout.eta': '<<%~ it.body %>>',
    'child.eta': '<% layout("./layout") %><% cache 60 child %>c<%= it.count() %><% endcache %>',
  };

  it('works in loops, conditions, partials, layouts and nested blocks with render()', function () {
    const s = site(constructs);
    expect(s.eta.render('page', s.data({ items: [1, 2] }))).to.equal('<1:1><2:2>|i3|p4|O5I6');
    expect(s.eta.render('page', s.data({ items: [1, 2, 3] }))).to.equal('<1:1><2:2><3:7>|i3|p4|O5I6');
    expect(s.eta.render('child', s.data())).to.equal('<c8>');
    expect(s.eta.render('child', s.data())).to.equal('<c8>');
  });

  it('works with an asynchronous cache in renderAsync and renderStringAsync', async function () {
    // An asynchronous render includes partials with includeAsync; a plain include() renders synchronously.
    const page = constructs['page.eta']!.replace('<%~ include(', '<%~ await includeAsync(');
    const s = site({ ...constructs, 'page.eta': page }, { config: asyncConfig() });
    expect(await s.eta.renderAsync('page', s.data({ items: [1, 2] }))).to.equal('<1:1><2:2>|i3|p4|O5I6');
    expect(await s.eta.renderAsync('page', s.data({ items: [1, 2] }))).to.equal('<1:1><2:2>|i3|p4|O5I6');
    expect(await s.eta.renderAsync('child', s.data())).to.equal('<c7>');
    expect(await s.eta.renderAsync('child', s.data())).to.equal('<c7>');
    const source = '<% cache 60 s %><%= await Promise.resolve("awaited") %><%= it.count() %><% endcache %>';
    expect(await s.eta.renderStringAsync(source, s.data())).to.equal('awaited8');
    expect(await s.eta.renderStringAsync(source, s.data())).to.equal('awaited8');
  });

  it('fails with advice, never an empty page, when a synchronous render meets an asynchronous cache', async function () {
    const s = site({ 'page.eta': 'before <% cache 60 a %>x<% endcache %>', 'outer.eta': '<%~ include("./page") %>' }, { config: asyncConfig() });
    const error = thrownBy(() => s.eta.render('page', s.data()));
    expect(error.message).to.include(`${join(s.views, 'page.eta')}:1:`);
    expect(error.message).to.include('eta.renderAsync()');
    const included = await rejectionOf(s.eta.renderAsync('outer', s.data()));
    expect(included.message).to.include(`${join(s.views, 'page.eta')}:1:`);
    expect(included.message).to.include('await includeAsync()');
  });

  describe('asynchronous renders on a miss, with caches that answer at once', function () {
    for (const backend of ['locmem', 'dummy'] as const) {
      it(`keeps the text around a block and renders its body once (${backend})`, async function () {
        const s = site({}, { config: { default: { backend, location: unique('eta-miss') } } });
        for (let render = 0; render < 2; render++) {
          expect(await s.eta.renderStringAsync('A<% cache 60 x %>X<% endcache %>B', s.data())).to.equal('AXB');
          expect(await s.eta.renderStringAsync('A<% cache 60 y %>[<%= await Promise.resolve("Y") %>]<% endcache %>B', s.data())).to.equal('A[Y]B');
        }
      });
    }

    it('stores and serves the right HTML when an outer block on an asynchronous cache holds one on a synchronous cache', async function () {
      const config: CacheConfig = { default: { backend: 'locmem', location: unique('eta-inner') }, remote: { backend: AsyncMemoryCache, location: unique('eta-outer') } };
      const s = site({}, { config });
      const source = 'A<% cache 60 o using="remote" %>O[<% cache 60 i %>I<% endcache %>]<% endcache %>B';
      for (let render = 0; render < 3; render++) expect(await s.eta.renderStringAsync(source, s.data())).to.equal('AO[I]B');
      expect(await s.caches.get('remote').get(makeTemplateFragmentKey('o'))).to.equal('O[I]');
    });
  });

  describe('blocks in callbacks', function () {
    const items = [1, 2, 3];
    const forEachPage = 'x\n<% it.items.forEach((i) => { %><% cache 60 row i %>(<%= i %>)<% endcache %><% }) %>.';

    it('work in an asynchronous render when the cache answers at once', async function () {
      const s = site({ 'page.eta': forEachPage });
      expect(await s.eta.renderAsync('page', s.data({ items }))).to.equal('x\n(1)(2)(3).');
      expect(await s.eta.renderAsync('page', s.data({ items }))).to.equal('x\n(1)(2)(3).');
      expect(s.eta.render('page', s.data({ items }))).to.equal('x\n(1)(2)(3).');
    });

    const insideFunction =
      "The cache tag's cache (AsyncMemoryCache) answers asynchronously, and the block is inside a function of the template's own " +
      '(a callback given to forEach or map, async or not, block() or blockAsync()), which runs beside the rest of the template, ' +
      'so a block that waited there could print out of order or be lost: loop with for…of instead, or give the block a cache that answers at once (using="…")';

    it('fail with the template, the line and for…of when the cache answers asynchronously', async function () {
      const s = site({ 'page.eta': forEachPage }, { config: asyncConfig() });
      const error = await rejectionOf(s.eta.renderAsync('page', s.data({ items })));
      expect(error.message).to.equal(`${join(s.views, 'page.eta')}:2: ${insideFunction}`);
    });

    it('fail, rather than print out of order or lose output, in async callbacks, awaited or not', async function () {
      const pages = [
        'x\n<% it.items.forEach(async (i) => { %><% cache 60 row i %>(<%= i %>)<% endcache %><% }) %>.',
        'x\n<% await Promise.all(it.items.map(async (i) => { %><% cache 60 row i %>(<%= i %>)<% endcache %><% })) %>.',
        'x\n<% it.items.forEach(async (i) => { %><% cache 60 row i %>(<%= i %>)<% endcache %><% }) %>|<%= await it.footer() %>',
      ];
      for (const page of pages) {
        const works = site({ 'page.eta': page });
        const uncached = site({ 'page.eta': page.replace(/<% cache 60 row i %>|<% endcache %>/g, '') });
        const data = { items, footer: async () => 'f' };
        expect(await works.eta.renderAsync('page', works.data(data)), page).to.equal(await uncached.eta.renderAsync('page', uncached.data(data)));
        const s = site({ 'page.eta': page }, { config: asyncConfig() });
        expect((await rejectionOf(s.eta.renderAsync('page', s.data(data)))).message, page).to.equal(`${join(s.views, 'page.eta')}:2: ${insideFunction}`);
      }
    });

    it('fail with the template and the line when the body awaits, whatever the cache, and store nothing', async function () {
      const page = 'x\n<% await Promise.all(it.items.map(async (i) => { %><% cache 60 row i %>(<%= await Promise.resolve(i) %>)<% endcache %><% })) %>.';
      const s = site({ 'page.eta': page });
      const error = await rejectionOf(s.eta.renderAsync('page', s.data({ items })));
      expect(error.message).to.equal(
        `${join(s.views, 'page.eta')}:2: The cache block's body waits for something asynchronous (a filter or tag inside it, or an await), and ${insideFunction.slice(insideFunction.indexOf('the block is inside'))}`,
      );
      expect(await s.caches.get('default').get(makeTemplateFragmentKey('row', [1]))).to.equal(undefined);
    });

    it('fail the render without an unhandled rejection (which crashes Node) when a block in an async callback fails', async function () {
      const unhandled: unknown[] = [];
      const listener = (reason: unknown) => unhandled.push(reason);
      process.on('unhandledRejection', listener);
      try {
        const page = 'x\n<% it.items.forEach(async (i) => { %><% cache it.t row i %>(<%= i %>)<% endcache %><% }) %>.';
        const failing = site({ 'page.eta': page });
        expect(thrownBy(() => failing.eta.render('page', failing.data({ items, t: 'bad' }))).message).to.include('page.eta:2: "cache" tag got a non-integer timeout value');
        expect((await rejectionOf(failing.eta.renderAsync('page', failing.data({ items, t: 'bad' })))).message).to.include('page.eta:2: "cache" tag got a non-integer timeout value');
        const refused = site({ 'page.eta': page }, { config: asyncConfig() });
        expect(thrownBy(() => refused.eta.render('page', refused.data({ items, t: 60 }))).message).to.include('page.eta:2:');
        await new Promise((resolve) => setTimeout(resolve, 20));
        expect(unhandled).to.deep.equal([]);
      } finally {
        process.off('unhandledRejection', listener);
      }
    });

    it('fail when a callback swallows a block\'s error, even in a synchronous render', async function () {
      const page = 'x\n<% it.items.forEach(async (i) => { %><% cache 60 row i %>(<%= i %>)<% endcache %><% }) %>.';
      const s = site({ 'page.eta': page }, { config: asyncConfig() });
      const error = thrownBy(() => s.eta.render('page', s.data({ items })));
      expect(error.message).to.include(`${join(s.views, 'page.eta')}:2: ${insideFunction}`);
    });

    it('work in a for…of loop with an asynchronous cache, and in blockAsync with a cache that answers at once', async function () {
      const page = '<% for (const i of it.items) { %><% cache 60 row i %>(<%= i %>)<% endcache %><% } %>' + '<% layout("./frame") %><% await blockAsync("side", async () => { %><% cache 60 side using="local" %>S<% endcache %><% }) %>';
      const config: CacheConfig = { default: { backend: AsyncMemoryCache, location: unique('eta-async') }, local: { backend: 'locmem', location: unique('eta-local') } };
      const s = site({ 'page.eta': page, 'frame.eta': '[<%~ it.body %>|<%~ await blockAsync("side") %>]' }, { config });
      expect(await s.eta.renderAsync('page', s.data({ items }))).to.equal('[(1)(2)(3)|S]');
      expect(await s.eta.renderAsync('page', s.data({ items }))).to.equal('[(1)(2)(3)|S]');
    });

    it('refuse layout() inside a cache block, whose layout a hit would not choose, on every render', async function () {
      const refusal = 'layout() inside a cache block would choose the layout only when the block renders, not on a hit: call it outside the block';
      const s = site({ 'page.eta': 'x\n<% cache 60 c %><% layout("./frame") %>C<% endcache %>', 'frame.eta': '[<%~ it.body %>]' });
      for (let render = 0; render < 2; render++) {
        expect(thrownBy(() => s.eta.render('page', s.data())).message).to.equal(`${join(s.views, 'page.eta')}:2: ${refusal}`);
        expect((await rejectionOf(s.eta.renderAsync('page', s.data()))).message).to.equal(`${join(s.views, 'page.eta')}:2: ${refusal}`);
      }
      expect(await s.caches.get('default').get(makeTemplateFragmentKey('c', []))).to.equal(undefined);
    });

    it('write no Promise into the page when the text of a block says "await"', async function () {
      for (const [page, expected] of [
        ['a<% cache 60 x %>Please await your order<% endcache %>b', 'aPlease await your orderb'],
        ['<% it.items.forEach((i) => { %><% cache 60 r i %>[<%= i %>] we await you<% endcache %><% }) %>', '[1] we await you[2] we await you[3] we await you'],
      ] as const) {
        const s = site({ 'page.eta': page });
        expect(s.eta.render('page', s.data({ items }))).to.equal(expected);
        expect(await s.eta.renderAsync('page', s.data({ items }))).to.equal(expected);
      }
    });
  });

  describe('a body runs on its own', function () {
    const items = [1, 2, 3];

    /** Both kinds of render of `page` throw the TemplateSyntaxError `reason`, located at page.eta:2. */
    async function expectRefused(page: string, reason: string, data: object): Promise<void> {
      const s = site({ 'page.eta': page });
      const error = thrownBy(() => s.eta.render('page', s.data(data)));
      expect(error, page).to.be.instanceOf(TemplateSyntaxError);
      expect(error.message, page).to.equal(`${join(s.views, 'page.eta')}:2: ${reason}`);
      expect((await rejectionOf(s.eta.renderAsync('page', s.data(data)))).message, page).to.equal(`${join(s.views, 'page.eta')}:2: ${reason}`);
    }

    it('refuses return in a body, which would leave only the body, and stores nothing', async function () {
      const returning = "return inside a cache block's body would leave only the body, not the function around the block, and on a hit the body does not run: test before the block instead";
      for (const page of ['x\n<% it.items.forEach((i) => { %><% cache 60 row i %><% if (i === 2) return; %>(<%= i %>)<% endcache %>.<% }) %>', 'x\n<% cache 60 row 2 %><% if (it.items.length) return; %>R<% endcache %>']) {
        const s = site({ 'page.eta': page });
        expect(thrownBy(() => s.eta.render('page', s.data({ items }))).message, page).to.equal(`${join(s.views, 'page.eta')}:2: ${returning}`);
        expect((await rejectionOf(s.eta.renderAsync('page', s.data({ items })))).message, page).to.equal(`${join(s.views, 'page.eta')}:2: ${returning}`);
        expect(await s.caches.get('default').get(makeTemplateFragmentKey('row', [2])), page).to.equal(undefined);
      }
    });

    it('refuses continue and break towards a loop outside the block, naming the innermost block', async function () {
      const leaving = "continue or break inside a cache block's body cannot reach a loop outside the block, because the body renders on its own (and not at all on a hit): test before the block instead";
      for (const page of [
        '<% for (const i of it.items) { %>\n<% cache 60 row i %><% if (i === 2) continue; %>(<%= i %>)<% endcache %><% } %>',
        '<% for (const i of it.items) { %><% cache 60 outer %>\n<% cache 60 row i %><% if (i === 2) break; %><% endcache %><% endcache %><% } %>',
      ]) {
        await expectRefused(page, leaving, { items });
      }
    });

    it("refuses a block whose tags stand at different levels of the template's own braces, naming the block", async function () {
      const overlapping = "the cache block and the template's own { … } overlap: open and close the block inside the same braces, around whole statements";
      for (const page of [
        'x\n<% if (it.flag) { %><% cache 60 x %>x<% } %><% endcache %>',
        '<% cache 60 outer %>\n<% cache 60 x %><% if (it.flag) { %>x<% endcache %><% } %><% endcache %>',
      ]) {
        await expectRefused(page, overlapping, { flag: true });
      }
    });

    it('lets a body loop, break and return inside code of its own', async function () {
      const page = '<% cache 60 b %><% for (const i of it.items) { if (i === 2) continue; if (i === 3) break; %><%= i %><% } %>|<%= it.items.map((i) => { return i * 2; }).join() %><% endcache %>';
      const s = site({ 'page.eta': page });
      expect(s.eta.render('page', s.data({ items }))).to.equal('1|2,4,6');
      expect(await s.eta.renderAsync('page', s.data({ items }))).to.equal('1|2,4,6');
    });
  });

  it("works with the application's own copy of eta", async function () {
    const own = separateCopyOf<{ Eta: typeof Eta }>('eta');
    expect(own.Eta).not.to.equal(Eta);
    const caches = new CacheRegistry({ default: { backend: 'locmem', location: unique('own-eta') } });
    const eta = new own.Eta({ plugins: [cachePlugin({ caches })] });
    for (let render = 0; render < 2; render++) {
      expect(eta.renderString('<% cache 60 h %><h1><%= it.t %></h1><% endcache %>', { t: '<b>' })).to.equal('<h1>&lt;b&gt;</h1>');
      expect(await eta.renderStringAsync('<% cache 60 h %><h1><%= it.t %></h1><% endcache %>', { t: '<b>' })).to.equal('<h1>&lt;b&gt;</h1>');
    }
  });
});
