/**
 * The differential oracle: a template rendered through the cache tag must print, byte for byte, what the
 * same template prints with its cache blocks removed — on a miss, on a hit, and after invalidateFragment
 * with changed data — or fail with one of fragcache's located errors where the engine cannot wait.
 * The matrix (differential.test.ts) and the generator (generated.test.ts) both check cases with it.
 */
import { expect } from 'chai';
import { Eta } from 'eta';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import nunjucks from 'nunjucks';
import { CacheRegistry, invalidateFragment, type BackendConfig, type CacheConfig } from 'fragcache';
import { cachePlugin } from 'fragcache/eta';
import { CacheExtension, renderAsync } from 'fragcache/nunjucks';
import { AsyncMemoryCache } from './fixtures/async-memory-cache.js';
import { rejectionOf, unique } from './helpers.js';
import { memcachedServers, postgresServer, redisServers } from '../servers/index.js';

export type Engine = 'nunjucks' | 'eta';

/** One way of rendering a template. */
export interface RenderMode {
  readonly engine: Engine;
  readonly name: string;
  /** Whether a block may wait for an asynchronous cache in this mode. */
  readonly canWait: boolean;
  /** Whether the page itself can use asynchronous features (Nunjucks async filters, Eta `await`). */
  readonly asynchronous: boolean;
  /** Nunjucks: the extension is created with `{ async: true }`. */
  readonly asyncExtension?: boolean;
  /** Eta: the page is rendered from its source, not from its file. */
  readonly fromString?: boolean;
}

export const RENDER_MODES: readonly RenderMode[] = [
  { engine: 'nunjucks', name: 'render', canWait: false, asynchronous: false },
  { engine: 'nunjucks', name: 'render with a callback', canWait: false, asynchronous: true },
  { engine: 'nunjucks', name: 'renderAsync', canWait: false, asynchronous: true },
  { engine: 'nunjucks', name: '{ async: true } render', canWait: false, asynchronous: false, asyncExtension: true },
  { engine: 'nunjucks', name: '{ async: true } render with a callback', canWait: false, asynchronous: true, asyncExtension: true },
  { engine: 'nunjucks', name: '{ async: true } renderAsync', canWait: true, asynchronous: true, asyncExtension: true },
  { engine: 'eta', name: 'render', canWait: false, asynchronous: false },
  { engine: 'eta', name: 'renderAsync', canWait: true, asynchronous: true },
  { engine: 'eta', name: 'renderString', canWait: false, asynchronous: false, fromString: true },
  { engine: 'eta', name: 'renderStringAsync', canWait: true, asynchronous: true, fromString: true },
];

/** A kind of cache the oracle runs on. */
export interface CacheKind {
  readonly name: string;
  /** Whether every operation answers synchronously (then every mode must render every construct). */
  readonly answersAtOnce: boolean;
  /** Whether it stores anything (then a hit must run no body). */
  readonly stores: boolean;
  /** The backend configuration; servers are started on first use. */
  config(): Promise<BackendConfig>;
  /** A cache that answers at once and sees the same entries, if there is one (see `checkCase`). */
  twin?(config: BackendConfig): BackendConfig;
}

const ORACLE_TABLE = 'fragcache_oracle';

export const CACHE_KINDS: readonly CacheKind[] = [
  { name: 'locmem', answersAtOnce: true, stores: true, config: async () => ({ backend: 'locmem', location: unique('oracle') }) },
  { name: 'dummy', answersAtOnce: true, stores: false, config: async () => ({ backend: 'dummy' }) },
  {
    name: 'async memory',
    answersAtOnce: false,
    stores: true,
    config: async () => ({ backend: AsyncMemoryCache, location: unique('oracle-async') }),
    // The asynchronous memory cache keeps its entries in a locmem store of the same location.
    twin: (config) => ({ backend: 'locmem', location: typeof config.location === 'string' ? config.location : undefined }),
  },
  { name: 'file', answersAtOnce: false, stores: true, config: async () => ({ backend: 'file', location: mkdtempSync(join(tmpdir(), 'fragcache-oracle-')) }) },
  { name: 'redis', answersAtOnce: false, stores: true, config: async () => ({ backend: 'redis', location: (await redisServers()).url }) },
  {
    name: 'redis (near cache)',
    answersAtOnce: false,
    stores: true,
    config: async () => ({ backend: 'redis', location: (await redisServers()).url, options: { nearCache: true } }),
  },
  { name: 'memcached', answersAtOnce: false, stores: true, config: async () => ({ backend: 'memcached', location: await memcachedServers() }) },
  {
    name: 'database',
    answersAtOnce: false,
    stores: true,
    config: async () => ({ backend: 'database', location: ORACLE_TABLE, options: { client: { connectionString: (await postgresServer()).connectionString } } }),
  },
];

