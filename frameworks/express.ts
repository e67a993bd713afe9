/**
 * `fragcache/express`: whole-site and per-route page caching for Express (and any Connect-style server
 * on Node's http), with the Vary and Cache-Control helpers of Django's django/utils/cache.py and
 * django/views/decorators. docs/http-caching.md shows each in use.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
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
} from 'fragcache/pages';

export type { CacheControlDirectives, PageCacheOptions } from 'fragcache/pages';

/** Express's `next`. */
export type NextFunction = (error?: unknown) => void;

/**
 * A middleware, typed on Node's own request and response so that it fits Express (whose `req` and
 * `res` extend them) and Connect-style servers alike.
 */
export type Middleware = (req: IncomingMessage, res: ServerResponse, next: NextFunction) => void;

/** What Express adds to Node's request that a page's URL needs, where it is there. */
interface ExpressRequest extends IncomingMessage {
  /** `http` or `https`, honouring Express's `trust proxy`. */
  protocol?: string;
  /** The URL as requested, before a mounted router took its prefix off. */
  originalUrl?: string;
}

function pageRequest(req: ExpressRequest): PageRequest {
  const protocol = req.protocol ?? ('encrypted' in req.socket ? 'https' : 'http');
  return { method: req.method ?? 'GET', origin: `${protocol}://${req.headers.host ?? ''}`, target: req.originalUrl ?? req.url ?? '/', headers: req.headers };
}

function headersOf(res: ServerResponse): HeaderAccess {
  return {
    get: (name) => headerText(res.getHeader(name)),
    set(name, value) {
      res.setHeader(name, value);
    },
  };
}

/** A response that one page cache may store: its miss, and what it has learned about the response. */
interface Recording {
  readonly miss: PageMiss;
  /** The headers set before the page cache looked the page up (by what also runs on hits). */
  readonly earlier: OutgoingHttpHeaders;
  /** From `plan`, once the headers are known: seconds to store the page for, or undefined. */
  seconds?: number;
  /** The headers when the page cache saw them, just before they went out. */
  headers?: OutgoingHttpHeaders;
  /** Set once the body was written in pieces: such a response is not stored. */
  streamed: boolean;
}

/** What happens to a response before its headers go out. */
interface ResponseWatch {
  /** The header patches of varyOnHeaders, cacheControl and the like, in the order they were added. */
  readonly patches: Array<(headers: HeaderAccess) => void>;
  /** The page cache recording the response: the innermost one, if a route's runs inside a site's. */
  recording: Recording | undefined;
}

const watches = new WeakMap<ServerResponse, ResponseWatch>();

/** The setHeader calls a `writeHead(status, [message], headers)` stands for, so that they can be seen. */
function applyHeaderArgument(res: ServerResponse, headers: unknown): void {
  if (Array.isArray(headers)) {
    for (let i = 0; i + 1 < headers.length; i += 2) res.setHeader(String(headers[i]), headers[i + 1] as string | string[]);
  } else if (typeof headers === 'object' && headers !== null) {
    for (const [name, value] of Object.entries(headers)) res.setHeader(name, value as string | string[]);
  }
}

/**
 * The response's watch, hooked into it on first use: its header patches and its page cache's plan run
 * just before the headers go out (after the handler, as Django's decorators and middleware do), and a
 * recorded response is stored once its body is complete.
 */
function watchOf(res: ServerResponse): ResponseWatch {
  let watch = watches.get(res);
  if (watch !== undefined) return watch;
  const created: ResponseWatch = { patches: [], recording: undefined };
  watches.set(res, created);
  const { writeHead, write, end } = res;
  res.writeHead = function (this: ServerResponse, status: number, ...rest: unknown[]) {
    this.statusCode = status;
    const message = typeof rest[0] === 'string' ? rest[0] : undefined;
    applyHeaderArgument(this, message === undefined ? rest[0] : rest[1]);
    const headers = headersOf(this);
    for (const patch of created.patches) patch(headers);
    const recording = created.recording;
    if (recording !== undefined) {
      recording.seconds = recording.miss.pages.plan(recording.miss, this.statusCode, headers);
      // The page as this point of the chain sends it: what middleware installed before the page cache
      // adds from here on (compression's Content-Encoding, a session's cookie) it adds again on a hit.
      recording.headers = this.getHeaders();
    }
    if (message !== undefined) this.statusMessage = message;
    return writeHead.call(this, this.statusCode);
  } as ServerResponse['writeHead'];
  res.write = function (this: ServerResponse, ...args: Parameters<ServerResponse['write']>) {
    const written = write.apply(this, args);
    const recording = created.recording;
    if (recording !== undefined && !recording.streamed) {
      recording.streamed = true;
      // Nothing will be stored: the requests waiting for this page need not wait for its end.
      recording.miss.settle();
    }
    return written;
  } as ServerResponse['write'];
  res.end = function (this: ServerResponse, ...args: unknown[]) {
    const ended = end.apply(this, args as Parameters<ServerResponse['end']>);
    const recording = created.recording;
    if (recording !== undefined) {
      const [chunk, encoding] = args;
      recording.miss.pages.finish(recording.miss, recording.seconds, recording.headers ?? this.getHeaders(), recording.earlier, recording.streamed ? undefined : bodyOf(chunk, encoding));
    }
    return ended;
  } as ServerResponse['end'];
  return created;
}

