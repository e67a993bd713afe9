/**
 * The engine-neutral half of the `cache` tag: argument checks, timeout and cache resolution, the key,
 * and the one place where get → render → set happens. The Nunjucks and Eta integrations only parse
 * their syntax and call `FragmentRuntime.render`.
 */
import {
  CacheTagError,
  TemplateSyntaxError,
  caches as processCaches,
  fragmentCache,
  type Awaitable,
  type BaseCache,
  type CacheRegistry,
  type Timeout,
} from '../src/index.js';
import { isPromiseLike, toInteger } from '../src/base.js';
import { encodeVaryOn, fragmentKeyOfEncoded } from '../src/keys.js';

/** Where a tag stands, for the errors of a miss. */
interface TagPlace {
  readonly template: string | undefined;
  readonly line: number | undefined;
}

/** Renders the block's body; returns its HTML (a Promise only in asynchronous renders). */
export type RenderBody = () => Awaitable<string>;

/** Passed as the alias of a tag that has no `using=`. */
export const NO_ALIAS: unique symbol = Symbol('no using= argument');

/** The messages for argument counts, shared by the engines' parsers. */
export const TOO_FEW_ARGUMENTS = "'cache' tag requires at least 2 arguments.";
export const USING_NOT_LAST = "'cache' tag accepts using= only as its last argument.";

