/**
 * Whole-page caching on real Express 5 and Fastify 5 servers on 127.0.0.1, driven by real requests: one
 * suite, run for each framework on locmem and on a real redis-server. A counter in each handler tells a
 * hit from a miss.
 */
import { expect } from 'chai';
import compression from 'compression';
import express from 'express';
import Fastify from 'fastify';
import { get as httpGet, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { setTimeout as sleep } from 'node:timers/promises';
import { CacheRegistry, type CacheConfig, type CacheIncident } from 'fragcache';
import * as onExpress from 'fragcache/express';
import * as onFastify from 'fragcache/fastify';
import { pageKey, type PageCacheOptions } from 'fragcache/pages';
import { startRedis, type RestartableServer } from '../servers/index.js';
import { unique } from './helpers.js';

/** A route of the test site, described once for both frameworks. */
interface Route {
  readonly path: string;
  /** Headers the handler sets. */
  readonly headers?: Record<string, string | string[]>;
  readonly status?: number;
  /** The handler sends its body in two writes. */
  readonly stream?: boolean;
  /** Milliseconds the handler takes. */
  readonly delay?: number;
  readonly cachePage?: number;
  readonly varyOnCookie?: boolean;
  readonly neverCache?: boolean;
}

const ROUTES: readonly Route[] = [
  { path: '/page', headers: { ETag: '"v1"' } },
  { path: '/cookie', varyOnCookie: true },
  { path: '/private', headers: { 'Cache-Control': 'private' } },
  { path: '/no-store', headers: { 'Cache-Control': 'no-store' } },
  { path: '/no-cache', headers: { 'Cache-Control': 'no-cache' } },
  { path: '/no-cache-cookie', headers: { 'Cache-Control': 'no-cache="Set-Cookie"', 'Set-Cookie': 'visit=1', Vary: 'Cookie' } },
  { path: '/max-age-0', headers: { 'Cache-Control': 'max-age=0' } },
  { path: '/max-age-30', headers: { 'Cache-Control': 'max-age=30' } },
  { path: '/sets-cookie', headers: { 'Set-Cookie': 'session=new' }, varyOnCookie: true },
  { path: '/sets-cookie-for-all', headers: { 'Set-Cookie': 'session=new' } },
  { path: '/missing', status: 404 },
  { path: '/stream', stream: true },
  { path: '/route', cachePage: 900, headers: { 'Cache-Control': 'max-age=30' } },
  { path: '/route-max-age-0', cachePage: 900, headers: { 'Cache-Control': 'max-age=0' } },
  { path: '/never', neverCache: true },
  { path: '/slow', delay: 150 },
];

interface Site {
  readonly base: string;
  /** How many times the handler of `path` ran. */
  runs(path: string): number;
  close(): Promise<void>;
}

interface Framework {
  readonly name: string;
  start(options: PageCacheOptions): Promise<Site>;
}

/** The handler's side, shared: counts the run, waits, and gives the body. */
class Handlers {
  private readonly counts = new Map<string, number>();

  runs(path: string): number {
    return this.counts.get(path) ?? 0;
  }

  async run(route: Route, method: string, cookie: string | undefined): Promise<string> {
    const count = this.runs(route.path) + 1;
    this.counts.set(route.path, count);
    if (route.delay !== undefined) await sleep(route.delay);
    return `${method} ${route.path} #${count} cookie=${cookie ?? ''}`;
  }
}

/** What runs before the page cache on every request: a header that tells whose request it answers. */
function echoVisitor(req: IncomingMessage, res: ServerResponse, next: () => void): void {
  res.setHeader('X-Visitor', req.headers['x-visitor'] ?? 'nobody');
  next();
}

const expressFramework: Framework = {
  name: 'Express',
  async start(options) {
    const handlers = new Handlers();
    const app = express();
    app.use(echoVisitor);
    app.use(onExpress.cacheSite(options));
    for (const route of ROUTES) {
      const chain: onExpress.Middleware[] = [];
      if (route.cachePage !== undefined) chain.push(onExpress.cachePage(route.cachePage, { caches: options.caches, cache: options.cache, keyPrefix: options.keyPrefix }));
      if (route.varyOnCookie === true) chain.push(onExpress.varyOnCookie());
      if (route.neverCache === true) chain.push(onExpress.neverCache());
      app.all(route.path, ...chain, (req, res, next) => {
        handlers.run(route, req.method, req.headers.cookie).then((body) => {
          res.status(route.status ?? 200).set(route.headers ?? {});
          if (route.stream === true) {
            res.write(body.slice(0, 3));
            res.end(body.slice(3));
          } else {
            res.send(body);
          }
        }, next);
      });
    }
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    return {
      base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      runs: (path) => handlers.runs(path),
      close: () => new Promise((resolve) => server.close(() => resolve())),
    };
  },
};

const fastifyFramework: Framework = {
  name: 'Fastify',
  async start(options) {
    const handlers = new Handlers();
    const app = Fastify();
    app.addHook('onRequest', (request, reply, done) => echoVisitor(request.raw, reply.raw, done));
    await app.register(onFastify.pageCache, { ...options, site: true });
    for (const route of ROUTES) {
      const config = {
        ...(route.cachePage === undefined ? {} : onFastify.cachePage(route.cachePage, { cache: options.cache, keyPrefix: options.keyPrefix })),
        ...(route.varyOnCookie === true ? onFastify.varyOnCookie() : {}),
        ...(route.neverCache === true ? onFastify.neverCache() : {}),
      };
      app.route({
        method: ['GET', 'POST'],
        url: route.path,
        config,
        handler: async (request, reply) => {
          const body = await handlers.run(route, request.method, request.headers.cookie);
          reply.code(route.status ?? 200).headers(route.headers ?? {}).type('text/html; charset=utf-8');
          return route.stream === true ? Readable.from([body.slice(0, 3), body.slice(3)]) : body;
        },
      });
    }
    await app.listen({ port: 0, host: '127.0.0.1' });
    return {
      base: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`,
      runs: (path) => handlers.runs(path),
      close: () => app.close(),
    };
  },
};

interface Answer {
  readonly status: number;
  readonly body: string;
  readonly headers: Headers;
}

async function request(site: Site, path: string, init: RequestInit = {}): Promise<Answer> {
  const response = await fetch(site.base + path, init);
  return { status: response.status, body: await response.text(), headers: response.headers };
}

/** A GET with exactly these headers (fetch adds Cache-Control: no-cache to a conditional request). */
function plainGet(site: Site, path: string, headers: Record<string, string>): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    httpGet(site.base + path, { headers }, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
    }).on('error', reject);
  });
}

/** Seconds from now until an HTTP date. */
function secondsUntil(date: string | null): number {
  return (Date.parse(date ?? '') - Date.now()) / 1000;
}

function pageCacheSuite(framework: Framework, backend: string, config: () => CacheConfig): void {
  describe(`${framework.name} page cache on ${backend}`, function () {
    let caches: CacheRegistry;
    let site: Site;
    let keyPrefix: string;
    const get = (path: string, init?: RequestInit) => request(site, path, init);

    beforeEach(async function () {
      caches = new CacheRegistry(config());
      keyPrefix = unique('site');
      site = await framework.start({ caches, seconds: 60, keyPrefix });
    });
    afterEach(async function () {
      await site.close();
      await caches.close();
    });

    it('stores a page once and serves it with Expires, max-age and an Age', async function () {
      const miss = await get('/page');
      const hit = await get('/page');
      expect(hit.body).to.equal(miss.body).and.to.equal('GET /page #1 cookie=');
      expect(site.runs('/page')).to.equal(1);
      expect(miss.headers.get('cache-control')).to.equal('max-age=60');
      expect(secondsUntil(miss.headers.get('expires'))).to.be.within(58, 61);
      expect(miss.headers.get('age')).to.equal(null);
      expect(hit.headers.get('age')).to.equal('0');
      expect(hit.headers.get('content-type')).to.equal(miss.headers.get('content-type'));
      expect(hit.headers.get('expires')).to.equal(miss.headers.get('expires'));
    });

    it('gives each hit the headers of what runs before the page cache, for its own request', async function () {
      expect((await get('/page', { headers: { 'X-Visitor': 'ann' } })).headers.get('x-visitor')).to.equal('ann');
      const hit = await get('/page', { headers: { 'X-Visitor': 'bob' } });
      expect([hit.headers.get('x-visitor'), hit.headers.get('age')]).to.deep.equal(['bob', '0']);
      expect((await get('/page')).headers.get('x-visitor')).to.equal('nobody');
      expect(site.runs('/page')).to.equal(1);
    });

    it('takes a corrupt stored page for a miss, and replaces it', async function () {
      await get('/page');
      const url = `${site.base}/page`;
      await caches.default.set(pageKey(keyPrefix, 'GET', url, [], {}), { headers: { etag: { not: 'a header' } }, body: 'poisoned', storedAt: 0 });
      expect((await get('/page')).body).to.equal('GET /page #2 cookie=');
      expect((await get('/page')).body).to.equal('GET /page #2 cookie=');
    });

    it('counts Age from when the page was stored', async function () {
      await get('/page');
      await sleep(1100);
      expect((await get('/page')).headers.get('age')).to.equal('1');
    });

    it('answers a conditional request for a stored page with a 304', async function () {
      await get('/page');
      const notModified = await plainGet(site, '/page', { 'If-None-Match': 'W/"v1"' });
      expect(notModified.status).to.equal(304);
      expect(notModified.body).to.equal('');
      expect(notModified.headers.etag).to.equal('"v1"');
      expect((await plainGet(site, '/page', { 'If-None-Match': '"v0"' })).status).to.equal(200);
      // A reload asks for the whole page again (as Express's own freshness check does).
      expect((await plainGet(site, '/page', { 'If-None-Match': '"v1"', 'Cache-Control': 'no-cache' })).status).to.equal(200);
      expect(site.runs('/page')).to.equal(1);
    });

    it('serves HEAD from the stored GET, headers only', async function () {
      const page = await get('/page');
      const head = await get('/page', { method: 'HEAD' });
      expect(head.status).to.equal(200);
      expect(head.body).to.equal('');
      expect(head.headers.get('content-length')).to.equal(page.headers.get('content-length'));
      expect(site.runs('/page')).to.equal(1);
    });

    it('stores a HEAD response for HEAD only', async function () {
      await get('/page', { method: 'HEAD' });
      await get('/page', { method: 'HEAD' });
      expect(site.runs('/page')).to.equal(1);
      expect((await get('/page')).body).to.equal('GET /page #2 cookie=');
    });

    it('neither serves nor stores other methods', async function () {
      await get('/page');
      expect((await get('/page', { method: 'POST' })).body).to.equal('POST /page #2 cookie=');
      expect((await get('/page', { method: 'POST' })).body).to.equal('POST /page #3 cookie=');
      expect((await get('/page')).body).to.equal('GET /page #1 cookie=');
    });

    it('keeps distinct query strings apart', async function () {
      expect((await get('/page?a=1')).body).to.equal('GET /page #1 cookie=');
      expect((await get('/page?a=2')).body).to.equal('GET /page #2 cookie=');
      expect((await get('/page?a=1')).body).to.equal('GET /page #1 cookie=');
      expect((await get('/page')).body).to.equal('GET /page #3 cookie=');
    });

    it('keeps one entry per cookie under Vary: Cookie', async function () {
      const ann = { headers: { Cookie: 'user=ann' } };
      const bob = { headers: { Cookie: 'user=bob' } };
      expect((await get('/cookie', ann)).body).to.equal('GET /cookie #1 cookie=user=ann');
      expect((await get('/cookie', bob)).body).to.equal('GET /cookie #2 cookie=user=bob');
      const again = await get('/cookie', ann);
      expect(again.body).to.equal('GET /cookie #1 cookie=user=ann');
      expect(again.headers.get('vary')).to.equal('Cookie');
      expect((await get('/cookie')).body).to.equal('GET /cookie #3 cookie=');
      expect(site.runs('/cookie')).to.equal(3);
    });

    for (const path of ['/private', '/no-store', '/no-cache', '/max-age-0', '/missing', '/stream', '/sets-cookie-for-all']) {
      it(`does not store ${path.slice(1)}`, async function () {
        const first = await get(path);
        const second = await get(path);
        expect(second.body).to.not.equal(first.body);
        expect(site.runs(path)).to.equal(2);
        if (path === '/stream') expect(first.body).to.equal('GET /stream #1 cookie=');
      });
    }

    it("stores a page that varies on Cookie and sets one only for the same cookies, never for a cookie-less request", async function () {
      const first = await get('/sets-cookie');
      await get('/sets-cookie');
      expect(site.runs('/sets-cookie')).to.equal(2);
      expect(first.headers.get('set-cookie')).to.equal('session=new');
      const ann = { headers: { Cookie: 'user=ann' } };
      await get('/sets-cookie', ann);
      const replay = await get('/sets-cookie', ann);
      expect(site.runs('/sets-cookie')).to.equal(3);
      expect(replay.headers.get('set-cookie')).to.equal('session=new');
      expect((await get('/sets-cookie', { headers: { Cookie: 'user=bob' } })).body).to.equal('GET /sets-cookie #4 cookie=user=bob');
    });

    it('stores a page without the headers its no-cache names', async function () {
      const withCookie = { headers: { Cookie: 'user=ann' } };
      expect((await get('/no-cache-cookie', withCookie)).headers.get('set-cookie')).to.equal('visit=1');
      const hit = await get('/no-cache-cookie', withCookie);
      expect(site.runs('/no-cache-cookie')).to.equal(1);
      expect(hit.headers.get('set-cookie')).to.equal(null);
    });

    it('does not share a page answered to credentials', async function () {
      const credentials = { headers: { Authorization: 'Basic YW5uOnNlY3JldA==' } };
      await get('/page', credentials);
      await get('/page', credentials);
      expect(site.runs('/page')).to.equal(2);
    });

    it("takes the response's max-age as the time to keep it", async function () {
      const miss = await get('/max-age-30');
      expect(miss.headers.get('cache-control')).to.equal('max-age=30');
      expect(secondsUntil(miss.headers.get('expires'))).to.be.within(28, 31);
      await get('/max-age-30');
      expect(site.runs('/max-age-30')).to.equal(1);
    });

    it("lets a route's own time win over the response's max-age, even max-age=0", async function () {
      const miss = await get('/route');
      expect(miss.headers.get('cache-control')).to.equal('max-age=30');
      expect(secondsUntil(miss.headers.get('expires'))).to.be.within(898, 901);
      expect((await get('/route')).body).to.equal(miss.body);
      await get('/route-max-age-0');
      await get('/route-max-age-0');
      expect(site.runs('/route')).to.equal(1);
      expect(site.runs('/route-max-age-0')).to.equal(1);
    });

    it('neverCache: headers that keep every copy away, and no stored page', async function () {
      const first = await get('/never');
      expect(first.headers.get('cache-control')).to.equal('max-age=0, no-cache, no-store, must-revalidate, private');
      expect(Math.abs(secondsUntil(first.headers.get('expires')))).to.be.below(2);
      await get('/never');
      expect(site.runs('/never')).to.equal(2);
    });

    it('runs the handler once for 100 concurrent requests of a cold page', async function () {
      const answers = await Promise.all(Array.from({ length: 100 }, () => get('/slow')));
      expect(site.runs('/slow')).to.equal(1);
      expect(new Set(answers.map((answer) => answer.body))).to.deep.equal(new Set(['GET /slow #1 cookie=']));
      expect(answers.every((answer) => answer.status === 200)).to.equal(true);
    });

    it('gives each cookie its own handler run when concurrent requests vary on it', async function () {
      const cookies = ['a=1', 'a=2', 'a=1', 'a=2'];
      const answers = await Promise.all(cookies.map((cookie) => get('/cookie', { headers: { Cookie: cookie } })));
      answers.forEach((answer, i) => expect(answer.body).to.match(new RegExp(`cookie=${cookies[i]}$`)));
    });
  });
}

describe('Express page cache behind compression', function () {
  /** The raw body of a GET with `headers`, and its Content-Encoding and Age. */
  function rawGet(base: string, headers: Record<string, string>): Promise<{ body: Buffer; encoding: string | undefined; age: string | undefined }> {
    return new Promise((resolve, reject) => {
      httpGet(`${base}/page`, { headers }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ body: Buffer.concat(chunks), encoding: response.headers['content-encoding'], age: response.headers.age as string | undefined }));
      }).on('error', reject);
    });
  }

  it('stores the page as the handler sent it, and compresses each hit for its request', async function () {
    const caches = new CacheRegistry({ default: { backend: 'locmem', location: unique('compressed') } });
    const app = express();
    app.use(compression({ threshold: 0 }));
    app.use(onExpress.cacheSite({ caches }));
    let runs = 0;
    app.get('/page', (_req, res) => res.send(`<p>page ${++runs}</p>`.repeat(20)));
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const page = '<p>page 1</p>'.repeat(20);
      const gzipMiss = await rawGet(base, { 'Accept-Encoding': 'gzip' });
      expect([gzipMiss.encoding, gunzipSync(gzipMiss.body).toString()]).to.deep.equal(['gzip', page]);
      const gzipHit = await rawGet(base, { 'Accept-Encoding': 'gzip' });
      expect([gzipHit.encoding, gunzipSync(gzipHit.body).toString(), gzipHit.age]).to.deep.equal(['gzip', page, '0']);
      const plainHit = await rawGet(base, {});
      expect([plainHit.encoding, plainHit.body.toString(), plainHit.age]).to.deep.equal([undefined, page, '0']);
      expect(runs).to.equal(1);
    } finally {
      server.close();
      await caches.close();
    }
  });
});

describe('Page caching over HTTP', function () {
  let redis: RestartableServer;
  before(async function () {
    this.timeout(60_000);
    redis = await startRedis('pages');
  });
  after(async function () {
    await redis.stop();
  });

  for (const framework of [expressFramework, fastifyFramework]) {
    pageCacheSuite(framework, 'locmem', () => ({ default: { backend: 'locmem', location: unique('pages') } }));
    pageCacheSuite(framework, 'Redis', () => ({ default: { backend: 'redis', location: `redis://127.0.0.1:${redis.port}` } }));

    describe(`${framework.name} page cache with the query allow-list`, function () {
      it('keys pages on the listed parameters only', async function () {
        const caches = new CacheRegistry({ default: { backend: 'locmem', location: unique('query') } });
        const site = await framework.start({ caches, query: ['page', 'sort'] });
        try {
          const body = (await request(site, '/page?sort=new&page=2&utm_source=mail')).body;
          expect((await request(site, '/page?page=2&sort=new')).body).to.equal(body);
          expect((await request(site, '/page?utm_campaign=x&page=2&sort=new')).body).to.equal(body);
          expect((await request(site, '/page?page=3&sort=new')).body).to.not.equal(body);
          expect(site.runs('/page')).to.equal(2);
        } finally {
          await site.close();
          await caches.close();
        }
      });
    });

    describe(`${framework.name} page cache during a Redis outage`, function () {
      it('serves every page uncached while Redis is down, and hits again once it is back', async function () {
        this.timeout(30_000);
        const outage = await startRedis('pages-outage');
        const incidents: CacheIncident[] = [];
        const caches = new CacheRegistry({ default: { backend: 'redis', location: `redis://127.0.0.1:${outage.port}` } });
        caches.on('incident', (incident) => incidents.push(incident)).on('recovery', () => undefined);
        const site = await framework.start({ caches });
        try {
          await request(site, '/page');
          expect((await request(site, '/page')).body).to.equal('GET /page #1 cookie=');
          await outage.stop('SIGKILL');
          for (let i = 2; i <= 6; i++) {
            const answer = await request(site, '/page');
            expect(answer.status).to.equal(200);
            expect(answer.body).to.equal(`GET /page #${i} cookie=`);
          }
          expect(incidents).to.have.length(1);
          const concurrent = await Promise.all(Array.from({ length: 20 }, () => request(site, '/slow')));
          expect(concurrent.every((answer) => answer.status === 200)).to.equal(true);
          expect(site.runs('/slow')).to.equal(1);
          await outage.start();
          const deadline = Date.now() + 5000;
          let hit = false;
          while (!hit && Date.now() < deadline) {
            await request(site, '/page');
            hit = (await request(site, '/page')).headers.get('age') !== null;
            if (!hit) await sleep(100);
          }
          expect(hit, 'a hit within 5 s of the restart').to.equal(true);
        } finally {
          await site.close();
          await caches.close();
          await outage.stop();
        }
      });
    });
  }
});
