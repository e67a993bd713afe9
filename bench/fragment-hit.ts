/**
 * Scenario 1: a page whose cache block holds an expensive fragment (200 items, filters, a nested
 * loop), rendered without the block (the miss cost), with a warm block (a hit), and as a template that
 * is the page's final HTML as static text (the floor), per engine and rendering mode.
 */
import { Eta } from 'eta';
import nunjucks from 'nunjucks';
import { CacheRegistry, type BackendConfig } from 'fragcache';
import { cachePlugin } from 'fragcache/eta';
import { CacheExtension, renderAsync } from 'fragcache/nunjucks';
import { measureSideBySide } from './measure.js';

export interface FragmentResult {
  engine: string;
  mode: string;
  backend: string;
  missPerSecond: number;
  hitPerSecond: number;
  staticPerSecond: number;
}

const items = Array.from({ length: 200 }, (_, i) => ({
  title: `the story of chapter ${i + 1}`,
  author: `author ${(i * 7) % 31}`,
  tags: ['Fiction', `Shelf${i % 9}`, i % 2 ? 'Odd' : 'Even'],
}));
const context = { user: 'alice', items };

const nunjucksBody = `<ol>{% for item in items %}<li>{{ item.title | title }} — {{ item.author | upper }}{% for tag in item.tags %} <small>#{{ tag | lower }}</small>{% endfor %}</li>{% endfor %}</ol>`;
const etaBody = `<ol><% for (const item of it.items) { %><li><%= item.title.replace(/\\b\\w/g, (c) => c.toUpperCase()) %> — <%= item.author.toUpperCase() %><% for (const tag of item.tags) { %> <small>#<%= tag.toLowerCase() %></small><% } %></li><% } %></ol>`;

const page = (body: string, user: string) => `<html><body><h1>Hello ${user}</h1><aside>${body}</aside></body></html>`;

/** The three pages of one engine and mode, each rendered by a call; checked to print the same HTML. */
export type Pages = Record<'miss' | 'hit' | 'static', () => unknown>;

export async function nunjucksPages(caches: CacheRegistry, async: boolean): Promise<Pages> {
  const templates: Record<string, string> = {
    'miss.njk': page(nunjucksBody, '{{ user }}'),
    'hit.njk': page(`{% cache 600 sidebar user %}${nunjucksBody}{% endcache %}`, '{{ user }}'),
  };
  const loader = { getSource: (name: string) => ({ src: templates[name]!, path: name, noCache: false }) };
  const env = new nunjucks.Environment(loader as unknown as nunjucks.ILoader, { autoescape: true });
  env.addExtension('CacheExtension', new CacheExtension({ caches, async }));
  templates['static.njk'] = env.render('miss.njk', context).replaceAll('{', '&#123;');
  const render = async ? (name: string) => renderAsync(env, name, context) : (name: string) => env.render(name, context);
  const expected = await render('miss.njk');
  for (const name of ['hit.njk', 'hit.njk', 'static.njk']) {
    if ((await render(name)) !== expected) throw new Error(`nunjucks: ${name} differs from the page without a cache block`);
  }
  return { miss: () => render('miss.njk'), hit: () => render('hit.njk'), static: () => render('static.njk') };
}

export async function etaPages(caches: CacheRegistry, async: boolean): Promise<Pages> {
  const eta = new Eta({ plugins: [cachePlugin({ caches })] });
  const options = { async };
  const miss = eta.compile(page(etaBody, '<%= it.user %>'), options);
  const hit = eta.compile(page(`<% cache 600 sidebar it.user %>${etaBody}<% endcache %>`, '<%= it.user %>'), options);
  const html = await eta.renderAsync(miss, context);
  const staticPage = eta.compile(html.replaceAll('<%', '<%%'), options);
  const render = async ? (fn: typeof miss) => eta.renderAsync(fn, context) : (fn: typeof miss) => eta.render(fn, context);
  for (const fn of [hit, hit, staticPage]) {
    if ((await render(fn)) !== html) throw new Error('eta: a page differs from the page without a cache block');
  }
  return { miss: () => render(miss), hit: () => render(hit), static: () => render(staticPage) };
}

export async function fragmentHit(backends: Record<string, BackendConfig>): Promise<FragmentResult[]> {
  const results: FragmentResult[] = [];
  for (const [backendName, config] of Object.entries(backends)) {
    const caches = new CacheRegistry({ default: config });
    await caches.default.clear();
    // Only a cache that answers synchronously can serve a synchronous render.
    const modes = backendName === 'locmem' ? [false, true] : [true];
    for (const [engine, pagesOf] of [['nunjucks', nunjucksPages], ['eta', etaPages]] as const) {
      for (const async of modes) {
        const rates = await measureSideBySide(await pagesOf(caches, async));
        results.push({
          engine,
          mode: async ? 'renderAsync' : 'render (sync)',
          backend: backendName,
          missPerSecond: rates.miss,
          hitPerSecond: rates.hit,
          staticPerSecond: rates.static,
        });
      }
    }
    await caches.close();
  }
  return results;
}
