import { expect } from 'chai';
import express from 'express';
import type { AddressInfo } from 'node:net';
import nunjucks from 'nunjucks';
import { CacheRegistry, TemplateSyntaxError, makeTemplateFragmentKey, type CacheConfig } from 'fragcache';
import { CacheExtension, expressViews, renderAsync, renderStringAsync } from 'fragcache/nunjucks';
import { AsyncMemoryCache } from './fixtures/async-memory-cache.js';
import { rejectionOf, separateCopyOf, sleep, thrownBy, unique } from './helpers.js';
import { redisServers } from '../servers/index.js';
import { describeTagBehaviour, type TagEngine } from './tag-behaviour.js';

type Templates = Record<string, string>;

/** A loader over an object of template sources, so each test states its templates inline. */
function memoryLoader(templates: Templates): nunjucks.ILoader {
  return {
    getSource: (name: string) => (name in templates ? { src: templates[name]!, path: name, noCache: true } : null),
  } as unknown as nunjucks.ILoader;
}

interface Site {
  env: nunjucks.Environment;
  caches: CacheRegistry;
  /** How often each counter was called: the body's render count. */
  renders: Record<string, number>;
  render(name: string, context?: object): string;
  renderAsync(name: string, context?: object): Promise<string>;
  renderCallback(name: string, context?: object): Promise<string>;
}

function site(templates: Templates, opts: { async?: boolean; autoescape?: boolean; config?: CacheConfig } = {}): Site {
  const caches = new CacheRegistry(opts.config ?? { default: { backend: 'locmem', location: unique('nunjucks') } });
  const env = new nunjucks.Environment(memoryLoader(templates), { autoescape: opts.autoescape ?? true });
  env.addExtension('CacheExtension', new CacheExtension({ caches, async: opts.async ?? false }));
  const renders: Record<string, number> = {};
  env.addGlobal('count', (name = 'body') => {
    renders[name] = (renders[name] ?? 0) + 1;
    return renders[name];
  });
  return {
    env,
    caches,
    renders,
    render: (name, context = {}) => env.render(name, context),
    renderAsync: (name, context = {}) => renderAsync(env, name, context),
    renderCallback: (name, context = {}) =>
      new Promise((resolve, reject) => env.render(name, context, (error, html) => (error ? reject(error) : resolve(html!)))),
  };
}



/** The shared tag behaviour (test/tag-behaviour.ts), in Nunjucks syntax, with either extension mode. */
function nunjucksEngine(async: boolean): TagEngine {
  return {
    open: (args) => `{% cache ${args} %}`,
    close: '{% endcache %}',
    variable: (name) => name,
    print: (name) => `{{ ${name} }}`,
    count: '{{ count() }}',
    silentCount: '{% set counted = count() %}',
    forever: 'none',
    site(templates, config) {
      const named = Object.fromEntries(Object.entries(templates).map(([name, source]) => [`${name}.njk`, source]));
      const s = site(named, config === undefined ? { async } : { async, config });
      return {
        caches: s.caches,
        renders: s.renders,
        render: (template, context) => s.render(`${template}.njk`, context),
        renderAsync: (template, context) => s.renderAsync(`${template}.njk`, context),
        place: (template, line) => `${template}.njk:${line}`,
      };
    },
  };
}

describeTagBehaviour('Nunjucks', nunjucksEngine(false));
describeTagBehaviour('Nunjucks ({ async: true })', nunjucksEngine(true));

const asyncConfig = (): CacheConfig => ({ default: { backend: AsyncMemoryCache, location: unique('nunjucks-async') } });

