/**
 * The response headers that steer caches (Vary, Cache-Control, Expires), read and patched the way
 * Django's django/utils/cache.py does, on any framework's response through `HeaderAccess`.
 */
import { toInteger } from '../base.js';

/** One response's headers, whatever holds them (Node's ServerResponse, Fastify's reply). */
export interface HeaderAccess {
  /** The header's value; several values joined with ", ". */
  get(name: string): string | undefined;
  set(name: string, value: string): void;
}

/**
 * Cache-Control directives by name, written `maxAge`, `max_age` or `'max-age'` alike. `true` writes the
 * bare directive, a number or a string `name=value`; `false` removes the directive. `noCache` may name a
 * header (`noCache: 'Set-Cookie'`), and adds to the ones already named.
 */
export type CacheControlDirectives = Readonly<Record<string, boolean | number | string | undefined>>;

/** A header's value as Node and Fastify hold it, as text: several values joined with ", ". */
export function headerText(value: number | string | readonly string[] | undefined): string | undefined {
  return value === undefined ? undefined : typeof value === 'object' ? value.join(', ') : String(value);
}

/** Django's delimiter for Vary and Cache-Control lists: a comma and any spaces around it. */
const LIST_DELIMITER = /\s*,\s*/;

function listOf(value: string | undefined): string[] {
  if (value === undefined) return [];
  return value.trim().split(LIST_DELIMITER).filter((item) => item !== '');
}

/** `maxAge`, `max_age`, `Max-Age` → `max-age`. */
function directiveName(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, '$1-$2').replace(/_/g, '-').toLowerCase();
}

/** A directive's values: `true` for the bare directive, else its argument; only no-cache takes several. */
type Directives = Map<string, Set<true | string>>;

function parseCacheControl(value: string | undefined): Directives {
  const directives: Directives = new Map();
  for (const item of listOf(value)) {
    const equals = item.indexOf('=');
    const name = (equals === -1 ? item : item.slice(0, equals)).toLowerCase();
    const argument = equals === -1 ? true : item.slice(equals + 1);
    const values = name === 'no-cache' ? directives.get(name) : undefined;
    if (values === undefined) directives.set(name, new Set([argument]));
    else values.add(argument);
  }
  return directives;
}

function formatCacheControl(directives: Directives): string {
  const items: string[] = [];
  for (const [name, values] of directives) {
    // A bare no-cache covers every header a named one would.
    if (values.has(true)) items.push(name);
    else for (const value of values) items.push(`${name}=${value}`);
  }
  return items.join(', ');
}

/** Whether a Cache-Control value holds `directive` (lower-case), with or without an argument. */
export function hasDirective(cacheControl: string | undefined, directive: string): boolean {
  return parseCacheControl(cacheControl).has(directive);
}

/** The headers a Cache-Control value's field-named `no-cache` lists, lower-case; `true` for a bare one. */
export function noCacheFields(cacheControl: string | undefined): readonly string[] | true {
  const values = parseCacheControl(cacheControl).get('no-cache');
  if (values === undefined) return [];
  if (values.has(true)) return true;
  return [...values].map((field) => String(field).replace(/^"|"$/g, '').toLowerCase());
}

/** The max-age of a Cache-Control value in whole seconds, or undefined if it has none that is a number. */
export function maxAgeOf(cacheControl: string | undefined): number | undefined {
  const value = parseCacheControl(cacheControl).get('max-age')?.values().next().value;
  return typeof value === 'string' ? toInteger(value) : undefined;
}

/**
 * Adds `directives` to a Cache-Control value: a new max-age never raises an existing one (a route and a
 * middleware may both set it), public and private replace each other, no-cache field names accumulate.
 */
