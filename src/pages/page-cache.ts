/**
 * The engine of whole-page caching, shared by the Express and Fastify integrations: Django's
 * FetchFromCacheMiddleware (lookup) and UpdateCacheMiddleware (plan, finish), with Django's rules for
 * what is stored and for how long, made stricter where Django can leak one user's page to another.
 *
 * A backend problem is never a page problem: reads and writes go through the cache's breaker, so a
 * cache that fails is a miss and an unstored page. Requests for a page that is being rendered wait
 * for it instead of rendering it again (single flight).
 */
import { isUtf8 } from 'node:buffer';
import { isPromiseLike, type Awaitable, type BaseCache } from '../base.js';
import { readOrMiss, writeInBackground } from '../fail-open.js';
import { FlightsByCache } from '../flights.js';
import { caches as processCaches, type CacheRegistry } from '../registry.js';
import { hasDirective, headerText, maxAgeOf, noCacheFields, patchResponseHeaders, variesOn, type HeaderAccess } from './headers.js';
import { digestOfUrl, headerListKey, learnHeaderList, pageKey, pageUrl, type PageRequest } from './keys.js';

export interface PageCacheOptions {
  /** The registry whose caches pages are stored in. Default: the process-wide `caches`. */
  caches?: CacheRegistry;
  /** The alias of the cache pages are stored in. Default `'default'`. */
  cache?: string;
  /**
   * Seconds a page is kept when its response sets no `max-age` (and no route set a time of its own).
   * Default 600, Django's `CACHE_MIDDLEWARE_SECONDS`.
   */
  seconds?: number;
  /** Prepended to page keys, so that sites sharing a cache keep apart. Default `''`. */
  keyPrefix?: string;
  /**
   * The query parameters pages depend on. Default: all of them, so every distinct query string is a
   * distinct page. With a list, only those parameters make up the key, in name order: `?utm_source=x`
   * and `?b=1&a=2` then share the entry of the page they show, and made-up parameters cannot fill the
   * cache. Parameters left out still reach the handler: list every one the page reads.
   */
  query?: readonly string[];
}

/** A response's headers by lower-case name, as Node's `getHeaders()` and Fastify's give them. */
export type SentHeaders = Readonly<Record<string, number | string | readonly string[] | undefined>>;

/** Django's CACHE_MIDDLEWARE_SECONDS. */
export const DEFAULT_PAGE_SECONDS = 600;

/** A page as the cache holds it. */
export interface StoredPage {
  /** The 200 response's headers, by lower-case name, as the cache may repeat them. */
  readonly headers: Readonly<Record<string, string | string[]>>;
  /** The body: UTF-8 text, or base64 when `base64` is set. */
  readonly body: string;
  readonly base64?: true;
  /** When it was stored, in milliseconds since the epoch: what a hit's `Age` counts from. */
  readonly storedAt: number;
}

/** A response to send from the cache. */
export interface CachedResponse {
  readonly status: 200 | 304;
  readonly headers: Readonly<Record<string, string | string[]>>;
  /** Undefined for a 304. A HEAD request gets the body too: its server sends none, but counts its length. */
  readonly body: string | Buffer | undefined;
}

/** What the leader of a flight found, for the requests that waited for it. */
interface Landing {
  readonly key?: string;
  readonly headerList?: readonly string[];
  readonly page?: StoredPage;
}

const NOTHING_STORED: Landing = {};

/** A page being rendered, which other requests for it wait for until its response settles it. */
class Flight {
  /** Hands the page to the requests waiting for it (replaced by the result's resolve as it is made). */
  settle: (landing: Landing) => void = () => undefined;
  readonly result = new Promise<Landing>((resolve) => {
    this.settle = resolve;
  });
}

/** The pages being rendered, by cache (shared by every PageCache on it) and flight key. */
const flights = new FlightsByCache<Flight>();

/** A request whose page the cache does not hold: its response may be stored, once it is known. */
export class PageMiss {
  private settled = false;