/** The caches a suite checks cases on, and their synchronous twins where the kind has them. */
export interface OracleCaches {
  readonly caches: CacheRegistry;
  readonly twins: CacheRegistry | undefined;
  close(): Promise<void>;
}

/**
 * The caches of one kind, under the aliases templates use (`default`, and `other` with its own key
 * prefix), kept for a whole suite and emptied before each case: a new connection per case would make
 * the matrix slow without testing anything more.
 */
export async function registryOf(kind: CacheKind): Promise<OracleCaches> {
  const config = await kind.config();
  const aliases = (of: BackendConfig): CacheConfig => ({ default: of, other: { ...of, keyPrefix: 'other' } });
  const caches = new CacheRegistry(aliases(config));
  const twins = kind.twin && new CacheRegistry(aliases(kind.twin(config)));
  const database = caches.default;
  if ('createTable' in database && typeof database.createTable === 'function') await database.createTable();
  return { caches, twins, close: async () => void (await Promise.all([caches.close(), twins?.close()])) };
}

/** What a case's templates see, and a counter of the cache bodies that ran. */
export interface CaseData {
  items: number[];
  flag: boolean;
  text: string;
  rev: number;
  tick: () => string;
}

/** A fragment a case renders, for invalidateFragment: its name, vary values and alias. */
export type Fragment = readonly [name: string, vary: readonly unknown[], using?: string];

/**
 * What a case must do: render as its reference does, or fail where (`template:line`) and as said; in
 * what it says, `<cache>` stands for the class name of the cache.
 */
export type Outcome = 'works' | { readonly at: string; readonly says: string };

/**
 * What a case must do in one mode on one cache. `refused`: fail with a located refusal to wait;
 * `fails`: fail with any located error about waiting (a refusal, blocks waiting at once, an unfinished render).
 */
export type Expectation = Outcome | 'refused' | 'fails';

/** Templates by name without extension; `page` is the one rendered. */
export type Templates = Readonly<Record<string, string>>;

/** One template case of one engine. */
export interface Case {
  readonly engine: Engine;
  readonly title: string;
  /** The templates, or a function of the mode for what must differ (Eta's includeAsync). */
  readonly templates: Templates | ((mode: RenderMode) => Templates);
  readonly fragments: readonly Fragment[];
  /** With an asynchronous cache, in a mode that can wait. Default: works. */
  readonly whenWaiting?: Outcome;
  /** The case's own rule for some modes and caches, before the general one. */
  readonly expect?: (mode: RenderMode, kind: CacheKind) => Expectation | undefined;
  /** The page waits for something of its own (an async filter, await): only asynchronous modes render it. */
  readonly asynchronousPage?: boolean;
  readonly autoescape?: boolean;
  /** What the templates see, for data revision `rev`, with `tick` called by every cache body. Default: CaseData. */
  readonly data?: (rev: number, tick: () => string) => object;
}

/**
 * The general rule: a cache that answers at once works in every mode; an asynchronous one is refused
 * where the mode cannot wait, and otherwise does what the case says.
 */
export function expectationOf(mode: RenderMode, kind: CacheKind, testCase: Case): Expectation {
  return testCase.expect?.(mode, kind) ?? (kind.answersAtOnce ? 'works' : mode.canWait ? (testCase.whenWaiting ?? 'works') : 'refused');
}

/** Whether the page can be rendered in the mode at all (with or without cache blocks). */
export function applies(mode: RenderMode, testCase: Case): boolean {
  return mode.engine === testCase.engine && (mode.asynchronous || !testCase.asynchronousPage);
}

/** A located refusal to wait: the template and line, then why the block could not wait. */
const LOCATED_REFUSAL = /\S+:\d+: (The cache tag's cache \(\w+\) answers asynchronously, and |The cache block's body waits for something asynchronous)/;
/** Any located error about waiting. */
const LOCATED_WAIT_ERROR = new RegExp(`${LOCATED_REFUSAL.source}|\\S+:\\d+: (Another cache block of this render is waiting|The render finished while this cache block)`);

