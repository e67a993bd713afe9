/**
 * The engine-neutral half of the `cache` tag: argument checks, timeout and cache resolution, the key,
 * and the one place where get → render → set happens. An engine's tag only parses its syntax, says
 * whether the render may wait, and calls `FragmentRuntime.render` (docs/custom-engines.md shows one).
 */
import { isPromiseLike, toInteger, type Awaitable, type BaseCache, type Timeout } from '../base.js';
import { CacheTagError, TemplateSyntaxError } from '../errors.js';
import { caches as processCaches, type CacheRegistry } from '../registry.js';
import { encodeVaryOn, fragmentKeyOfEncoded, makeTemplateFragmentKey } from './keys.js';

/** The alias that the cache tag prefers when it has no `using=`. */
export const TEMPLATE_FRAGMENTS_ALIAS = 'template_fragments';

/** The cache a `cache` tag without `using=` stores in: `template_fragments` if configured, else `default`. */
export function fragmentCache(registry: CacheRegistry): BaseCache {
  return registry.get(registry.has(TEMPLATE_FRAGMENTS_ALIAS) ? TEMPLATE_FRAGMENTS_ALIAS : 'default');
}

/**
 * Deletes a cached fragment from the cache the tag would use for it (`using`, else
 * `template_fragments`, else `default`); resolves to whether an entry was deleted.
 */
export async function invalidateFragment(
  fragmentName: string,
  varyOn?: readonly unknown[] | null,
  opts?: { using?: string; caches?: CacheRegistry },
): Promise<boolean> {
  const registry = opts?.caches ?? processCaches;
  const cache = opts?.using === undefined ? fragmentCache(registry) : registry.get(opts.using);
  return cache.delete(makeTemplateFragmentKey(fragmentName, varyOn));
}

