/**
 * The differential matrix: every case below, in every way of rendering, on every kind of cache, prints
 * what the same templates print without cache blocks (miss, hit, after invalidation), or fails with the
 * located error its row expects. See differential.ts for the check.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { CACHE_KINDS, RENDER_MODES, applies, checkCase, registryOf, type Case, type OracleCaches, type RenderMode } from './differential.js';

const inLoop = 'Another cache block of this render is waiting for its cache at the same time';
const unfinished = 'The render finished while this cache block was still waiting';
const inside = (construct: string) => `The cache tag's cache (<cache>) answers asynchronously, and the block is inside {% ${construct} %}`;
const bodyWaits = "The cache block's body waits for something asynchronous (a filter or tag inside it, or an await), and";
const compiledSynchronously = `${bodyWaits} this template is compiled for synchronous rendering`;
const unwatched = `${bodyWaits} fragcache sees no render of its own around the block`;
const row = 'x\n{% cache 60 row i %}<{{ i }}:{{ rev }}{{ tick() }}>{% endcache %}';
const part = '{% cache 60 part %}p{{ text }}{{ rev }}{{ tick() }}{% endcache %}';

const syncConstruct = (construct: string, at = 'page:1') => ({ whenWaiting: { at, says: inside(construct) } });

/** A case as written below: its engine is that of its list. */
type CaseOf = Omit<Case, 'engine'>;