  constructor(
    readonly pages: PageCache,
    readonly cache: BaseCache,
    readonly request: PageRequest,
    readonly url: string,
    /** The URL's digest, which both of the page's keys hold. */
    readonly urlDigest: string,
    private readonly flight: Flight | undefined,
  ) {}

  /** Releases the requests waiting for this page; only the first call counts. */
  settle(landing: Landing = NOTHING_STORED): void {
    if (this.settled) return;
    this.settled = true;
    this.flight?.settle(landing);
  }
}

/** What a lookup found: a page to send, a miss whose response may be stored, or a request never cached. */
export type PageLookup = { readonly page: StoredPage } | { readonly miss: PageMiss } | typeof NOT_CACHED;

/** A request the page cache leaves alone (methods other than GET and HEAD). */
export const NOT_CACHED: unique symbol = Symbol('not cached');

function andThen<T, U>(value: Awaitable<T>, next: (value: T) => Awaitable<U>): Awaitable<U> {
  return isPromiseLike(value) ? Promise.resolve(value).then(next) : next(value);
}

function isHeaderList(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((name) => typeof name === 'string');
}

function isHeaderValue(value: unknown): value is string | string[] {
  return typeof value === 'string' || (Array.isArray(value) && value.every((item) => typeof item === 'string'));
}

/** Whether a stored value is a page: a foreign or corrupt entry is a miss, never a broken response. */
function isStoredPage(value: unknown): value is StoredPage {
  if (typeof value !== 'object' || value === null) return false;
  const page = value as Partial<StoredPage>;
  const { headers } = page;
  return typeof page.body === 'string' && typeof page.storedAt === 'number' && typeof headers === 'object' && headers !== null && Object.values(headers).every(isHeaderValue);
}