/** Where a block's tag stands, for its errors. Nunjucks tells the template only once an error is thrown. */
export interface BlockPlace {
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

/** The message for a `cache` tag without its `endcache`. */
export function unclosedTag(line: number | undefined): string {
  return `Unclosed tag on line ${line ?? '?'}: 'cache'. Looking for one of: endcache.`;
}

/** A value as the error texts show it: strings in single quotes, `undefined`, numbers as written, else its JSON. */
export function displayValue(value: unknown): string {
  if (typeof value === 'string') return `'${value}'`;
  if (value === undefined || typeof value === 'number' || typeof value === 'bigint') return String(value);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/**
 * The tag's timeout in seconds: what Django's int() accepts (integers, integer-like strings, floats
 * truncated toward zero), and `null` for "forever". Checked on every render, hit or miss, so a bad
 * value never hides behind a hit. NaN and ±Infinity are not integers, as in Django.
 */
function resolveFragmentTimeout(value: unknown, template: string | undefined, line: number | undefined): Timeout {
  if (value === null) return null;
  const seconds = toInteger(value);
  if (seconds !== undefined) return seconds;
  throw new TemplateSyntaxError(`"cache" tag got a non-integer timeout value: ${displayValue(value)}`, { template, line });
}

/**
 * A render that cannot wait for an asynchronous cache, and why: the text completes "The cache tag's
 * cache (RedisCache) answers asynchronously, and …". Engines make one per reason, once.
 */
export class NoWaiting {
  constructor(readonly reason: string) {}
}

/** What an engine says a render's blocks did wrong, completing "… so their output would …". */
export interface WaitAdvice {
  /** Two blocks waited for their caches at once: their output would land out of order. */
  readonly overlapping: string;
  /** The render finished while a block was still waiting: its output would be lost. */
  readonly unfinished: string;
}

/**
 * The blocks of one render, for the checks no single block can make. A render that waits for each block
 * before it goes on never has two blocks waiting for their caches at once, and never finishes while a
 * block it started is unfinished. When either happens, the engine did not wait for a block (Nunjucks in
 * a `{% for %}` around an `{% include %}`) or a callback swallowed a block's error, and the render fails
 * instead of printing a page with missing or misplaced parts. From the first such sign the render is
 * broken: none of its blocks renders a body or stores anything any more, since a block left behind may
 * render with variables that have moved on, and would store another block's HTML under its key.
 *
 * The runtime reports cache waits and asks before it renders or stores; the engine reports the blocks it
 * starts, finishes and sees fail, and checks `open` and `failed` when the render ends.
 */
export class RenderWatch {
  private cacheWaits = 0;
  private started = 0;
  private finished = 0;
  private lastStartedLine: number | undefined;
  private failures = 0;
  private firstFailure: unknown;
  /** The error that broke the render, if one did. */
  private brokenBy: unknown;

  /** `template` is the template the render's errors name, when the engine knows it. */
  constructor(
    private readonly advice: WaitAdvice,
    private readonly template?: string,
  ) {}

  /** Marks the render broken by `error` (unless something broke it before); returns `error`. */
  protected breakWith(error: unknown): unknown {
    this.brokenBy ??= error;
    return error;
  }

  /** Called by the runtime when a block starts waiting for its cache; throws if another block already is. */
  startCacheWait(place: BlockPlace): void {
    if (this.cacheWaits > 0) {
      throw this.breakWith(
        new CacheTagError(`Another cache block of this render is waiting for its cache at the same time, so their output would land out of order: ${this.advice.overlapping}`, place),
      );
    }
    this.cacheWaits++;
  }

  /** Ends a cache wait that `startCacheWait` began, when `pending` settles either way. */
  endCacheWaitAfter<T>(pending: PromiseLike<T>): Promise<T> {
    return Promise.resolve(pending).finally(() => this.cacheWaits--);
  }

  /** Called by the engine when a block starts. */
  blockStarted(line: number | undefined): void {
    this.started++;
    this.lastStartedLine = line;
  }

  /** Called by the engine once a block's output is in the page. */
  blockFinished(): void {
    this.finished++;
  }

  /** Called by the engine with a block's error, before it throws or keeps it; returns it. */
  blockFailed(error: unknown): unknown {
    if (this.failures++ === 0) this.firstFailure = error;
    return this.breakWith(error);
  }

  /**
   * Called by the runtime before a block that waited for its cache renders its body: resolves when it
   * may, fails when the render is broken. By default at once.
   */
  beforeBody(): Awaitable<void> {
    this.refuseIfBroken();
  }

  /** Called by the runtime before a block renders or stores anything: a broken render does neither. */
  refuseIfBroken(): void {
    if (this.brokenBy !== undefined) throw this.brokenBy;
  }

  /**
   * Renders a block's body for the runtime, and hands back its HTML only if every block started while
   * it rendered has finished and none has failed: otherwise the block would store, and serve on every
   * later hit, a body with a missing part.
   */
  renderBody(body: RenderBody, place: BlockPlace): Awaitable<string> {
    const open = this.started - this.finished;
    const failures = this.failures;
    const checked = (html: string): string => {
      if (this.failures !== failures) throw this.firstFailure;
      if (this.started - this.finished !== open) {
        throw this.breakWith(
          new CacheTagError(
            `This cache block's body finished while a cache block started in it was still waiting, so what it would store lacks that block's output: ${this.advice.unfinished}`,
            place,
          ),
        );
      }
      return html;
    };
    const html = body();
    return isPromiseLike(html) ? Promise.resolve(html).then(checked) : checked(html);
  }

  /** Whether a block started and has not finished: it is still waiting, or its error was swallowed. */
  get open(): boolean {
    return this.started !== this.finished;
  }

  /** Whether a block's error was kept rather than thrown: the render must fail with it. */
  get failed(): boolean {
    return this.failures > 0;
  }

  /** The error a render fails with when it ends while `failed` or `open`; it breaks the render. */
  unfinished(line = this.lastStartedLine): unknown {
    if (this.failures > 0) return this.breakWith(this.firstFailure);
    return this.breakWith(
      new CacheTagError(`The render finished while this cache block was still waiting, so its output would be lost: ${this.advice.unfinished}`, {
        template: this.template,
        line,
      }),
    );
  }
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
    else keys.byEncoding.set(encoding, key);
    this.count++;
    return key;
  }
}

/** What every block passes to `FragmentRuntime.render`, before how it may wait. */
type BlockCall = [name: string, timeoutValue: unknown, alias: unknown, vary: readonly unknown[], body: RenderBody, template: string | undefined, line: number | undefined];

/** The get → render → set of every cache block, shared by the engines' tags. */
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

  /** The key of a block; a vary value or key the cache refuses becomes an error at the block's place. */
  private keyFor(cache: BaseCache, name: string, vary: readonly unknown[], template: string | undefined, line: number | undefined): string {
    try {
      return this.madeKeysOf(cache).get(name, vary);
    } catch (error) {
      throw new CacheTagError(error instanceof Error ? error.message : String(error), { template, line }, { cause: error });
    }
  }