const EXTENSIONS: Record<Engine, string> = { nunjucks: '.njk', eta: '.eta' };

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The text of an error at `place` that says `says`, whatever the cache's class name (`<cache>`). */
function located(place: string, says: string): RegExp {
  return new RegExp(escapeRegExp(`${place}: ${says}`).replace(escapeRegExp('<cache>'), '\\w+'));
}

/**
 * The template with its cache tags replaced by constructs that only render their body, with the same
 * whitespace control: Nunjucks `{% if true %}…{% endif %}`, Eta `<% { %>…<% } %>`. Text inside Nunjucks
 * raw and verbatim blocks is left alone.
 */
export function withoutCacheTags(engine: Engine, source: string): string {
  if (engine === 'eta') {
    return source.replace(/<%([-_]?)\s*cache\s[\s\S]*?([-_]?)%>/g, '<%$1 { $2%>').replace(/<%([-_]?)\s*endcache\s*([-_]?)%>/g, '<%$1 } $2%>');
  }
  return source
    .split(/(\{%-?\s*(?:raw|verbatim)\s*-?%\}[\s\S]*?\{%-?\s*end(?:raw|verbatim)\s*-?%\})/)
    .map((part, i) =>
      i % 2 === 1 ? part : part.replace(/\{%(-?)\s*cache\s[\s\S]*?(-?)%\}/g, '{%$1 if true $2%}').replace(/\{%(-?)\s*endcache\s*(-?)%\}/g, '{%$1 endif $2%}'),
    )
    .join('');
}

/** A Nunjucks asynchronous filter, for pages that wait for something of their own. */
function later(value: unknown, done: (error: unknown, result?: unknown) => void): void {
  setImmediate(() => done(null, `(${String(value)})`));
}

type Render = (data: object) => Promise<string>;

function memoryLoader(templates: Readonly<Record<string, string>>): nunjucks.ILoader {
  return { getSource: (name: string) => (Object.hasOwn(templates, name) ? { src: templates[name]!, path: name, noCache: false } : null) } as unknown as nunjucks.ILoader;
}

function nunjucksRender(mode: RenderMode, templates: Readonly<Record<string, string>>, caches: CacheRegistry, autoescape: boolean): Render {
  const env = new nunjucks.Environment(memoryLoader(templates), { autoescape });
  env.addExtension('CacheExtension', new CacheExtension({ caches, async: mode.asyncExtension ?? false }));
  env.addFilter('later', later, true);
  if (mode.name.endsWith('renderAsync')) return (data) => renderAsync(env, 'page.njk', data);
  if (mode.name.endsWith('render with a callback')) {
    return (data) => new Promise((resolve, reject) => env.render('page.njk', data, (error, html) => (error ? reject(error) : resolve(html!))));
  }
  return async (data) => {
    const html: unknown = env.render('page.njk', data);
    // A synchronous render of an asynchronous template returns null: never a page.
    if (typeof html !== 'string') throw new Error(`Nunjucks returned ${String(html)} instead of a page`);
    return html;
  };
}

function etaRender(mode: RenderMode, templates: Readonly<Record<string, string>>, caches: CacheRegistry, autoescape: boolean): { render: Render; views: string } {
  const views = mkdtempSync(join(tmpdir(), 'fragcache-oracle-eta-'));
  for (const [name, source] of Object.entries(templates)) {
    mkdirSync(dirname(join(views, name)), { recursive: true });
    writeFileSync(join(views, name), source);
  }
  const eta = new Eta({ views, autoEscape: autoescape, plugins: [cachePlugin({ caches })] });
  const page = templates['page.eta']!;
  const render: Render = mode.fromString
    ? mode.asynchronous
      ? (data) => eta.renderStringAsync(page, data)
      : async (data) => eta.renderString(page, data)
    : mode.asynchronous
      ? (data) => eta.renderAsync('./page', data)
      : async (data) => eta.render('./page', data);
  return { render, views };
}

/** The templates of a case as files of one engine: `page` becomes `page.njk` or `page.eta`. */
function filesOf(engine: Engine, templates: Readonly<Record<string, string>>, transform: (source: string) => string = (source) => source): Record<string, string> {
  return Object.fromEntries(Object.entries(templates).map(([name, source]) => [name + EXTENSIONS[engine], transform(source)]));
}

interface Site {
  render: Render;
  /** Where an error at `template:line` (template without extension) is reported. */
  place(at: string): string;
}