const nunjucksCases: readonly CaseOf[] = [
  {
    title: 'top level',
    templates: { page: 'a{% cache 60 top %}[{{ text }}|{{ rev }}{{ tick() }}]{% endcache %}b' },
    fragments: [['top', []]],
  },
  {
    title: 'nested blocks',
    templates: { page: '{% cache 60 outer %}O{{ rev }}{{ tick() }}({% cache 60 inner flag %}I{{ text }}{{ rev }}{{ tick() }}{% endcache %}){% endcache %}' },
    fragments: [['outer', []], ['inner', [true]]],
  },
  {
    title: 'nested blocks served stale (stale=), in a loop',
    templates: { page: '{% cache 60 outer stale=30 %}O{{ rev }}{{ tick() }}({% for i in items %}{% cache 60 inner i stale=5 %}I{{ text }}{{ rev }}{{ tick() }}{% endcache %}{% endfor %}){% endcache %}' },
    fragments: [['outer', []], ['inner', [1]], ['inner', [2]]],
  },
  {
    title: 'block in a loop',
    templates: { page: '{% for i in items %}{% cache 60 row i %}<{{ i }}:{{ rev }}{{ tick() }}>{% endcache %}{% endfor %}' },
    fragments: [['row', [1]], ['row', [2]]],
  },
  {
    title: 'loop in a block, with blocks in the loop',
    templates: { page: '{% cache 60 list %}{% for i in items %}[{{ i }}{% cache 60 item i %}{{ text }}{{ rev }}{{ tick() }}{% endcache %}]{% endfor %}{{ tick() }}{% endcache %}' },
    fragments: [['list', []], ['item', [1]], ['item', [2]]],
  },
  {
    title: 'include',
    templates: { page: 'A{% include "part.njk" %}B', part },
    fragments: [['part', []]],
  },
  {
    title: 'include inside a loop',
    templates: { page: '{% for i in items %}[{% include "row.njk" %}]{% endfor %}', row },
    fragments: [['row', [1]], ['row', [2]]],
    whenWaiting: { at: 'row:2', says: inLoop },
  },
  {
    title: 'a block around a loop of includes',
    templates: { page: '{% cache 60 side %}<ul>{% for i in items %}{% include "row.njk" %}{% endfor %}</ul>{{ tick() }}{% endcache %}', row },
    fragments: [['side', []], ['row', [1]], ['row', [2]]],
    whenWaiting: { at: 'row:2', says: inLoop },
  },
  {
    title: 'include inside an if',
    templates: { page: 'A{% if flag %}{% include "part.njk" %}{% endif %}B', part },
    fragments: [['part', []]],
    whenWaiting: { at: 'part:1', says: unfinished },
  },
  {
    title: 'include inside asyncEach and ifAsync',
    templates: { page: '{% asyncEach i in items %}[{% include "row.njk" %}]{% endeach %}{% ifAsync flag %}{% include "part.njk" %}{% endif %}', row, part },
    fragments: [['row', [1]], ['row', [2]], ['part', []]],
  },
  {
    title: 'extends, with blocks in the child and the layout',
    templates: {
      page: '{% extends "base.njk" %}{% block content %}{% cache 60 child %}c{{ rev }}{{ tick() }}{% endcache %}{% endblock %}',
      base: '<{% cache 60 head %}h{{ text }}{{ tick() }}{% endcache %}|{% block content %}{% endblock %}|{% block foot %}{% cache 60 foot %}f{{ rev }}{{ tick() }}{% endcache %}{% endblock %}>',
    },
    fragments: [['child', []], ['head', []], ['foot', []]],
  },
  {
    title: "a layout's block inside an if",
    templates: {
      page: '{% extends "base.njk" %}{% block content %}{% cache 60 child %}c{{ text }}{{ rev }}{{ tick() }}{% endcache %}{% endblock %}',
      base: '<{% if flag %}{% block content %}{% endblock %}{% endif %}>',
    },
    fragments: [['child', []]],
    whenWaiting: { at: 'page:1', says: unfinished },
  },
  {
    title: 'macro',
    templates: { page: '{% macro m(x) %}{% cache 60 macro x %}m{{ x }}{{ rev }}{{ tick() }}{% endcache %}{% endmacro %}{{ m(1) }}{{ m(2) }}' },
    fragments: [['macro', [1]], ['macro', [2]]],
    ...syncConstruct('macro'),
  },
  {
    title: 'call',
    templates: { page: '{% macro wrap() %}({{ caller() }}){% endmacro %}{% call wrap() %}{% cache 60 called %}c{{ text }}{{ rev }}{{ tick() }}{% endcache %}{% endcall %}' },
    fragments: [['called', []]],
    ...syncConstruct('call'),
  },
  {
    title: 'filter',
    templates: { page: '{% filter upper %}{% cache 60 filtered %}f{{ text }}{{ rev }}{{ tick() }}{% endcache %}{% endfilter %}' },
    fragments: [['filtered', []]],
    ...syncConstruct('filter'),
  },
  {
    title: 'set block',
    templates: { page: '{% set captured %}{% cache 60 captured %}<s>{{ text }}{{ rev }}{{ tick() }}{% endcache %}{% endset %}[{{ captured }}]' },
    fragments: [['captured', []]],
    ...syncConstruct('set'),
  },
  {
    title: 'a set block after a block that waited',
    templates: { page: '{% cache 60 first %}F{{ rev }}{{ tick() }}{% endcache %}{% set captured %}{% cache 60 captured %}<s>{{ rev }}{{ tick() }}{% endcache %}{% endset %}[{{ captured }}]' },
    fragments: [['first', []], ['captured', []]],
    ...syncConstruct('set'),
  },
  {
    title: 'import with context',
    templates: {
      page: '{% import "macros.njk" as lib with context %}{{ lib.m(1) }}',
      macros: '{% macro m(x) %}{% cache 60 imported x %}i{{ x }}{{ rev }}{{ tick() }}{% endcache %}{% endmacro %}',
    },
    fragments: [['imported', [1]]],
    ...syncConstruct('macro', 'macros:1'),
  },
  {
    title: 'raw and verbatim nearby',
    templates: {
      page: '{% raw %}{% cache 60 no %}{{ x }}{% endcache %}{% endraw %}{% cache 60 yes %}y{{ rev }}{{ tick() }}{% endcache %}{% verbatim %}{% endcache %}{% endverbatim %}',
    },
    fragments: [['yes', []]],
  },
  {
    title: 'whitespace control',
    templates: { page: 'a\n  {%- cache 60 ws -%}\n  x{{ rev }}{{ tick() }}\n  {%- endcache -%}\n  b\n{% cache 60 kept %}\n k{{ rev }}{{ tick() }} \n{% endcache %}\n' },
    fragments: [['ws', []], ['kept', []]],
  },
  {
    title: 'autoescape off',
    templates: { page: 'a{% cache 60 top %}[{{ text }}|{{ rev }}{{ tick() }}]{% endcache %}b' },
    fragments: [['top', []]],
    autoescape: false,
  },
  {
    title: 'using another cache',
    templates: { page: '{% cache 60 a using="other" %}A{{ text }}{{ rev }}{{ tick() }}{% endcache %}{% cache 60 a %}B{{ rev }}{{ tick() }}{% endcache %}' },
    fragments: [['a', [], 'other'], ['a', []]],
  },
  {
    title: 'an asynchronous filter in the body',
    templates: { page: 'a{% cache 60 af %}[{{ text | later }}|{{ rev }}{{ tick() }}]{% endcache %}b' },
    fragments: [['af', []]],
    asynchronousPage: true,
    // Outside a render fragcache watches, nothing can wait for the body, whatever the cache.
    expect: (mode, kind) => {
      if (!kind.answersAtOnce) return undefined;
      if (!mode.asyncExtension) return { at: 'page:1', says: compiledSynchronously };
      return mode.canWait ? undefined : { at: 'page:1', says: unwatched };
    },
  },
  {
    title: "a loop's else",
    templates: {
      page: '{% for i in items %}{% cache 60 row i %}<{{ i }}{{ rev }}{{ tick() }}>{% endcache %}{% else %}{% cache 60 none %}-{% endcache %}{% endfor %}|{% for i in [] %}x{% else %}{% cache 60 none %}n{{ rev }}{{ tick() }}{% endcache %}{% endfor %}',
    },
    fragments: [['row', [1]], ['row', [2]], ['none', []]],
    whenWaiting: { at: 'page:1', says: "The cache tag's cache (<cache>) answers asynchronously, and the block is in the {% else %} of a loop" },
  },
  {
    title: 'asyncAll',
    templates: { page: '{% asyncAll i in items %}{% cache 60 row i %}<{{ i }}{{ rev }}{{ tick() }}>{% endcache %}{% endall %}' },
    fragments: [['row', [1]], ['row', [2]]],
    whenWaiting: { at: 'page:1', says: inLoop },
  },
];
export const NUNJUCKS_CASES = nunjucksCases.map((testCase): Case => ({ engine: 'nunjucks', ...testCase }));