export function patchedCacheControl(current: string | undefined, directives: CacheControlDirectives): string {
  const patched = parseCacheControl(current);
  const changes = new Map<string, boolean | number | string>();
  for (const [name, value] of Object.entries(directives)) {
    if (value !== undefined) changes.set(directiveName(name), value);
  }
  const maxAge = changes.get('max-age');
  const currentMaxAge = maxAgeOf(current);
  if (typeof maxAge === 'number' && currentMaxAge !== undefined) changes.set('max-age', Math.min(maxAge, currentMaxAge));
  if (changes.get('public') === true) patched.delete('private');
  else if (changes.get('private') === true) patched.delete('public');
  for (const [name, value] of changes) {
    if (value === false) {
      patched.delete(name);
    } else {
      const argument = value === true ? true : String(value);
      const values = name === 'no-cache' && argument !== true ? patched.get(name) : undefined;
      if (values === undefined) patched.set(name, new Set([argument]));
      else values.add(argument);
    }
  }
  return formatCacheControl(patched);
}

/** The header names a Vary value lists, as written. */
export function varyNames(vary: string | undefined): string[] {
  return listOf(vary);
}

/** Whether a Vary value names `header` (case-insensitive). */
export function variesOn(vary: string | undefined, header: string): boolean {
  const wanted = header.toLowerCase();
  return listOf(vary).some((name) => name.toLowerCase() === wanted);
}

/**
 * Adds header names to a Vary value: the existing order is kept, names already there (in any case) are
 * not repeated, and `*` (the response varies on more than headers) replaces everything.
 */
export function patchedVary(current: string | undefined, names: readonly string[]): string {
  const vary = listOf(current);
  const present = new Set(vary.map((name) => name.toLowerCase()));
  for (const name of names) {
    if (!present.has(name.toLowerCase())) vary.push(name);
  }
  return vary.includes('*') ? '*' : vary.join(', ');
}

/** An HTTP date (RFC 9110 IMF-fixdate) for a time in milliseconds. */
export function httpDate(milliseconds: number): string {
  return new Date(milliseconds).toUTCString();
}

// ---- the helpers, on one response's headers --------------------------------------------------------

export function patchVaryHeaders(headers: HeaderAccess, names: readonly string[]): void {
  headers.set('Vary', patchedVary(headers.get('Vary'), names));
}

export function patchCacheControl(headers: HeaderAccess, directives: CacheControlDirectives): void {
  headers.set('Cache-Control', patchedCacheControl(headers.get('Cache-Control'), directives));
}

/** The response's max-age in whole seconds, or undefined when it sets none (or one that is not a number). */
export function getMaxAge(headers: HeaderAccess): number | undefined {
  return maxAgeOf(headers.get('Cache-Control'));
}

/**
 * Tells downstream caches the response is good for `seconds`: an `Expires` (unless the response has
 * one) and a `max-age` (the smaller of the response's own and `seconds`).
 */
export function patchResponseHeaders(headers: HeaderAccess, seconds: number, now = Date.now()): void {
  const maxAge = Math.max(0, Math.floor(seconds));
  if (headers.get('Expires') === undefined) headers.set('Expires', httpDate(now + maxAge * 1000));
  patchCacheControl(headers, { maxAge });
}

/** Makes the response uncacheable by browsers and every other cache, this one included. */
export function addNeverCacheHeaders(headers: HeaderAccess, now = Date.now()): void {
  patchResponseHeaders(headers, 0, now);
  patchCacheControl(headers, { noCache: true, noStore: true, mustRevalidate: true, private: true });
}

/** The header helpers on a framework's own response object (Node's ServerResponse, Fastify's reply). */
export interface ResponseHelpers<Response> {
  /** Adds `names` to the response's Vary header: keeps its order, ignores case and repeats; `*` wins. */
  patchVaryHeaders(response: Response, names: readonly string[]): void;
  /**
   * Adds directives to the response's Cache-Control header (`{ maxAge: 3600, public: true }`): a
   * max-age never raises the one there; public and private replace each other.
   */
  patchCacheControl(response: Response, directives: CacheControlDirectives): void;
  /** The response's max-age in seconds, or undefined if it sets none. */
  getMaxAge(response: Response): number | undefined;
}

/** The header helpers for a framework whose responses `headersOf` reads and writes. */
export function responseHelpers<Response>(headersOf: (response: Response) => HeaderAccess): ResponseHelpers<Response> {
  return {
    patchVaryHeaders: (response, names) => patchVaryHeaders(headersOf(response), names),
    patchCacheControl: (response, directives) => patchCacheControl(headersOf(response), directives),
    getMaxAge: (response) => getMaxAge(headersOf(response)),
  };
}