/** How long a render may take before the oracle calls it hung: far longer than any case needs. */
const RENDER_LIMIT_MS = 10_000;

/** `render`, failing instead of waiting forever: a render that never settles is a page that never comes. */
function settling(render: Render): Render {
  return (data) => {
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the render did not settle within ${RENDER_LIMIT_MS} ms`)), RENDER_LIMIT_MS);
    });
    return Promise.race([render(data), hung]).finally(() => clearTimeout(timer));
  };
}

function site(mode: RenderMode, templates: Readonly<Record<string, string>>, caches: CacheRegistry, autoescape: boolean): Site {
  if (mode.engine === 'nunjucks') {
    return { render: settling(nunjucksRender(mode, templates, caches, autoescape)), place: (at) => at.replace(':', '.njk:') };
  }
  const { render, views } = etaRender(mode, templates, caches, autoescape);
  return {
    render: settling(render),
    place: (at) => {
      const [template, line] = at.split(':') as [string, string];
      return mode.fromString && template === 'page' ? `<string>:${line}` : `${join(views, `${template}.eta`)}:${line}`;
    },
  };
}

function caseData(rev: number, tick: () => string): CaseData {
  return { items: [1, 2], flag: true, text: `<i a="b">&'x'</i>`, rev, tick };
}

/**
 * Renders one case in one mode on one kind of cache, and checks it against its reference: the miss, the
 * hit (which, on a cache that stores, runs no body), and a render after invalidating every fragment with
 * changed data must each print exactly what the case's templates print without cache tags. When the
 * cache answers asynchronously and the mode or the case cannot wait, the render must fail instead with
 * one of fragcache's located errors (or the error the case names), every time.
 */
export async function checkCase(mode: RenderMode, kind: CacheKind, { caches, twins }: OracleCaches, testCase: Case): Promise<void> {
  const autoescape = testCase.autoescape ?? true;
  const templates = typeof testCase.templates === 'function' ? testCase.templates(mode) : testCase.templates;
  const cached = site(mode, filesOf(mode.engine, templates), caches, autoescape);
  const reference = site(mode, filesOf(mode.engine, templates, (source) => withoutCacheTags(mode.engine, source)), caches, autoescape);
  const counter = { ticks: 0 };
  const tick = () => {
    counter.ticks++;
    return '';
  };
  const dataFor = (rev: number) => (testCase.data ?? caseData)(rev, tick);
  await Promise.all([caches.default.clear(), caches.get('other').clear()]);

  const expected = expectationOf(mode, kind, testCase);
  if (expected !== 'works') {
    for (let render = 0; render < 2; render++) {
      const error = await rejectionOf(cached.render(dataFor(1)));
      if (expected === 'refused') expect(error.message, 'a located refusal to wait').to.match(LOCATED_REFUSAL);
      else if (expected === 'fails') expect(error.message, 'a located error about waiting').to.match(LOCATED_WAIT_ERROR);
      else expect(error.message, 'the error the case names').to.match(located(cached.place(expected.at), expected.says));
    }
    if (twins !== undefined && expectationOf(mode, { ...kind, answersAtOnce: true }, testCase) === 'works') {
      // Whatever the failed renders left in the cache must be right: rendered on a twin that answers at
      // once and reads the same entries, the page is its reference, hits included.
      for (let turn = 0; turn < 10; turn++) await new Promise((resolve) => setImmediate(resolve));
      const onTwin = site(mode, filesOf(mode.engine, templates), twins, autoescape);
      expect(await onTwin.render(dataFor(1)), 'what the failed renders stored').to.equal(await reference.render(dataFor(1)));
    }
    return;
  }

  const first = await reference.render(dataFor(1));
  counter.ticks = 0;
  expect(await cached.render(dataFor(1)), 'the miss').to.equal(first);
  const missTicks = counter.ticks;
  expect(missTicks, 'the bodies run on a miss').to.be.greaterThan(0);
  expect(await cached.render(dataFor(1)), 'the hit').to.equal(first);
  if (kind.stores) expect(counter.ticks, 'no body runs on a hit').to.equal(missTicks);

  for (const [name, vary, using] of testCase.fragments) await invalidateFragment(name, vary, { caches, ...(using && { using }) });
  const changed = await reference.render(dataFor(2));
  expect(changed, 'the changed data changes the page').not.to.equal(first);
  expect(await cached.render(dataFor(2)), 'after invalidation').to.equal(changed);
}