/** The body `res.end(chunk, encoding)` sent, as text (UTF-8) or bytes. */
function bodyOf(chunk: unknown, encoding: unknown): string | Uint8Array {
  if (typeof chunk === 'string') {
    return typeof encoding !== 'string' || /^utf-?8$/i.test(encoding) ? chunk : Buffer.from(chunk, encoding as BufferEncoding);
  }
  return chunk instanceof Uint8Array ? chunk : '';
}

function send(res: ServerResponse, lookup: { readonly page: Parameters<typeof cachedResponse>[0] }, request: PageRequest): void {
  const { status, headers, body } = cachedResponse(lookup.page, request);
  res.writeHead(status, headers);
  res.end(body);
}

/**
 * Looks the page up, sends it if the cache holds it, and otherwise records the response for `pages`.
 * A request already recorded by an outer page cache (the site's) is recorded by this one instead: the
 * innermost, the route's, decides.
 */
function pageCacheMiddleware(pages: PageCache): Middleware {
  return (req, res, next) => {
    const request = pageRequest(req);
    // An outer page cache (the site's) gives way to this one at once: it may be waiting for this page.
    const outer = watches.get(res);
    if (outer?.recording !== undefined) {
      outer.recording.miss.settle();
      outer.recording = undefined;
    }
    const answer = (lookup: PageLookup) => {
      if (lookup === NOT_CACHED) return next();
      if ('page' in lookup) return send(res, lookup, request);
      watchOf(res).recording = { miss: lookup.miss, earlier: res.getHeaders(), streamed: false };
      // A response that ends without finishing (a broken connection) releases its waiters too.
      res.once('close', () => lookup.miss.settle());
      next();
    };
    const looked = pages.lookup(request);
    if (looked instanceof Promise) looked.then(answer).catch(next);
    else answer(looked);
  };
}

/**
 * Caches every GET and HEAD response of the site that may be cached: Django's UpdateCacheMiddleware
 * and FetchFromCacheMiddleware in one (`app.use(cacheSite())`). Middleware installed before it runs on
 * every request, hits included; what is installed after it, and the handler, is what a hit saves.
 */
export function cacheSite(options?: PageCacheOptions): Middleware {
  return pageCacheMiddleware(new PageCache(options));
}

/**
 * Caches one route's responses for `seconds`, whatever max-age they set (Django's `cache_page`):
 * `app.get('/p/:id', cachePage(900), handler)`. Inside `cacheSite`, the route's settings win.
 */
export function cachePage(seconds: number, options?: Omit<PageCacheOptions, 'seconds'>): Middleware {
  return pageCacheMiddleware(new PageCache(options, seconds));
}

/** A middleware that patches the response's headers after the handler, before they are sent. */
function patching(patch: (headers: HeaderAccess) => void): Middleware {
  return (_req, res, next) => {
    watchOf(res).patches.push(patch);
    next();
  };
}

export const { patchVaryHeaders, patchCacheControl, getMaxAge } = responseHelpers<ServerResponse>(headersOf);

/** Route middleware: the response varies on these request headers (Django's `vary_on_headers`). */
export function varyOnHeaders(...names: string[]): Middleware {
  return patching((headers) => patchVaryHeadersOf(headers, names));
}

/** Route middleware: the response varies on the request's cookies (Django's `vary_on_cookie`). */
export function varyOnCookie(): Middleware {
  return varyOnHeaders('Cookie');
}

/** Route middleware: adds Cache-Control directives to the response (Django's `cache_control`). */
export function cacheControl(directives: CacheControlDirectives): Middleware {
  return patching((headers) => patchCacheControlHeaders(headers, directives));
}

/**
 * Route middleware: the response is cached nowhere, not by browsers, proxies or this cache (Django's
 * `never_cache`): `Expires` now and `Cache-Control: max-age=0, no-cache, no-store, must-revalidate, private`.
 */
export function neverCache(): Middleware {
  return patching((headers) => addNeverCacheHeaders(headers));
}
