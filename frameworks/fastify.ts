/**
 * `fragcache/fastify`: whole-site and per-route page caching for Fastify, as a plugin, with the Vary
 * and Cache-Control helpers of Django's django/utils/cache.py. Routes opt in through their `config`
 * (`{ config: { ...cachePage(900), ...varyOnCookie() } }`). docs/http-caching.md shows each in use.
 */
import type { FastifyPluginCallback, FastifyReply, FastifyRequest } from 'fastify';
import {
  NOT_CACHED,
  PageCache,
  addNeverCacheHeaders,
  cachedResponse,
  headerText,
  patchCacheControl as patchCacheControlHeaders,
  patchVaryHeaders as patchVaryHeadersOf,
  responseHelpers,
  type CacheControlDirectives,
  type HeaderAccess,
  type PageCacheOptions,
  type PageLookup,
  type PageMiss,
  type PageRequest,
  type SentHeaders,
  type StoredPage,
} from 'fragcache/pages';

export type { CacheControlDirectives, PageCacheOptions } from 'fragcache/pages';

/** A route's page caching: its seconds (Django's `cache_page`), and where it differs from the plugin's options. */
export interface RoutePageCache extends Omit<PageCacheOptions, 'seconds' | 'caches'> {
  seconds: number;
}

/** What a route's `config` may say about caching; the helpers below write each part. */
export interface RouteCacheConfig {
  /** Cache this route's responses (cachePage). */
  cachePage?: RoutePageCache;
  /** Request headers the response varies on (varyOnHeaders, varyOnCookie). */
  varyOnHeaders?: readonly string[];
  /** Cache-Control directives to add (cacheControl). */
  cacheControl?: CacheControlDirectives;
  /** Cache the response nowhere (neverCache). */
  neverCache?: boolean;
}

declare module 'fastify' {
  interface FastifyContextConfig extends RouteCacheConfig {}
}

export interface PageCachePluginOptions extends PageCacheOptions {
  /**
   * Cache every route's GET and HEAD responses (Django's site-wide cache), not only the routes with
   * `cachePage` in their config. Default false.
   */
  site?: boolean;
}

function pageRequest(request: FastifyRequest): PageRequest {
  return { method: request.method, origin: `${request.protocol}://${request.headers.host ?? ''}`, target: request.url, headers: request.headers };
}

function headersOf(reply: FastifyReply): HeaderAccess {
  return {
    get: (name) => headerText(reply.getHeader(name)),
    set(name, value) {
      reply.header(name, value);
    },
  };
}

/**
 * A response being recorded for a page cache, with the headers it had when the lookup missed (set by
 * what also runs on hits), or one the cache has answered.
 */
type Recording = { readonly miss: PageMiss; readonly earlier: SentHeaders } | { readonly hit: true };

function send(reply: FastifyReply, page: StoredPage, request: PageRequest): FastifyReply {
  const { status, headers, body } = cachedResponse(page, request);
  return reply.code(status).headers(headers).send(body);
}

/** The config parts a route's header helpers wrote, applied to its response before it is sent. */
function applyRouteHeaders(config: RouteCacheConfig, headers: HeaderAccess): void {
  if (config.varyOnHeaders !== undefined) patchVaryHeadersOf(headers, config.varyOnHeaders);
  if (config.cacheControl !== undefined) patchCacheControlHeaders(headers, config.cacheControl);
  if (config.neverCache === true) addNeverCacheHeaders(headers);
}

/**
 * The plugin: `await app.register(pageCache, { site: true })` caches the whole site; without `site`,
 * the routes whose config has `cachePage`. Registered before a plugin that transforms bodies in its
 * own onSend hook (compression), it stores the body as the handler sent it.
 */