/** Headers that belong to one connection or one moment, never to a stored page. */
const UNSTORED_HEADERS = new Set(['age', 'connection', 'date', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

/** The headers a 304 repeats from the page it stands for (RFC 9110, 15.4.5). */
const NOT_MODIFIED_HEADERS = ['cache-control', 'content-location', 'etag', 'expires', 'last-modified', 'vary'];

/** RFC 9110's weak comparison: `W/"x"` and `"x"` are the same entity tag. */
function weakTag(tag: string): string {
  return tag.startsWith('W/') ? tag.slice(2) : tag;
}

/** Whether a conditional request already has the stored page, so that a 304 answers it. */
function notModified(request: PageRequest, page: StoredPage): boolean {
  const { headers } = request;
  const ifNoneMatch = headers['if-none-match'];
  const ifModifiedSince = headers['if-modified-since'];
  if (ifNoneMatch === undefined && ifModifiedSince === undefined) return false;
  if (hasDirective(headerText(headers['cache-control']), 'no-cache')) return false;
  if (ifNoneMatch !== undefined) {
    const etag = headerText(page.headers.etag);
    if (etag === undefined) return false;
    const wanted = weakTag(etag);
    return ifNoneMatch.split(',').some((tag) => tag.trim() === '*' || weakTag(tag.trim()) === wanted);
  }
  const lastModified = headerText(page.headers['last-modified']);
  if (ifModifiedSince === undefined || lastModified === undefined) return false;
  const since = Date.parse(ifModifiedSince);
  const modified = Date.parse(lastModified);
  return !Number.isNaN(since) && !Number.isNaN(modified) && modified <= since;
}

/**
 * One configuration of page caching (a site's, or a route's): looks pages up, decides which responses
 * are stored and for how long, and stores them.
 */
export class PageCache {
  private readonly caches: CacheRegistry;
  private readonly alias: string;
  private readonly seconds: number;
  private readonly keyPrefix: string;
  private readonly query: ReadonlySet<string> | undefined;

  /** `pageSeconds` is a route's own time (cachePage), which wins over the response's max-age. */
  constructor(
    options: PageCacheOptions = {},
    private readonly pageSeconds?: number,
  ) {
    this.caches = options.caches ?? processCaches;
    this.alias = options.cache ?? 'default';
    this.seconds = options.seconds ?? DEFAULT_PAGE_SECONDS;
    this.keyPrefix = options.keyPrefix ?? '';
    this.query = options.query === undefined ? undefined : new Set(options.query);
    for (const [name, value] of [['seconds', this.seconds], ['cachePage seconds', pageSeconds ?? 0]] as const) {
      if (typeof value !== 'number' || Number.isNaN(value) || value < 0) {
        throw new TypeError(`Invalid page cache ${name}: ${String(value)} (expected a number of seconds, 0 or more)`);
      }
    }
  }

  /**
   * Django's FetchFromCacheMiddleware: the stored page for a GET, or for a HEAD (the GET's page first,
   * then one stored for HEAD). While another request renders the same page, waits for it.
   */
  lookup(request: PageRequest): Awaitable<PageLookup> {
    if (request.method !== 'GET' && request.method !== 'HEAD') return NOT_CACHED;
    const cache = this.caches.get(this.alias);
    const url = pageUrl(request, this.query);
    const urlDigest = digestOfUrl(url);
    const listKey = cache.makeKey(headerListKey(this.keyPrefix, url, urlDigest));
    const missOrFollow = (flightKey: string) => this.missOrFollow(cache, request, url, urlDigest, flightKey);
    return andThen(readOrMiss(cache, listKey), (stored) => {
      if (!isHeaderList(stored)) return missOrFollow(`${request.method} ${listKey}`);
      const keyFor = (method: string) => cache.makeKey(pageKey(this.keyPrefix, method, url, stored, request.headers, urlDigest));
      const getKey = keyFor('GET');
      return andThen(readOrMiss(cache, getKey), (page) => {
        if (isStoredPage(page)) return { page };
        if (request.method === 'GET') return missOrFollow(getKey);
        const headKey = keyFor('HEAD');
        return andThen(readOrMiss(cache, headKey), (headPage) => (isStoredPage(headPage) ? { page: headPage } : missOrFollow(headKey)));
      });
    });
  }

  /** A miss that renders the page, or, while another request renders it, that request's page. */
  private missOrFollow(cache: BaseCache, request: PageRequest, url: string, urlDigest: string, flightKey: string): Awaitable<PageLookup> {
    const underway = flights.of(cache).get(flightKey);
    if (underway === undefined) {
      const flight = new Flight();
      flights.of(cache).start(flightKey, flight);
      return { miss: new PageMiss(this, cache, request, url, urlDigest, flight) };
    }
    return underway.result.then((landing) => {
      const { key, headerList, page } = landing;
      if (page !== undefined && headerList !== undefined && key === cache.makeKey(pageKey(this.keyPrefix, request.method, url, headerList, request.headers, urlDigest))) {
        return { page };
      }
      // The page was not stored, or varies on a header this request has another value of.
      return { miss: new PageMiss(this, cache, request, url, urlDigest, undefined) };
    });
  }

  /**
   * Django's UpdateCacheMiddleware, before the headers go out: whether the response may be stored and
   * for how many seconds (undefined: not stored). A response that may be cached downstream gets its
   * `Expires` and `max-age`.
   */
  plan(miss: PageMiss, status: number, headers: HeaderAccess): number | undefined {
    if (status !== 200 && status !== 304) return undefined;
    const cacheControl = headers.get('Cache-Control');
    const vary = headers.get('Vary');
    const requestHeaders = miss.request.headers;
    // A cookie is replayed only to requests with the same cookies: Django also stores a Set-Cookie
    // that the page does not vary on, which hands one visitor's cookie to everyone.
    if (headers.get('Set-Cookie') !== undefined && !(variesOn(vary, 'Cookie') && requestHeaders.cookie !== undefined)) return undefined;
    if (hasDirective(cacheControl, 'private') || hasDirective(cacheControl, 'no-store') || noCacheFields(cacheControl) === true) return undefined;
    // RFC 9111, 3.5: a page answering credentials is not shared unless it says it may be.
    if (requestHeaders.authorization !== undefined && !variesOn(vary, 'Authorization') && !hasDirective(cacheControl, 'public')) return undefined;
    let seconds = this.pageSeconds;
    if (seconds === undefined) {
      const maxAge = maxAgeOf(cacheControl);
      if (maxAge !== undefined && maxAge <= 0) return undefined;
      seconds = maxAge ?? this.seconds;
    }
    patchResponseHeaders(headers, seconds);
    return status === 200 && seconds > 0 ? seconds : undefined;
  }

  /**
   * Django's UpdateCacheMiddleware, once the response has been sent: stores it for `seconds` (from
   * `plan`), with `headers` as sent and `body` (text is UTF-8; undefined: streamed, never stored), and
   * releases the requests waiting for it. `earlier` are the headers the response had when the lookup
   * missed, set by what runs before the page cache on every request, hits included: those it still has
   * unchanged are not stored, so that each hit carries its own (a CORS origin, a session's cookie).
   * The writes are not awaited: a failing cache fails no response.
   */
  finish(miss: PageMiss, seconds: number | undefined, headers: SentHeaders, earlier: SentHeaders, body: string | Uint8Array | undefined): void {
    if (seconds === undefined || body === undefined) return miss.settle();
    const vary = headerText(headers.vary);
    const headerList = learnHeaderList(vary);
    if (headerList === undefined) return miss.settle();
    const page = storedPage(headers, earlier, body);
    const { cache, request, url, urlDigest } = miss;
    const key = cache.makeKey(pageKey(this.keyPrefix, request.method, url, headerList, request.headers, urlDigest));
    const timeout = cache.resolveTimeout(seconds);
    writeInBackground(cache, cache.makeKey(headerListKey(this.keyPrefix, url, urlDigest)), headerList, timeout);
    writeInBackground(cache, key, page, timeout);
    miss.settle({ key, headerList, page });
  }
}

/** Whether a header still has the value it had earlier (the same text, or the same list). */
function unchanged(value: SentHeaders[string], earlier: SentHeaders[string]): boolean {
  return earlier !== undefined && headerText(value) === headerText(earlier);
}

/** The page to store for a response: its headers but those of the moment and the earlier ones, and its body. */
function storedPage(headers: SentHeaders, earlier: SentHeaders, body: string | Uint8Array): StoredPage {
  const unrepeatable = noCacheFields(headerText(headers['cache-control']));
  const kept: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || UNSTORED_HEADERS.has(name) || unchanged(value, earlier[name]) || (unrepeatable !== true && unrepeatable.includes(name))) continue;
    kept[name] = typeof value === 'object' ? [...value] : String(value);
  }
  const storedAt = Date.now();
  if (typeof body === 'string') return { headers: kept, body, storedAt };
  const bytes = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  return isUtf8(bytes) ? { headers: kept, body: bytes.toString('utf8'), storedAt } : { headers: kept, body: bytes.toString('base64'), base64: true, storedAt };
}

/** The response a stored page gives `request`: the page with its `Age`, or a 304 when the request already has it. */
export function cachedResponse(page: StoredPage, request: PageRequest, now = Date.now()): CachedResponse {
  const age = String(Math.max(0, Math.floor((now - page.storedAt) / 1000)));
  if (notModified(request, page)) {
    const headers: Record<string, string | string[]> = { age };
    for (const name of NOT_MODIFIED_HEADERS) {
      const value = page.headers[name];
      if (value !== undefined) headers[name] = value;
    }
    return { status: 304, headers, body: undefined };
  }
  return { status: 200, headers: { ...page.headers, age }, body: page.base64 === true ? Buffer.from(page.body, 'base64') : page.body };
}

