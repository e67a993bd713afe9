/**
 * docs/express.md, run: Express 5 rendering both engines through `res.render`, synchronously and
 * asynchronously, over real HTTP on 127.0.0.1.
 */
import { expect } from 'chai';
import express from 'express';
import { Eta } from 'eta';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import nunjucks from 'nunjucks';
import { CacheRegistry } from 'fragcache';
import { cachePlugin } from 'fragcache/eta';
import { CacheExtension, expressViews, renderAsync } from 'fragcache/nunjucks';
import { AsyncMemoryCache } from './fixtures/async-memory-cache.js';
import { unique } from './helpers.js';

type Setup = (app: express.Express, views: string, caches: CacheRegistry) => void;

/** The set-ups of docs/express.md. */
const setups: Record<string, Setup> = {
  'Nunjucks, synchronous (env.express)': (app, views, caches) => {
    const env = new nunjucks.Environment(new nunjucks.FileSystemLoader(views), { autoescape: true });
    env.addExtension('CacheExtension', new CacheExtension({ caches }));
    env.express(app);
    app.set('view engine', 'njk');
  },
  'Nunjucks, asynchronous (expressViews)': (app, views, caches) => {
    const env = new nunjucks.Environment(new nunjucks.FileSystemLoader(views), { autoescape: true });
    env.addExtension('CacheExtension', new CacheExtension({ caches, async: true }));
    expressViews(env, app);
    app.set('view engine', 'njk');
  },
  'Eta, synchronous (app.engine)': (app, views, caches) => {
    const eta = new Eta({ views, cache: true, plugins: [cachePlugin({ caches })] });
    app.engine('eta', (path, locals, callback) => {
      try {
        callback(null, eta.render(relative(views, path), locals));
      } catch (error) {
        callback(error);
      }
    });
    app.set('views', views);
    app.set('view engine', 'eta');
  },
  'Eta, asynchronous (app.engine)': (app, views, caches) => {
    const eta = new Eta({ views, cache: true, plugins: [cachePlugin({ caches })] });
    app.engine('eta', (path, locals, callback) => {
      eta.renderAsync(relative(views, path), locals).then((html) => callback(null, html), callback);
    });
    app.set('views', views);
    app.set('view engine', 'eta');
  },
};

/** Nunjucks and Eta in one application, each registered as an engine (docs/express.md). */
function bothEngines(app: express.Express, views: string, caches: CacheRegistry): void {
  const env = new nunjucks.Environment(new nunjucks.FileSystemLoader(views), { autoescape: true });
  env.addExtension('CacheExtension', new CacheExtension({ caches, async: true }));
  const eta = new Eta({ views, cache: true, plugins: [cachePlugin({ caches })] });
  app.engine('njk', (path, locals, callback) => {
    renderAsync(env, relative(views, path), locals).then((html) => callback(null, html), callback);
  });
  app.engine('eta', (path, locals, callback) => {
    eta.renderAsync(relative(views, path), locals).then((html) => callback(null, html), callback);
  });
  app.set('views', views);
}

describe('Express: res.render with the cache tags', function () {
  let views: string;
  before(function () {
    views = mkdtempSync(join(tmpdir(), 'fragcache-express-'));
    writeFileSync(join(views, 'page.njk'), '<h1>{{ user }}</h1>{% cache 60 sidebar user %}<aside>{{ count() }} {{ user }}</aside>{% endcache %}');
    writeFileSync(join(views, 'page.eta'), '<h1><%= it.user %></h1><% cache 60 sidebar it.user %><aside><%= it.count() %> <%= it.user %></aside><% endcache %>');
  });
  after(function () {
    rmSync(views, { recursive: true, force: true });
  });

  it('Nunjucks and Eta in one application, asynchronous', async function () {
    const caches = new CacheRegistry({ default: { backend: AsyncMemoryCache, location: unique('express-both') } });
    const app = express();
    bothEngines(app, views, caches);
    let renders = 0;
    app.get('/:engine', (req, res) => res.render(`page.${req.params.engine}`, { user: 'ann', count: () => ++renders }));
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const get = async (engine: string) => (await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/${engine}`)).text();
    try {
      // Both templates cache the fragment `sidebar` varied on the user: they share one entry.
      expect(await get('njk')).to.equal('<h1>ann</h1><aside>1 ann</aside>');
      expect(await get('eta')).to.equal('<h1>ann</h1><aside>1 ann</aside>');
      expect(renders).to.equal(1);
    } finally {
      server.close();
    }
  });

  for (const [title, setup] of Object.entries(setups)) {
    const asynchronous = title.includes('asynchronous');
    it(title, async function () {
      const backend = asynchronous ? AsyncMemoryCache : 'locmem';
      const caches = new CacheRegistry({ default: { backend, location: unique('express') } });
      const app = express();
      setup(app, views, caches);
      let renders = 0;
      app.get('/', (req, res) => res.render('page', { user: String(req.query.user), count: () => ++renders }));
      const server = app.listen(0, '127.0.0.1');
      await new Promise((resolve) => server.once('listening', resolve));
      const get = async (user: string) => (await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/?user=${user}`)).text();
      try {
        expect(await get('ann')).to.equal('<h1>ann</h1><aside>1 ann</aside>');
        expect(await get('ann')).to.equal('<h1>ann</h1><aside>1 ann</aside>');
        expect(await get('b%3Cb')).to.equal('<h1>b&lt;b</h1><aside>2 b&lt;b</aside>');
        expect(renders).to.equal(2);
      } finally {
        server.close();
      }
    });
  }
});
