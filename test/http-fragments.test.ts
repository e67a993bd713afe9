/**
 * Fragments inside cached pages: the Nunjucks and Eta tags under Express's res.render and Fastify's
 * @fastify/view, synchronous and asynchronous. The page is byte for byte the page rendered without
 * cache blocks: on a miss of both, on a page hit, on a page miss with a fragment hit, and after the
 * fragment's invalidation.
 */
import fastifyView from '@fastify/view';
import { expect } from 'chai';
import { Eta } from 'eta';
import express from 'express';
import Fastify from 'fastify';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import nunjucks from 'nunjucks';
import { CacheRegistry, invalidateFragment } from 'fragcache';
import { cachePlugin } from 'fragcache/eta';
import * as onExpress from 'fragcache/express';
import * as onFastify from 'fragcache/fastify';
import { CacheExtension, expressViews, renderAsync } from 'fragcache/nunjucks';
import { AsyncMemoryCache } from './fixtures/async-memory-cache.js';
import { unique } from './helpers.js';

interface Setup {
  /** Whether the render can wait for an asynchronous cache. */
  readonly asynchronous: boolean;
  /** Starts a server whose GET /:view renders that view, with the page cached per route; gives its base URL and a closer. */
  start(views: string, caches: CacheRegistry, context: () => Record<string, unknown>): Promise<{ base: string; close: () => Promise<void> }>;
}

async function listening(app: express.Express): Promise<{ base: string; close: () => Promise<void> }> {
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

function expressSetup(asynchronous: boolean, engine: 'njk' | 'eta'): Setup {
  return {
    asynchronous,
    async start(views, caches, context) {
      const app = express();
      if (engine === 'njk') {
        const env = new nunjucks.Environment(new nunjucks.FileSystemLoader(views), { autoescape: true });
        env.addExtension('CacheExtension', new CacheExtension({ caches, async: asynchronous }));
        if (asynchronous) expressViews(env, app);
        else env.express(app);
      } else {
        const eta = new Eta({ views, cache: true, plugins: [cachePlugin({ caches })] });
        app.engine('eta', (path, locals, callback) => {
          const name = relative(views, path);
          if (asynchronous) eta.renderAsync(name, locals).then((html) => callback(null, html), callback);
          else {
            try {
              callback(null, eta.render(name, locals));
            } catch (error) {
              callback(error);
            }
          }
        });
        app.set('views', views);
      }
      app.set('view engine', engine);
      app.get('/:view', onExpress.cachePage(60, { caches, cache: 'pages' }), (req, res) => res.render(req.params.view, context()));
      return listening(app);
    },
  };
}

function fastifySetup(asynchronous: boolean, engine: 'njk' | 'eta'): Setup {
  return {
    asynchronous,
    async start(views, caches, context) {
      const app = Fastify();
      await app.register(onFastify.pageCache, { caches, cache: 'pages' });
      if (engine === 'eta') {
        const eta = new Eta({ views, cache: true, plugins: [cachePlugin({ caches })] });
        await app.register(fastifyView, { engine: { eta }, templates: views, options: { async: asynchronous } });
        app.get('/:view', { config: onFastify.cachePage(60) }, (request, reply) => reply.view(`${(request.params as { view: string }).view}.eta`, context()));
      } else if (asynchronous) {
        // @fastify/view renders Nunjucks with a callback, which cannot wait for a cache: render with renderAsync.
        const env = new nunjucks.Environment(new nunjucks.FileSystemLoader(views), { autoescape: true });
        env.addExtension('CacheExtension', new CacheExtension({ caches, async: true }));
        app.get('/:view', { config: onFastify.cachePage(60) }, async (request, reply) => {
          reply.type('text/html; charset=utf-8');
          return renderAsync(env, `${(request.params as { view: string }).view}.njk`, context());
        });
      } else {
        await app.register(fastifyView, {
          engine: { nunjucks },
          templates: views,
          options: { autoescape: true, onConfigure: (env: nunjucks.Environment) => env.addExtension('CacheExtension', new CacheExtension({ caches })) },
        });
        app.get('/:view', { config: onFastify.cachePage(60) }, (request, reply) => reply.view(`${(request.params as { view: string }).view}.njk`, context()));
      }
      await app.listen({ port: 0, host: '127.0.0.1' });
      return { base: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, close: () => app.close() };
    },
  };
}

const setups: Record<string, Setup> = {
  'Express res.render, Nunjucks, synchronous': expressSetup(false, 'njk'),
  'Express res.render, Nunjucks, asynchronous': expressSetup(true, 'njk'),
  'Express res.render, Eta, synchronous': expressSetup(false, 'eta'),
  'Express res.render, Eta, asynchronous': expressSetup(true, 'eta'),
  'Fastify @fastify/view, Nunjucks, synchronous': fastifySetup(false, 'njk'),
  'Fastify renderAsync, Nunjucks, asynchronous': fastifySetup(true, 'njk'),
  'Fastify @fastify/view, Eta, synchronous': fastifySetup(false, 'eta'),
  'Fastify @fastify/view, Eta, asynchronous': fastifySetup(true, 'eta'),
};

describe('Fragments inside cached pages', function () {
  let views: string;
  before(function () {
    views = mkdtempSync(join(tmpdir(), 'fragcache-pages-'));
    writeFileSync(join(views, 'page.njk'), '<h1>{{ user }}</h1>{% cache 60 sidebar user %}<aside>{{ user }}{{ count() }} &amp; more</aside>{% endcache %}<p>{{ user }}</p>');
    writeFileSync(join(views, 'plain.njk'), '<h1>{{ user }}</h1><aside>{{ user }}{{ count() }} &amp; more</aside><p>{{ user }}</p>');
    writeFileSync(join(views, 'page.eta'), '<h1><%= it.user %></h1><% cache 60 sidebar it.user %><aside><%= it.user %><%= it.count() %> &amp; more</aside><% endcache %><p><%= it.user %></p>');
    writeFileSync(join(views, 'plain.eta'), '<h1><%= it.user %></h1><aside><%= it.user %><%= it.count() %> &amp; more</aside><p><%= it.user %></p>');
  });
  after(function () {
    rmSync(views, { recursive: true, force: true });
  });

  for (const [title, setup] of Object.entries(setups)) {
    it(title, async function () {
      const fragments = setup.asynchronous ? AsyncMemoryCache : 'locmem';
      const caches = new CacheRegistry({
        default: { backend: fragments, location: unique('fragments') },
        pages: { backend: 'locmem', location: unique('pages') },
      });
      let renders = 0;
      const context = () => ({ user: 'a<b', count: () => ((renders += 1), '') });
      const server = await setup.start(views, caches, context);
      const get = async (view: string) => (await fetch(`${server.base}/${view}`)).text();
      try {
        const uncached = await get('plain');
        expect(uncached).to.equal('<h1>a&lt;b</h1><aside>a&lt;b &amp; more</aside><p>a&lt;b</p>');
        renders = 0;
        expect(await get('page'), 'miss of page and fragment').to.equal(uncached);
        expect(await get('page'), 'page hit').to.equal(uncached);
        expect(renders).to.equal(1);
        await caches.get('pages').clear();
        expect(await get('page'), 'page miss, fragment hit').to.equal(uncached);
        expect(renders).to.equal(1);
        await caches.get('pages').clear();
        await invalidateFragment('sidebar', ['a<b'], { caches });
        expect(await get('page'), 'after invalidation').to.equal(uncached);
        expect(renders).to.equal(2);
      } finally {
        await server.close();
        await caches.close();
      }
    });
  }
});