export const pageCache: FastifyPluginCallback<PageCachePluginOptions> = (app, options, done) => {
  const { site = false, ...defaults } = options;
  const sitePages = site ? new PageCache(defaults) : undefined;
  /** Each route's page cache, made on its first request. */
  const routePages = new WeakMap<RoutePageCache, PageCache>();
  const recordings = new WeakMap<FastifyRequest, Recording>();

  const pagesFor = (config: RouteCacheConfig): PageCache | undefined => {
    const route = config.cachePage;
    if (route === undefined) return sitePages;
    let pages = routePages.get(route);
    if (pages === undefined) {
      const { seconds, ...own } = route;
      pages = new PageCache({ ...defaults, ...own }, seconds);
      routePages.set(route, pages);
    }
    return pages;
  };

  app.addHook('onRequest', (request, reply, next) => {
    const pages = pagesFor(request.routeOptions.config);
    if (pages === undefined) return next();
    const page = pageRequest(request);
    const answer = (lookup: PageLookup) => {
      if (lookup === NOT_CACHED) return next();
      if ('page' in lookup) {
        recordings.set(request, { hit: true });
        return send(reply, lookup.page, page);
      }
      const { miss } = lookup;
      recordings.set(request, { miss, earlier: reply.getHeaders() });
      // A response that ends without finishing (a broken connection) releases its waiters too.
      reply.raw.once('close', () => miss.settle());
      next();
    };
    const looked = pages.lookup(page);
    if (looked instanceof Promise) looked.then(answer).catch(next);
    else answer(looked);
  });

  app.addHook('onSend', (request, reply, payload, next) => {
    const recording = recordings.get(request);
    if (recording !== undefined && 'hit' in recording) return next(null, payload);
    const headers = headersOf(reply);
    applyRouteHeaders(request.routeOptions.config, headers);
    if (recording !== undefined) {
      const { miss, earlier } = recording;
      const seconds = miss.pages.plan(miss, reply.statusCode, headers);
      miss.pages.finish(miss, seconds, reply.getHeaders(), earlier, bodyOf(payload));
    }
    next(null, payload);
  });

  done();
};

// Registered this way, the plugin's hooks apply to the whole application (what fastify-plugin does).
Object.defineProperty(pageCache, Symbol.for('skip-override'), { value: true });
Object.defineProperty(pageCache, Symbol.for('fastify.display-name'), { value: 'fragcache' });

export default pageCache;

/** A payload as sent whole (text, bytes, or nothing); undefined for a stream, which is not stored. */
function bodyOf(payload: unknown): string | Uint8Array | undefined {
  if (payload === null || payload === undefined) return '';
  if (typeof payload === 'string' || payload instanceof Uint8Array) return payload;
  return undefined;
}

/** Route config: cache the route's responses for `seconds`, whatever max-age they set (Django's `cache_page`). */
export function cachePage(seconds: number, options?: Omit<RoutePageCache, 'seconds'>): Pick<RouteCacheConfig, 'cachePage'> {
  return { cachePage: { ...options, seconds } };
}

/** Route config: the response varies on these request headers (Django's `vary_on_headers`). */
export function varyOnHeaders(...names: string[]): Pick<RouteCacheConfig, 'varyOnHeaders'> {
  return { varyOnHeaders: names };
}

/** Route config: the response varies on the request's cookies (Django's `vary_on_cookie`). */
export function varyOnCookie(): Pick<RouteCacheConfig, 'varyOnHeaders'> {
  return varyOnHeaders('Cookie');
}

/** Route config: Cache-Control directives to add to the response (Django's `cache_control`). */
export function cacheControl(directives: CacheControlDirectives): Pick<RouteCacheConfig, 'cacheControl'> {
  return { cacheControl: directives };
}

/** Route config: the response is cached nowhere, this cache included (Django's `never_cache`). */
export function neverCache(): Pick<RouteCacheConfig, 'neverCache'> {
  return { neverCache: true };
}

export const { patchVaryHeaders, patchCacheControl, getMaxAge } = responseHelpers<FastifyReply>(headersOf);