/** Eta includes partials with `include` in a synchronous render and `await includeAsync` in an asynchronous one. */
const etaInclude = (mode: RenderMode, call: string) => (mode.asynchronous ? `await includeAsync(${call})` : `include(${call})`);
const etaPart = '<% cache 60 part %>p<%= it.text %><%= it.rev %><% it.tick() %><% endcache %>';
/** Eta runs a function of the template's own beside the rest of it: a block there must not wait. */
const insideFunction = { at: 'page:1', says: "The cache tag's cache (<cache>) answers asynchronously, and the block is inside a function of the template's own" };

const etaCases: readonly CaseOf[] = [
  {
    title: 'top level',
    templates: { page: 'a<% cache 60 top %>[<%= it.text %>|<%= it.rev %><% it.tick() %>]<% endcache %>b' },
    fragments: [['top', []]],
  },
  {
    title: 'nested blocks',
    templates: { page: '<% cache 60 outer %>O<%= it.rev %><% it.tick() %>(<% cache 60 inner it.flag %>I<%= it.text %><%= it.rev %><% it.tick() %><% endcache %>)<% endcache %>' },
    fragments: [['outer', []], ['inner', [true]]],
  },
  {
    title: 'nested blocks served stale (stale=), with using= in either order',
    templates: { page: '<% cache 60 outer stale=30 %>O<%= it.rev %><% it.tick() %>(<% cache 60 inner it.flag stale=(2 + 3) using="default" %>I<%= it.text %><%= it.rev %><% it.tick() %><% endcache %>)<% endcache %>' },
    fragments: [['outer', []], ['inner', [true]]],
  },
  {
    title: 'block in a loop',
    templates: { page: '<% for (const i of it.items) { %><% cache 60 row i %><<%= i %>:<%= it.rev %><% it.tick() %>><% endcache %><% } %>' },
    fragments: [['row', [1]], ['row', [2]]],
  },
  {
    title: 'loop in a block, with blocks in the loop',
    templates: {
      page: '<% cache 60 list %><% for (const i of it.items) { %>[<%= i %><% cache 60 item i %><%= it.text %><%= it.rev %><% it.tick() %><% endcache %>]<% } %><% it.tick() %><% endcache %>',
    },
    fragments: [['list', []], ['item', [1]], ['item', [2]]],
  },
  {
    title: 'partial',
    templates: (mode) => ({ page: `A<%~ ${etaInclude(mode, '"./part", it')} %>B`, part: etaPart }),
    fragments: [['part', []]],
  },
  {
    title: 'partial in a loop',
    templates: (mode) => ({
      page: `<% for (const i of it.items) { %>[<%~ ${etaInclude(mode, '"./row", { ...it, i }')} %>]<% } %>`,
      row: 'x\n<% cache 60 row it.i %><<%= it.i %>:<%= it.rev %><% it.tick() %>><% endcache %>',
    }),
    fragments: [['row', [1]], ['row', [2]]],
  },
  {
    title: 'layout, with blocks in the page and the layout',
    templates: {
      page: '<% layout("./base") %><% cache 60 child %>c<%= it.rev %><% it.tick() %><% endcache %>',
      base: '<<% cache 60 head %>h<%= it.text %><% it.tick() %><% endcache %>|<%~ it.body %>>',
    },
    fragments: [['child', []], ['head', []]],
  },
  {
    title: 'layout blocks',
    templates: (mode) =>
      mode.asynchronous
        ? {
            page: '<% layout("./frame") %><% await blockAsync("side", async () => { %><% cache 60 side %>S<%= it.rev %><% it.tick() %><% endcache %><% }) %>body',
            frame: '[<%~ it.body %>|<%~ await blockAsync("side") %>]',
          }
        : {
            page: '<% layout("./frame") %><% block("side", () => { %><% cache 60 side %>S<%= it.rev %><% it.tick() %><% endcache %><% }) %>body',
            frame: '[<%~ it.body %>|<%~ block("side") %>]',
          },
    fragments: [['side', []]],
    whenWaiting: insideFunction,
  },
  {
    title: 'if',
    templates: { page: 'a<% if (it.flag) { %><% cache 60 iffy %>i<%= it.rev %><% it.tick() %><% endcache %><% } %>b' },
    fragments: [['iffy', []]],
  },
  {
    title: 'callback',
    templates: { page: '<% it.items.forEach((i) => { %><% cache 60 row i %>(<%= i %><%= it.rev %><% it.tick() %>)<% endcache %><% }) %>.' },
    fragments: [['row', [1]], ['row', [2]]],
    whenWaiting: insideFunction,
  },
  {
    title: 'nested blocks in a callback',
    templates: { page: '<% const part = () => { %>[<% cache 60 outer %>A<%= it.rev %><% it.tick() %><% cache 60 inner %>B<%= it.text %><% it.tick() %><% endcache %><% endcache %>]<% }; part() %>.' },
    fragments: [['outer', []], ['inner', []]],
    whenWaiting: insideFunction,
  },
  {
    title: 'async callbacks nobody waits for',
    templates: { page: '<% it.items.forEach(async (i) => { %><% cache 60 row i %>(<%= i %><%= it.rev %><% it.tick() %>)<% endcache %><% }) %>.' },
    fragments: [['row', [1]], ['row', [2]]],
    whenWaiting: insideFunction,
  },
  {
    title: 'one async callback nobody waits for',
    templates: { page: '<% [it.rev].forEach(async (rev) => { %><% cache 60 one %>(<%= rev %><% it.tick() %>)<% endcache %><% }) %>.' },
    fragments: [['one', []]],
    whenWaiting: insideFunction,
  },
  {
    title: 'async callbacks run at once (Promise.all)',
    templates: { page: '<% await Promise.all(it.items.map(async (i) => { %>(<% cache 60 row i %><%= i %><%= it.rev %><% it.tick() %><% endcache %>)<% })) %>.' },
    fragments: [['row', [1]], ['row', [2]]],
    asynchronousPage: true,
    whenWaiting: insideFunction,
  },
  {
    title: 'await in the body',
    templates: { page: 'a<% cache 60 aw %>[<%= await Promise.resolve(it.text) %>|<%= it.rev %><% it.tick() %>]<% endcache %>b' },
    fragments: [['aw', []]],
    asynchronousPage: true,
  },
  {
    title: 'whitespace trim markers',
    templates: { page: 'a\n<%- cache 60 ws -%>\n  x<%= it.rev %><% it.tick() %>\n<%_ endcache _%>\nb\n<% cache 60 kept %>\n k<%= it.rev %><% it.tick() %> \n<% endcache %>\n' },
    fragments: [['ws', []], ['kept', []]],
  },
  {
    title: 'autoescape off',
    templates: { page: '<% cache 60 top %>[<%= it.text %>|<%= it.rev %><% it.tick() %>]<% endcache %>|<%~ it.text %>' },
    fragments: [['top', []]],
    autoescape: false,
  },
  {
    title: 'using another cache',
    templates: { page: '<% cache 60 a using="other" %>A<%= it.text %><%= it.rev %><% it.tick() %><% endcache %><% cache 60 a %>B<%= it.rev %><% it.tick() %><% endcache %>' },
    fragments: [['a', [], 'other'], ['a', []]],
  },
];
export const ETA_CASES = etaCases.map((testCase): Case => ({ engine: 'eta', ...testCase }));