/** A value as the error texts show it: strings in single quotes, `undefined`, else its JSON. */
export function displayValue(value: unknown): string {
  if (typeof value === 'string') return `'${value}'`;
  if (value === undefined) return 'undefined';
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/**
 * The tag's timeout in seconds: what Django's int() accepts (integers, integer-like strings, floats
 * truncated toward zero), and `null` for "forever". Checked on every render, hit or miss, so a bad
 * value never hides behind a hit.
 */
export function resolveFragmentTimeout(value: unknown, template: string | undefined, line: number | undefined): Timeout {
  if (value === null) return null;
  const seconds = toInteger(value);
  if (seconds !== undefined) return seconds;
  throw new TemplateSyntaxError(`"cache" tag got a non-integer timeout value: ${displayValue(value)}`, { template, line });
}

/** The made keys of one fragment name, by what its vary values look like. */
interface KeysOfName {
  /** Without vary values. */
  bare: string | undefined;
  /** By the one vary value itself, when it is a primitive (it prints the same every time). */
  byValue: Map<unknown, string>;
  /** By `encodeVaryOn` of the vary values, otherwise (objects print what they print now). */
  byEncoding: Map<string, string>;
}

/** How many made keys one cache's memo holds before it starts again. */
const MADE_KEYS_LIMIT = 10_000;

function isPrimitive(value: unknown): boolean {
  return value === null || (typeof value !== 'object' && typeof value !== 'function' && typeof value !== 'symbol');
}

/**
 * The made and validated keys of the fragments one cache served recently. A hit looks its key up by
 * the fragment's name and its vary value as they are: with no vary value or one primitive, it builds,
 * hashes and validates nothing, and hands the backend the same string (its hash already computed)
 * every time; otherwise it builds only the encoding. Bounded: emptied whenever it holds
 * `MADE_KEYS_LIMIT` keys. A key that fails validation is not remembered, so it fails on every render;
 * one that only warns, warns when it is first made.
 */
class MadeFragmentKeys {
  private readonly names = new Map<string, KeysOfName>();
  private count = 0;

  constructor(private readonly cache: BaseCache) {}

  get(name: string, vary: readonly unknown[]): string {
    const keys = this.names.get(name);
    if (vary.length === 0) return keys?.bare ?? this.remember(name, 'bare', undefined, '');
    if (vary.length === 1 && isPrimitive(vary[0])) {
      return keys?.byValue.get(vary[0]) ?? this.remember(name, 'byValue', vary[0], encodeVaryOn(vary));
    }
    const encoding = encodeVaryOn(vary);
    return keys?.byEncoding.get(encoding) ?? this.remember(name, 'byEncoding', encoding, encoding);
  }

  private remember(name: string, kind: keyof KeysOfName, lookup: unknown, encoding: string): string {
    const key = this.cache.makeAndValidateKey(fragmentKeyOfEncoded(name, encoding));
    if (this.count >= MADE_KEYS_LIMIT) {
      this.names.clear();
      this.count = 0;
    }
    let keys = this.names.get(name);
    if (keys === undefined) {
      keys = { bare: undefined, byValue: new Map(), byEncoding: new Map() };
      this.names.set(name, keys);
    }
    if (kind === 'bare') keys.bare = key;
    else if (kind === 'byValue') keys.byValue.set(lookup, key);
    else keys.byEncoding.set(lookup as string, key);
    this.count++;
    return key;
  }
}

export class FragmentRuntime {
  /** Weakly held: a cache replaced by `CacheRegistry.configure` takes its keys with it. */
  private readonly madeKeys = new WeakMap<BaseCache, MadeFragmentKeys>();

  constructor(readonly caches: CacheRegistry = processCaches) {}

  private madeKeysOf(cache: BaseCache): MadeFragmentKeys {
    let keys = this.madeKeys.get(cache);
    if (keys === undefined) {
      keys = new MadeFragmentKeys(cache);
      this.madeKeys.set(cache, keys);
    }
    return keys;
  }

  private cacheFor(alias: unknown, template: string | undefined, line: number | undefined): BaseCache {
    if (alias === NO_ALIAS) return fragmentCache(this.caches);
    if (typeof alias === 'string' && this.caches.has(alias)) return this.caches.get(alias);
    throw new TemplateSyntaxError(`Invalid cache name specified for cache tag: ${displayValue(alias)}`, { template, line });
  }

  /**
   * One render of a cache block. The result is a string whenever the cache and the body answered
   * synchronously, which a hit on an in-memory cache always does. `template` and `line` say where the
   * tag stands, for errors (Nunjucks learns the template only after an error is thrown).
   *
   * `syncAdvice` marks a synchronous render: an asynchronous cache then fails with a CacheTagError that
   * ends with this advice, instead of returning a Promise the engine could not wait for.
   */
  render(
    name: string,
    timeoutValue: unknown,
    alias: unknown,
    vary: readonly unknown[],
    body: RenderBody,
    template: string | undefined,
    line: number | undefined,
    syncAdvice?: string,
  ): Awaitable<string> {
    const timeout = resolveFragmentTimeout(timeoutValue, template, line);
    const cache = this.cacheFor(alias, template, line);
    const key = this.madeKeysOf(cache).get(name, vary);
    const cached = cache.readEntry(key);
    if (!isPromiseLike(cached)) {
      if (typeof cached === 'string') return cached;
      return this.fill(cache, key, timeout, body, { template, line }, syncAdvice);
    }
    const place = { template, line };
    if (syncAdvice !== undefined) throw this.asyncInSyncRender(cache, cached, place, syncAdvice);
    return Promise.resolve(cached).then((hit) =>
      typeof hit === 'string' ? hit : this.fill(cache, key, timeout, body, place, undefined),
    );
  }

  /** A miss: render the body and store what it printed (an empty string is stored like any other). */
  private fill(
    cache: BaseCache,
    key: string,
    timeout: Timeout,
    body: RenderBody,
    place: TagPlace,
    syncAdvice: string | undefined,
  ): Awaitable<string> {
    const html = body();
    if (isPromiseLike(html)) return Promise.resolve(html).then((text) => this.store(cache, key, text, timeout, place, undefined));
    return this.store(cache, key, html, timeout, place, syncAdvice);
  }

  private store(
    cache: BaseCache,
    key: string,
    html: string,
    timeout: Timeout,
    place: TagPlace,
    syncAdvice: string | undefined,
  ): Awaitable<string> {
    const written = cache.writeEntry(key, html, timeout);
    if (!isPromiseLike(written)) return html;
    if (syncAdvice !== undefined) throw this.asyncInSyncRender(cache, written, place, syncAdvice);
    return Promise.resolve(written).then(() => html);
  }

  private asyncInSyncRender(cache: BaseCache, pending: PromiseLike<unknown>, place: TagPlace, advice: string): CacheTagError {
    // Nobody will wait for the operation already started; keep its failure from crashing the process.
    Promise.resolve(pending).catch(() => undefined);
    return new CacheTagError(
      `The cache tag's cache (${cache.constructor.name}) answers asynchronously and cannot be used in a synchronous render: ${advice}`,
      place,
    );
  }
}
