/**
 * Page keys, as Django's learn_cache_key and get_cache_key make them: an entry per absolute URL lists the
 * request headers the page varies on (learned from its Vary header), and the page's own key adds the
 * method and a digest of those headers' values.
 */
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { varyNames } from './headers.js';

/** What a page key is made of: the request, as any framework gives it. */
export interface PageRequest {
  /** `GET`, `HEAD`, … */
  readonly method: string;
  /** The scheme and host the page was asked for: `https://example.com`. */
  readonly origin: string;
  /** The path and query as requested: `/stories/?order_by=author`. */
  readonly target: string;
  readonly headers: IncomingHttpHeaders;
}

function md5(text: string): string {
  return createHash('md5').update(text).digest('hex');
}

/** The digest of no header values: a page that varies on nothing hashes nothing for it. */
const NO_VALUES_DIGEST = md5('');

/**
 * The URL a page is cached under. With `query` (an allow-list), only those parameters count, in name
 * order, so `?b=2&a=1&utm_source=x` and `?a=1&b=2` are one page; without it, the query as requested.
 */
export function pageUrl(request: PageRequest, query: ReadonlySet<string> | undefined): string {
  const { origin, target } = request;
  if (query === undefined) return origin + target;
  const mark = target.indexOf('?');
  if (mark === -1) return origin + target;
  const kept = [...new URLSearchParams(target.slice(mark + 1))].filter(([name]) => query.has(name));
  kept.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const path = target.slice(0, mark);
  return kept.length === 0 ? origin + path : `${origin + path}?${new URLSearchParams(kept).toString()}`;
}

/**
 * The key of the entry that lists the headers the page at `url` varies on. `urlDigest` is the URL's
 * digest when the caller has it already (a request's two keys share it).
 */
export function headerListKey(keyPrefix: string, url: string, urlDigest = md5(url)): string {
  return `views.decorators.cache.cache_header.${keyPrefix}.${urlDigest}`;
}

/** The digest of a page URL, which both of its keys hold. */
export function digestOfUrl(url: string): string {
  return md5(url);
}

/**
 * The headers a response varies on, as its header list stores them: lower-case, sorted, once each.
 * Undefined for `Vary: *`, which no key can honour.
 */
export function learnHeaderList(vary: string | undefined): string[] | undefined {
  const names = varyNames(vary).map((name) => name.toLowerCase());
  if (names.includes('*')) return undefined;
  return [...new Set(names)].sort();
}

/**
 * The key of the page at `url` for `method` and the values of the `headerList` headers in `headers`.
 * Each value is written with its name and length, so no two different sets of values share a digest
 * (Django concatenates them, so `a` + `bc` and `ab` + `c` collide there). `urlDigest` as for
 * `headerListKey`.
 */
export function pageKey(keyPrefix: string, method: string, url: string, headerList: readonly string[], headers: IncomingHttpHeaders, urlDigest = md5(url)): string {
  let varied = '';
  for (const name of headerList) {
    const value = headers[name];
    const text = Array.isArray(value) ? value.join(', ') : value;
    varied += text === undefined ? `${name}-,` : `${name}:${text.length}:${text},`;
  }
  return `views.decorators.cache.cache_page.${keyPrefix}.${method}.${urlDigest}.${varied === '' ? NO_VALUES_DIGEST : md5(varied)}`;
}