/** The demo site's pages (templates/), with the data the demo server gives them. */
function demoCase(engine: 'nunjucks' | 'eta'): Case {
  const directory = new URL(`../templates/${engine}/`, import.meta.url);
  const templates = Object.fromEntries(readdirSync(directory).map((file) => [basename(file, extname(file)), readFileSync(new URL(file, directory), 'utf8')]));
  return {
    engine,
    title: "the demo site's page",
    templates,
    fragments: [['sidebar', ['chloé']]],
    data: (rev, tick) => ({
      title: `demo ${rev}`,
      user: 'chloé',
      users: ['alice', 'chloé'],
      catalogue: Array.from({ length: 5 }, (_, i) => ({ title: `chapter ${i} of edition ${rev}`, author: `author <${i}>`, tags: ['Fiction', `Shelf${i}`] })),
      path: `/${engine}`,
      countSidebarRender: tick,
      stats: { hit: false },
    }),
  };
}

describe('Differential rendering: a cached page is the uncached page', function () {
  this.timeout(120_000);

  describe("the demo site's pages, on locmem and an asynchronous cache", function () {
    for (const kind of CACHE_KINDS.filter((candidate) => candidate.name === 'locmem' || candidate.name === 'async memory')) {
      let caches: OracleCaches;
      before(async function () {
        caches = await registryOf(kind);
      });
      after(async function () {
        await caches.close();
      });
      for (const testCase of [demoCase('nunjucks'), demoCase('eta')]) {
        for (const mode of RENDER_MODES.filter((candidate) => applies(candidate, testCase))) {
          it(`${testCase.engine} ${mode.name} on ${kind.name}`, async function () {
            await checkCase(mode, kind, caches, testCase);
          });
        }
      }
    }
  });

  for (const kind of CACHE_KINDS) {
    describe(`on ${kind.name}`, function () {
      let caches: OracleCaches;
      before(async function () {
        caches = await registryOf(kind);
      });
      after(async function () {
        await caches.close();
      });

      for (const mode of RENDER_MODES) {
        describe(`${mode.engine} ${mode.name}`, function () {
          for (const testCase of [...NUNJUCKS_CASES, ...ETA_CASES].filter((candidate) => applies(mode, candidate))) {
            it(testCase.title, async function () {
              await checkCase(mode, kind, caches, testCase);
            });
          }
        });
      }
    });
  }
});