describe('Nunjucks cache tag', function () {
  describe('caching', function () {
    it('keeps one entry per combination of vary values, with filters applied', function () {
      const s = site({ 'page.njk': '{% cache 60 menu user.name | lower lang %}{{ user.name }}{{ count() }}{% endcache %}' });
      expect(s.render('page.njk', { user: { name: 'Ann' }, lang: 'en' })).to.equal('Ann1');
      expect(s.render('page.njk', { user: { name: 'ANN' }, lang: 'en' })).to.equal('Ann1');
      expect(s.render('page.njk', { user: { name: 'Bob' }, lang: 'en' })).to.equal('Bob2');
      expect(s.render('page.njk', { user: { name: 'Bob' }, lang: 'fr' })).to.equal('Bob3');
    });

    it('outputs a hit without escaping it again with autoescape off', function () {
      const s = site({ 'page.njk': '{% cache 60 e %}<b>{{ text }}</b>{% endcache %}' }, { autoescape: false });
      expect(s.render('page.njk', { text: '<i>&' })).to.equal('<b><i>&</b>');
      expect(s.render('page.njk', { text: '<i>&' })).to.equal('<b><i>&</b>');
    });
  });

  describe('timeouts', function () {
    it('expires the fragment after its timeout, whatever the cache default', async function () {
      const s = site(
        { 'page.njk': '{% cache t frag n %}{{ count() }}{% endcache %}' },
        { config: { default: { backend: 'locmem', location: unique('nunjucks'), timeout: 0.05 } } },
      );
      expect(s.render('page.njk', { t: 1, n: 'one' })).to.equal('1');
      expect(s.render('page.njk', { t: 60, n: 'sixty' })).to.equal('2');
      await sleep(1100);
      expect(s.render('page.njk', { t: 1, n: 'one' })).to.equal('3');
      expect(s.render('page.njk', { t: 60, n: 'sixty' })).to.equal('2');
    });
  });

  describe('syntax errors, with the template and line', function () {
    const cases: Array<[string, string]> = [
      ['{% cache 60 name %}{% if wide %}{% extends "wide.njk" %}{% endif %}{% endcache %}', '{% extends %} inside a cache block would choose the layout only when the block renders, not on a hit: put it outside the block'],
    ];
    for (const [source, reason] of cases) {
      it(reason, function () {
        for (const async of [false, true]) {
          const s = site({ 'broken.njk': `first line\n${source}` }, { async });
          const error = thrownBy(() => s.render('broken.njk'));
          expect(error.name).to.equal('TemplateSyntaxError');
          expect(error.message).to.equal(`broken.njk:2: ${reason}`);
        }
      });
    }

    it('names the template the tag stands in: a layout, a layout of a layout, an imported macro', function () {
      const s = site({
        'page.njk': '{% extends "layout.njk" %}{% block content %}\n{% cache t child %}c{% endcache %}{% endblock %}',
        'layout.njk': '{% extends "base.njk" %}\n{% block content %}{% endblock %}{% block foot %}\n\n{% cache t foot %}f{% endcache %}{% endblock %}',
        'base.njk': 'x\nx\nx\n{% cache t head %}h{% endcache %}{% block content %}{% endblock %}{% block foot %}{% endblock %}',
        'import.njk': '{% from "macros.njk" import m %}{{ m() }}',
        'macros.njk': '\n{% macro m() %}{% cache t mac %}m{% endcache %}{% endmacro %}',
        'dynamic.njk': '{% extends which %}',
      });
      const at = (name: string, context: object) => thrownBy(() => s.render(name, { t: 'fail', ...context })).message.match(/(\S+\.njk(?: \([^)]*\))?:\d+): "cache" tag/)?.[1];
      expect(at('base.njk', {})).to.equal('base.njk:4');
      expect(at('page.njk', {})).to.equal('base.njk:4');
      expect(at('layout.njk', {})).to.equal('base.njk:4');
      expect(at('import.njk', {})).to.equal('macros.njk:2');
      // A layout named by a variable cannot be found: the error says the tag is in one the page extends.
      expect(at('dynamic.njk', { which: 'base.njk' })).to.equal('dynamic.njk (in a template it extends, imports or includes):4');
      const headless = site({
        'page.njk': '{% extends "layout.njk" %}{% block content %}\n{% cache t child %}c{% endcache %}{% endblock %}',
        'layout.njk': '{% block content %}{% endblock %}{% block foot %}\n\n{% cache t foot %}f{% endcache %}{% endblock %}',
      });
      expect(thrownBy(() => headless.render('page.njk', { t: 'fail' })).message).to.include('page.njk:2: "cache" tag');
      expect(thrownBy(() => headless.render('layout.njk', { t: 'fail' })).message).to.include('layout.njk:3: "cache" tag');
    });

    it('is a TemplateSyntaxError instance when Nunjucks runs in dev mode', function () {
      const env = new nunjucks.Environment(memoryLoader({ 'x.njk': '{% cache 1 %}{% endcache %}' }), { dev: true });
      env.addExtension('CacheExtension', new CacheExtension());
      expect(thrownBy(() => env.render('x.njk', {}))).to.be.instanceOf(TemplateSyntaxError);
    });
  });

  const constructs: Templates = {
    'constructs.njk': [
      '{% for item in items %}{% cache 60 row item %}<{{ item }}:{{ count() }}>{% endcache %}{% endfor %}',
      '{% if true %}{% cache 60 iffy %}i{{ count() }}{% endcache %}{% endif %}',
      '{% include "part.njk" %}',
      '{% macro m(x) %}{% cache 60 macro x %}m{{ x }}{{ count() }}{% endcache %}{% endmacro %}{{ m(1) }}{{ m(1) }}',
      '{% macro wrap() %}({{ caller() }}){% endmacro %}{% call wrap() %}{% cache 60 called %}c{{ count() }}{% endcache %}{% endcall %}',
      '{% filter upper %}{% cache 60 filtered %}f{{ count() }}{% endcache %}{% endfilter %}',
      '{% set captured %}{% cache 60 captured %}s{{ count() }}{% endcache %}{% endset %}{{ captured }}',
      '{% cache 60 outer %}O{{ count() }}{% cache 60 inner %}I{{ count() }}{% endcache %}{% endcache %}',
    ].join('|'),
    'part.njk': '{% cache 60 part %}p{{ count() }}{% endcache %}',
    'base.njk': '<{% block content %}{% endblock %}>',
    'child.njk': '{% extends "base.njk" %}{% block content %}{% cache 60 block %}b{{ count() }}{% endcache %}{% endblock %}',
  };
  const expectedFirst = '<1:1><2:2>|i3|p4|m15m15|(c6)|F7|s8|O9I10';

  describe('synchronous rendering with a synchronous cache', function () {
    it('works in for, if, include, macro, call, filter, set blocks and nested blocks', function () {
      const s = site(constructs);
      expect(s.render('constructs.njk', { items: [1, 2] })).to.equal(expectedFirst);
      expect(s.render('constructs.njk', { items: [1, 2, 3] })).to.equal('<1:1><2:2><3:11>|i3|p4|m15m15|(c6)|F7|s8|O9I10');
    });

    it('works in extends and blocks, and with callback rendering', async function () {
      const s = site(constructs);
      expect(s.render('child.njk')).to.equal('<b1>');
      expect(await s.renderCallback('child.njk')).to.equal('<b1>');
      expect(s.renders.body).to.equal(1);
      const callbacks = site(constructs);
      expect(await callbacks.renderCallback('constructs.njk', { items: [1, 2] })).to.equal(expectedFirst);
      expect(await callbacks.renderCallback('constructs.njk', { items: [1, 2] })).to.equal(expectedFirst);
    });

    it('fails with advice, never an empty page, when the cache answers asynchronously', async function () {
      const s = site({ 'page.njk': 'before {% cache 60 a %}x{% endcache %}' }, { config: asyncConfig() });
      for (const render of [() => s.render('page.njk'), () => s.renderCallback('page.njk'), () => s.renderAsync('page.njk')]) {
        const error = await rejectionOf((async () => render())());
        expect(error.message).to.include("page.njk:1: The cache tag's cache (AsyncMemoryCache) answers asynchronously, and this template is compiled for synchronous rendering");
        expect(error.message).to.include('new CacheExtension({ async: true })');
      }
    });
  });

  describe('asynchronous rendering ({ async: true })', function () {
    it('caches with an asynchronous cache in renders fragcache starts: renderAsync and renderStringAsync', async function () {
      const s = site({ 'page.njk': 'a{% cache 60 sidebar user %}[{{ count() }}]{% endcache %}b' }, { async: true, config: asyncConfig() });
      expect(await s.renderAsync('page.njk', { user: 1 })).to.equal('a[1]b');
      expect(await s.renderAsync('page.njk', { user: 1 })).to.equal('a[1]b');
      expect(await s.renderAsync('page.njk', { user: 2 })).to.equal('a[2]b');
      const source = 'a{% cache 60 sidebar user %}[{{ count() }}]{% endcache %}b';
      expect(await renderStringAsync(s.env, source, { user: 2 })).to.equal('a[2]b');
      expect(await renderStringAsync(s.env, source, { user: 3 })).to.equal('a[3]b');
    });

    it('refuses to wait in a render it does not watch (env.render, with or without a callback), never returning null', async function () {
      const s = site({ 'page.njk': '\na{% cache 60 sidebar %}[{{ count() }}]{% endcache %}b' }, { async: true, config: asyncConfig() });
      for (const render of [() => s.render('page.njk'), () => s.renderCallback('page.njk')]) {
        const error = await rejectionOf((async () => render())());
        expect(error.message).to.include("page.njk:2: The cache tag's cache (AsyncMemoryCache) answers asynchronously, and fragcache sees no render of its own around the block");
        expect(error.message).to.include('render with renderAsync() or renderStringAsync() from fragcache/nunjucks');
      }
      expect(s.renders.body ?? 0).to.equal(0);
    });

    it('fails, rather than store a body cut short, when a body waits where the tag is called synchronously', async function () {
      const later = (value: unknown, done: (error: unknown, result?: unknown) => void) => setImmediate(() => done(null, `<${String(value)}>`));
      const page = 'A{% cache 60 f %}[{{ v | later }}]{% endcache %}B';
      for (const [async, source] of [[false, page], [true, `{% macro m() %}${page}{% endmacro %}{{ m() }}`]] as const) {
        const s = site({ 'page.njk': source }, { async });
        s.env.addFilter('later', later, true);
        for (const render of [() => s.renderCallback('page.njk', { v: 'x' }), () => s.renderAsync('page.njk', { v: 'x' })]) {
          const error = await rejectionOf(render());
          expect(error.message).to.include("page.njk:1: The cache block's body waits for something asynchronous (a filter or tag inside it, or an await), and ");
        }
        expect(await s.caches.default.get(makeTemplateFragmentKey('f'))).to.equal(undefined);
      }
      const works = site({ 'page.njk': page }, { async: true });
      works.env.addFilter('later', later, true);
      expect(await works.renderAsync('page.njk', { v: 'x' })).to.equal('A[&lt;x&gt;]B');
      expect(await works.renderAsync('page.njk', { v: 'y' })).to.equal('A[&lt;x&gt;]B');
    });

    it('fails the render with an error the template raises after a block waited, never letting it escape', async function () {
      const s = site({ 'page.njk': '{% cache 60 a %}x{% endcache %}\n{{ missing() }}' }, { async: true, config: asyncConfig() });
      for (let render = 0; render < 2; render++) {
        const error = await rejectionOf(s.renderAsync('page.njk'));
        expect(error.message).to.include('Unable to call `missing`, which is undefined or falsey');
      }
    });

    it('works with a synchronous cache in renders it does not watch', async function () {
      const s = site({ 'page.njk': 'a{% cache 60 sidebar %}[{{ count() }}]{% endcache %}b' }, { async: true });
      expect(s.render('page.njk')).to.equal('a[1]b');
      expect(await s.renderCallback('page.njk')).to.equal('a[1]b');
    });

    it('works in for, if, include, extends and nested blocks with an asynchronous cache', async function () {
      const templates: Templates = {
        ...constructs,
        'async.njk': [
          '{% for item in items %}{% cache 60 row item %}<{{ item }}:{{ count() }}>{% endcache %}{% endfor %}',
          '{% if true %}{% cache 60 iffy %}i{{ count() }}{% endcache %}{% endif %}',
          '{% include "part.njk" %}',
          '{% cache 60 outer %}O{{ count() }}{% cache 60 inner %}I{{ count() }}{% endcache %}{% endcache %}',
        ].join('|'),
      };
      const s = site(templates, { async: true, config: asyncConfig() });
      expect(await s.renderAsync('async.njk', { items: [1, 2] })).to.equal('<1:1><2:2>|i3|p4|O5I6');
      expect(await s.renderAsync('async.njk', { items: [1, 2] })).to.equal('<1:1><2:2>|i3|p4|O5I6');
      expect(await s.renderAsync('child.njk')).to.equal('<b7>');
      expect(await s.renderAsync('child.njk')).to.equal('<b7>');
    });

    it('works in every construct with a synchronous cache, in every way of rendering', async function () {
      const s = site(constructs, { async: true });
      expect(await s.renderAsync('constructs.njk', { items: [1, 2] })).to.equal(expectedFirst);
      expect(s.render('constructs.njk', { items: [1, 2] })).to.equal(expectedFirst);
      expect(await s.renderCallback('child.njk')).to.equal('<b11>');
    });

    for (const [construct, source] of [
      ['macro', '{% macro m() %}{% cache 60 a %}x{% endcache %}{% endmacro %}{{ m() }}'],
      ['call', '{% macro w() %}{{ caller() }}{% endmacro %}{% call w() %}{% cache 60 a %}x{% endcache %}{% endcall %}'],
      ['filter', '{% filter upper %}{% cache 60 a %}x{% endcache %}{% endfilter %}'],
      ['set', '{% set s %}{% if true %}{% cache 60 a %}x{% endcache %}{% endif %}{% endset %}{{ s }}'],
    ] as const) {
      it(`fails clearly inside {% ${construct} %} with an asynchronous cache, never dropping output`, async function () {
        const s = site({ 'page.njk': `{% set ok = 1 %}\n${source}` }, { async: true, config: asyncConfig() });
        const error = await rejectionOf(s.renderAsync('page.njk'));
        expect(error.message).to.include(`page.njk:2: The cache tag's cache (AsyncMemoryCache) answers asynchronously, and the block is inside {% ${construct} %}`);
      });
    }

    it('is not confused by closed constructs before the block', async function () {
      const s = site(
        { 'page.njk': '{% macro m() %}m{% endmacro %}{% set a = 1 %}{% set b %}b{% endset %}{% raw %}{% macro %}{% endraw %}{% cache 60 x %}ok{% endcache %}' },
        { async: true, config: asyncConfig() },
      );
      expect(await s.renderAsync('page.njk')).to.equal('{% macro %}ok');
    });

    describe('a block Nunjucks does not wait for fails the render, naming its template, never losing or misplacing output', function () {
      const partial = 'first line\n{% cache 60 li i %}<li>{{ i }}</li>{% endcache %}';
      // The error is raised at the block that finds the problem: the one still waiting, or the next to start.
      const cases: Array<[string, string, string, string?]> = [
        ['an include in {% for %}', '{% for i in [1, 2] %}[{% include "li.njk" %}]{% endfor %}', 'Another cache block of this render is waiting for its cache at the same time'],
        ['an include in a one-item {% for %}', '{% for i in [1] %}[{% include "li.njk" %}]{% endfor %}', 'The render finished while this cache block was still waiting'],
        ['an include in {% if %}', '{% set i = 1 %}A{% if true %}{% include "li.njk" %}{% endif %}B', 'The render finished while this cache block was still waiting'],
        [
          'an include in {% if %} with a block after it',
          '{% set i = 1 %}A{% if true %}{% include "li.njk" %}{% endif %}\n{% cache 60 after %}B{% endcache %}',
          'Another cache block of this render is waiting for its cache at the same time',
          'page.njk:2',
        ],
        ['an include in a macro', '{% macro m(i) %}{% include "li.njk" %}{% endmacro %}A{{ m(1) }}B', 'The render finished while this cache block was still waiting'],
        ['a block in {% asyncAll %}', '{% asyncAll i in [1, 2] %}{% include "li.njk" %}{% endall %}', 'Another cache block of this render is waiting for its cache at the same time'],
      ];
      for (const [construct, page, reason, place = 'li.njk:2'] of cases) {
        it(construct, async function () {
          const s = site({ 'page.njk': page, 'li.njk': partial }, { async: true, config: asyncConfig() });
          for (let render = 0; render < 2; render++) {
            const error = await rejectionOf(s.renderAsync('page.njk'));
            expect(error.message).to.include(`${place}: ${reason}`);
            expect(error.message).to.include('loop with {% asyncEach %} … {% endeach %} and test with {% ifAsync %}');
          }
        });
      }

      for (const [cacheName, config] of [
        ['an asynchronous cache', asyncConfig],
        ['Redis', async (): Promise<CacheConfig> => ({ default: { backend: 'redis', location: (await redisServers()).url, keyPrefix: unique('broken') } })],
      ] as const) {
        it(`stores nothing a broken render got wrong, so the corrected page renders right (${cacheName})`, async function () {
          this.timeout(30_000);
          const item = '{% cache 300 item item.id %}<li>{{ item.name }}</li>{% endcache %}';
          const items = [{ id: 1, name: 'one' }, { id: 2, name: 'two' }, { id: 3, name: 'three' }];
          const broken = (loop: string) => `{% cache 300 side %}<ul>${loop}</ul>{% endcache %}`;
          const s = site(
            {
              'page.njk': broken('{% for item in items %}{% include "item.njk" %}{% endfor %}'),
              'one.njk': broken('{% for item in items.slice(0, 1) %}{% include "item.njk" %}{% endfor %}'),
              'fixed.njk': broken('{% asyncEach item in items %}{% include "item.njk" %}{% endeach %}'),
              'item.njk': item,
            },
            { async: true, config: await config() },
          );
          try {
            for (const page of ['page.njk', 'one.njk']) await rejectionOf(s.renderAsync(page, { items }));
            const cache = s.caches.default;
            const stored = await cache.getMany([makeTemplateFragmentKey('side'), ...items.map((it) => makeTemplateFragmentKey('item', [it.id]))]);
            for (const [key, html] of Object.entries(stored)) {
              const id = items.find((it) => makeTemplateFragmentKey('item', [it.id]) === key);
              expect(html, key).to.equal(id ? `<li>${id.name}</li>` : undefined);
            }
            expect(await s.renderAsync('fixed.njk', { items })).to.equal('<ul><li>one</li><li>two</li><li>three</li></ul>');
          } finally {
            await s.caches.close();
          }
        });
      }

      it('works with {% asyncEach %} and {% ifAsync %} around the includes', async function () {
        const page = '{% asyncEach i in [1, 2] %}[{% include "li.njk" %}]{% endeach %}{% set i = 3 %}{% ifAsync true %}{% include "li.njk" %}{% endif %}!';
        const s = site({ 'page.njk': page, 'li.njk': partial }, { async: true, config: asyncConfig() });
        const expected = '[first line\n<li>1</li>][first line\n<li>2</li>]first line\n<li>3</li>!';
        expect(await s.renderAsync('page.njk')).to.equal(expected);
        expect(await s.renderAsync('page.njk')).to.equal(expected);
      });
    });
  });

  describe('Express views (expressViews)', function () {
    it('renders res.render() through renderAsync, so blocks on an asynchronous cache work and failures reach Express', async function () {
      const s = site(
        { 'page.njk': '<p>{% cache 60 card user %}{{ user }} {{ count() }}{% endcache %}</p>', 'broken.njk': '{% for i in [1, 2] %}{% include "page.njk" %}{% endfor %}' },
        { async: true, config: asyncConfig() },
      );
      const app = express();
      app.set('view engine', 'njk');
      expressViews(s.env, app);
      app.get('/:view', (req, res) => res.render(req.params.view, { user: 'a<b' }));
      app.use((error: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => res.status(500).send(error.message));
      const server = app.listen(0, '127.0.0.1');
      await new Promise((resolve) => server.once('listening', resolve));
      const get = async (path: string) => {
        const response = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`);
        return [response.status, await response.text()] as const;
      };
      try {
        expect(await get('/page')).to.deep.equal([200, '<p>a&lt;b 1</p>']);
        expect(await get('/page.njk')).to.deep.equal([200, '<p>a&lt;b 1</p>']);
        const [status, text] = await get('/broken');
        expect(status).to.equal(500);
        expect(text).to.include('page.njk:1: Another cache block of this render is waiting for its cache at the same time');
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
    });
  });

  describe("with the application's own copy of nunjucks", function () {
    it('outputs what that copy treats as safe: never escaped twice, on a miss or a hit, in either mode', async function () {
      const own = separateCopyOf<typeof nunjucks>('nunjucks');
      expect(own.runtime.SafeString).not.to.equal(nunjucks.runtime.SafeString);
      for (const async of [false, true]) {
        const env = new own.Environment(memoryLoader({ 'page.njk': '{% cache 60 head %}<header>{{ text }}</header>{% endcache %}' }), { autoescape: true });
        env.addExtension('CacheExtension', new CacheExtension({ caches: new CacheRegistry({ default: { backend: 'locmem', location: unique('own') } }), async }));
        for (let render = 0; render < 2; render++) {
          expect(await renderAsync(env, 'page.njk', { text: '<b>' })).to.equal('<header>&lt;b&gt;</header>');
          expect(env.render('page.njk', { text: '<b>' })).to.equal('<header>&lt;b&gt;</header>');
        }
      }
    });
  });
});