  /**
   * One render of a cache block. The result is a string whenever the cache and the body answered
   * synchronously, which a hit on an in-memory cache always does; otherwise a Promise, which only a
   * block that can wait receives: one that cannot (`cannotWait` says why) gets a CacheTagError instead,
   * for its cache or its body, before anything is stored. `watch` is the render's, when it has one: a
   * block that may wait needs it, and with it a miss stores only a body whose inner blocks all finished.
   * A hit allocates nothing: the block's place is made only for a miss, a wait or an error.
   */
  render(...call: [...BlockCall, watch: RenderWatch | undefined, cannotWait: NoWaiting]): string;
  render(...call: [...BlockCall, watch: RenderWatch, cannotWait: undefined]): Awaitable<string>;
  render(...call: [...BlockCall, watch: RenderWatch | undefined, cannotWait: NoWaiting | undefined]): Awaitable<string>;
  render(
    name: string,
    timeoutValue: unknown,
    alias: unknown,
    vary: readonly unknown[],
    body: RenderBody,
    template: string | undefined,
    line: number | undefined,
    watch: RenderWatch | undefined,
    cannotWait: NoWaiting | undefined,
  ): Awaitable<string> {
    const timeout = resolveFragmentTimeout(timeoutValue, template, line);
    const cache = this.cacheFor(alias, template, line);
    const key = this.keyFor(cache, name, vary, template, line);
    const cached = cache.getByMadeKey(key);
    if (!isPromiseLike(cached)) {
      if (typeof cached === 'string') return cached;
      return this.fill(cache, key, cache.resolveTimeout(timeout), body, { template, line }, watch, cannotWait);
    }
    const place: BlockPlace = { template, line };
    const waiting = this.waitingWatch(cache, cached, place, watch, cannotWait);
    return waiting.endCacheWaitAfter(cached).then((hit) => {
      if (typeof hit === 'string') return hit;
      const ready = waiting.beforeBody();
      const fill = () => this.fill(cache, key, cache.resolveTimeout(timeout), body, place, waiting, undefined);
      return isPromiseLike(ready) ? ready.then(fill) : fill();
    });
  }

  /** A miss: render the body and store what it printed (an empty string is stored like any other). */
  private fill(cache: BaseCache, key: string, timeout: Timeout, body: RenderBody, place: BlockPlace, watch: RenderWatch | undefined, cannotWait: NoWaiting | undefined): Awaitable<string> {
    watch?.refuseIfBroken();
    const html = watch === undefined ? body() : watch.renderBody(body, place);
    if (!isPromiseLike(html)) return this.store(cache, key, html, timeout, place, watch, cannotWait);
    if (cannotWait !== undefined) {
      abandon(html);
      throw new CacheTagError(`The cache block's body waits for something asynchronous (a filter or tag inside it, or an await), and ${cannotWait.reason}`, place);
    }
    return Promise.resolve(html).then((text) => this.store(cache, key, text, timeout, place, watch, cannotWait));
  }

  private store(cache: BaseCache, key: string, html: string, timeout: Timeout, place: BlockPlace, watch: RenderWatch | undefined, cannotWait: NoWaiting | undefined): Awaitable<string> {
    watch?.refuseIfBroken();
    const written = cache.setByMadeKey(key, html, timeout);
    if (!isPromiseLike(written)) return html;
    return this.waitingWatch(cache, written, place, watch, cannotWait)
      .endCacheWaitAfter(written)
      .then(() => html);
  }

  /** The watch a cache operation that answered with a Promise waits under; a block that cannot wait fails. */
  private waitingWatch(cache: BaseCache, pending: PromiseLike<unknown>, place: BlockPlace, watch: RenderWatch | undefined, cannotWait: NoWaiting | undefined): RenderWatch {
    try {
      if (cannotWait !== undefined) {
        throw new CacheTagError(`The cache tag's cache (${cache.constructor.name}) answers asynchronously, and ${cannotWait.reason}`, place);
      }
      if (watch === undefined) throw new TypeError('fragcache: a block that may wait needs its render’s watch');
      watch.startCacheWait(place);
      return watch;
    } catch (error) {
      abandon(pending);
      throw error;
    }
  }
}

/** Nobody will wait for an operation already started; its failure must not crash the process. */
function abandon(pending: PromiseLike<unknown>): void {
  Promise.resolve(pending).catch(() => undefined);
}
