/**
 * The engine-neutral half of the `cache` tag: argument checks, timeout and cache resolution, the key,
 * and the one place where get → render → set happens. An engine's tag only parses its syntax, says
 * whether the render may wait, and calls `FragmentRuntime.render` (docs/custom-engines.md shows one).
 */
import { FILL_WITHOUT_LOCK, isPromiseLike, toInteger, type Awaitable, type BaseCache, type FillTurn, type LockSettings, type Timeout } from '../base.js';
import { CacheTagError, TemplateSyntaxError } from '../errors.js';
import { caches as processCaches, type CacheRegistry } from '../registry.js';
import { readOrMiss, writeOrSkip } from '../fail-open.js';
import { FlightsByCache } from '../flights.js';
import { isFresh, isStaleEnvelope, withGrace } from '../stale.js';
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

/**
 * A block's keyword arguments, as its tag wrote them: `using=` names its cache (without it, the tag
 * uses `template_fragments`, else `default`); `stale=` is how many seconds its HTML stays servable
 * after its timeout, while one render refreshes it. A key that is present counts, even if undefined.
 */
export interface BlockOptions {
  readonly using?: unknown;
  readonly stale?: unknown;
}

/** The options of a block without keyword arguments; passing this one spares a render an allocation. */
export const NO_OPTIONS: BlockOptions = Object.freeze({});

/** The keyword arguments a `cache` tag takes, after its vary values. */
export const KEYWORDS: readonly string[] = ['using', 'stale'];

/** The messages for argument counts, shared by the engines' parsers. */
export const TOO_FEW_ARGUMENTS = "'cache' tag requires at least 2 arguments.";
export const KEYWORDS_NOT_LAST = "'cache' tag accepts using= and stale= only after its other arguments.";

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

/** A `stale=` value: whole seconds, 0 or more, as for the timeout (Django's int()). */
function resolveStale(value: unknown, template: string | undefined, line: number | undefined): number {
  const seconds = toInteger(value);
  if (seconds !== undefined && seconds >= 0) return seconds;
  throw new TemplateSyntaxError(`"cache" tag got an invalid stale value: ${displayValue(value)} (expected whole seconds, 0 or more)`, { template, line });
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
/**
 * How many characters (keys, and the vary strings it looks them up by) one cache's memo holds before it
 * starts again: about 2 MB, however long the vary values are.
 */
const MADE_KEYS_CHARACTER_LIMIT = 1_000_000;

function isPrimitive(value: unknown): boolean {
  return value === null || (typeof value !== 'object' && typeof value !== 'function' && typeof value !== 'symbol');
}

/**
 * The made and validated keys of the fragments one cache served recently. A hit looks its key up by
 * the fragment's name and its vary value as they are: with no vary value or one primitive, it builds,
 * hashes and validates nothing, and hands the backend the same string (its hash already computed)
 * every time; otherwise it builds only the encoding. Bounded in count and in size: emptied whenever
 * it holds `MADE_KEYS_LIMIT` keys or `MADE_KEYS_CHARACTER_LIMIT` characters. A key that fails validation is not remembered, so it fails on every render;
 * one that only warns, warns when it is first made.
 */
class MadeFragmentKeys {
  private readonly names = new Map<string, KeysOfName>();
  private count = 0;
  private characters = 0;

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
    const characters = name.length + key.length + (typeof lookup === 'string' ? lookup.length : 0);
    if (this.count >= MADE_KEYS_LIMIT || this.characters + characters > MADE_KEYS_CHARACTER_LIMIT) {
      this.names.clear();
      this.count = 0;
      this.characters = 0;
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
    this.characters += characters;
    return key;
  }
}

/** What every block passes to `FragmentRuntime.render`, before how it may wait. */
type BlockCall = [name: string, timeoutValue: unknown, options: BlockOptions, vary: readonly unknown[], body: RenderBody, template: string | undefined, line: number | undefined];

/** A block whose cache had no fresh HTML for it: what filling it takes. */
interface Miss {
  readonly cache: BaseCache;
  readonly key: string;
  /** The block's timeout, resolved by its cache. */
  readonly timeout: Timeout;
  /** Its grace period in seconds (0: none). */
  readonly stale: number;
  readonly body: RenderBody;
  readonly place: BlockPlace;
  readonly watch: RenderWatch | undefined;
  readonly cannotWait: NoWaiting | undefined;
  /** The expired HTML its cache still holds, within its grace period. */
  readonly staleHtml: string | undefined;
  /**
   * Its cache breaker's failure count before the block's read. If it has changed, something failed
   * meanwhile (most likely this read): the block renders without trying the lock or the write, each of
   * which would cost the page another timeout.
   */
  readonly failuresBefore: number;
}

/** A render of a block's body under way in this process, which other renders of its key share. */
interface Flight {
  /** The render rendering it. */
  readonly leader: RenderWatch;
  /** Its HTML, once rendered and stored. */
  readonly result: Promise<string>;
  /** The stale copy the others are served meanwhile, if there is one. */
  readonly stale: string | undefined;
}

/** A miss that answers later: what a skipped read of a cache that answers asynchronously gives. */
const LATER_MISS: Promise<undefined> = Promise.resolve(undefined);

/** The fresh HTML in what a key holds: a string, or a string stored with a grace period and still fresh. */
function freshHtml(stored: unknown): string | undefined {
  if (typeof stored === 'string') return stored;
  return isStaleEnvelope(stored) && typeof stored.value === 'string' && isFresh(stored) ? stored.value : undefined;
}

/**
 * The get → render → set of every cache block, shared by the engines' tags, and what keeps it safe: a
 * backend that fails or is skipped by its breaker is a miss and an unstored fill, never a failed page;
 * concurrent renders of one key in this process render its body once (the others are served its HTML,
 * or a stale copy meanwhile); with the cache's `lock`, so do processes.
 */
export class FragmentRuntime {
  /** Weakly held: a cache replaced by `CacheRegistry.configure` takes its keys with it. */
  private readonly madeKeys = new WeakMap<BaseCache, MadeFragmentKeys>();
  private readonly flights = new FlightsByCache<Flight>();
  /** The caches that have answered a read with a Promise. */
  private readonly answersLater = new WeakSet<BaseCache>();
  /** A read its cache's breaker skipped answers as the cache does: later, if the cache ever has. */
  private readonly skippedRead = (cache: BaseCache): Awaitable<undefined> => (this.answersLater.has(cache) ? LATER_MISS : undefined);
  /** The flight each render is waiting for, which tells a wait that would never end. */
  private readonly following = new WeakMap<RenderWatch, Flight>();

  constructor(readonly caches: CacheRegistry = processCaches) {}

  private madeKeysOf(cache: BaseCache): MadeFragmentKeys {
    let keys = this.madeKeys.get(cache);
    if (keys === undefined) {
      keys = new MadeFragmentKeys(cache);
      this.madeKeys.set(cache, keys);
    }
    return keys;
  }

  /**
   * Reads a key for a block, never failing: an error or a timeout is a miss that the cache's breaker
   * hears of, and a cache whose breaker is open is not asked at all. Synchronous where the cache is; a
   * skipped read of a cache that answers asynchronously answers asynchronously too, so that a render
   * that cannot wait fails the same way during an outage as outside one.
   */
  private read(cache: BaseCache, key: string): Awaitable<unknown> {
    const answer = readOrMiss(cache, key, this.skippedRead);
    if (isPromiseLike(answer)) this.answersLater.add(cache);
    return answer;
  }

  private cacheFor(options: BlockOptions, template: string | undefined, line: number | undefined): BaseCache {
    if (!('using' in options)) return fragmentCache(this.caches);
    const alias = options.using;
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
    options: BlockOptions,
    vary: readonly unknown[],
    body: RenderBody,
    template: string | undefined,
    line: number | undefined,
    watch: RenderWatch | undefined,
    cannotWait: NoWaiting | undefined,
  ): Awaitable<string> {
    const timeout = resolveFragmentTimeout(timeoutValue, template, line);
    const cache = this.cacheFor(options, template, line);
    const stale = options === NO_OPTIONS || !('stale' in options) ? 0 : resolveStale(options.stale, template, line);
    const key = this.keyFor(cache, name, vary, template, line);
    // A near cache answers its hits at once but its misses later: a render that cannot wait fails on
    // every render, not only on the misses.
    if (cannotWait !== undefined && cache.hasNearCache) throw answersLater(cache, cannotWait, { template, line });
    const failuresBefore = cache.breaker.failureCount;
    const cached = this.read(cache, key);
    if (!isPromiseLike(cached)) {
      if (typeof cached === 'string') return cached;
      return this.missed(cached, false, failuresBefore, cache, key, timeout, stale, body, { template, line }, watch, cannotWait);
    }
    const place: BlockPlace = { template, line };
    const waiting = this.waitingWatch(cache, cached, place, watch, cannotWait);
    return waiting.endCacheWaitAfter(cached).then((found) => {
      if (typeof found === 'string') return found;
      return this.missed(found, true, failuresBefore, cache, key, timeout, stale, body, place, waiting, undefined);
    });
  }

  /**
   * What a block does without a plain hit: serve HTML stored with a grace period while it is fresh;
   * otherwise share a render of its key under way here (served the stale copy meanwhile, if there is
   * one), or render it. Only a block that waited for its cache takes the lock: a cache that answers
   * synchronously lives in this process, where the flights already keep to one render.
   */
  private missed(
    found: unknown,
    waited: boolean,
    failuresBefore: number,
    cache: BaseCache,
    key: string,
    timeout: Timeout,
    stale: number,
    body: RenderBody,
    place: BlockPlace,
    watch: RenderWatch | undefined,
    cannotWait: NoWaiting | undefined,
  ): Awaitable<string> {
    let staleHtml: string | undefined;
    if (isStaleEnvelope(found) && typeof found.value === 'string') {
      if (isFresh(found)) return found.value;
      staleHtml = found.value;
      // During an outage (an outage copy, or a read that failed) a refresh could not be stored, and each
      // render would render the body again: the copy is served, as its block's stale= allows.
      if (cache.breaker.isOpen || cache.breaker.failureCount !== failuresBefore) return staleHtml;
    }
    const miss: Miss = { cache, key, timeout: cache.resolveTimeout(timeout), stale, body, place, watch, cannotWait, staleHtml, failuresBefore };
    // A render that cannot wait renders synchronously, so nothing can share its render or be shared.
    if (watch === undefined || cannotWait !== undefined) return this.fill(miss);
    const flight = this.flights.of(cache).get(key);
    if (flight !== undefined && !this.wouldWaitForItself(flight, watch)) return staleHtml ?? flight.stale ?? this.follow(flight, miss, watch);
    const html = waited ? this.lead(miss, watch) : this.fill(miss);
    if (isPromiseLike(html) && flight === undefined) this.fly(miss, watch, html);
    return html;
  }

  /**
   * Whether `render` waiting for `flight` would wait for itself: the flight's render is `render`, or waits
   * for a flight whose render is, and so on. A block nested in a block of the same key, or two pages
   * nesting two blocks in opposite orders, would otherwise wait forever; such a block renders its body.
   */
  private wouldWaitForItself(flight: Flight, render: RenderWatch): boolean {
    for (let current: Flight | undefined = flight; current !== undefined; current = this.following.get(current.leader)) {
      if (current.leader === render) return true;
    }
    return false;
  }

  /** Shares the render of a block's key under way in this process. */
  private follow(flight: Flight, miss: Miss, watch: RenderWatch): Promise<string> {
    const waiting = this.waitingWatch(miss.cache, flight.result, miss.place, watch, undefined);
    this.following.set(watch, flight);
    return waiting.endCacheWaitAfter(flight.result).finally(() => this.following.delete(watch));
  }

  /** Registers the render under way for a key, until it is stored. */
  private fly(miss: Miss, leader: RenderWatch, html: PromiseLike<string>): void {
    this.flights.of(miss.cache).start(miss.key, { leader, result: Promise.resolve(html), stale: miss.staleHtml });
  }

  /** A miss after a wait for the cache: the lock's turn (if the cache has a lock), then the render. */
  private async lead(miss: Miss, watch: RenderWatch): Promise<string> {
    const lock = miss.cache.lock;
    const turn = lock === undefined ? FILL_WITHOUT_LOCK : await this.turnOf(miss, watch, lock);
    if ('found' in turn) return turn.found;
    try {
      const ready = watch.beforeBody();
      if (isPromiseLike(ready)) await ready;
      return await this.fill(miss);
    } finally {
      // The page does not wait for the lock to be given back.
      if (turn !== FILL_WITHOUT_LOCK) miss.cache.giveBackLater(turn.release);
    }
  }

  /**
   * Waits for this process's turn to render a block on a cache with a lock, as a wait for its cache:
   * another process may render it meanwhile, or a stale copy may be served. A failing lock is no lock,
   * and none is tried once the cache failed since the block's read.
   */
  private turnOf(miss: Miss, watch: RenderWatch, lock: LockSettings): Promise<FillTurn<string>> {
    const { cache, key } = miss;
    const breaker = cache.breaker;
    if (breaker.failureCount !== miss.failuresBefore || !breaker.allows()) return Promise.resolve(FILL_WITHOUT_LOCK);
    const look = async () => freshHtml(await this.read(cache, key));
    // Bounded by the lock's wait plus its last round (a poll, a look and a try for the lock) past the
    // deadline: each look is bounded by itself, and a healthy wait must never count as a timeout.
    const limit = lock.wait + lock.pollInterval + 2 * breaker.timeout;
    const turn = breaker.guard(cache.fillTurn(key, look, miss.staleHtml), 'lock', FILL_WITHOUT_LOCK, limit);
    watch.startCacheWait(miss.place);
    return watch.endCacheWaitAfter(turn);
  }

  /** Renders the body and stores what it printed (an empty string is stored like any other). */
  private fill(miss: Miss): Awaitable<string> {
    const { watch, body, place, cannotWait } = miss;
    watch?.refuseIfBroken();
    const html = watch === undefined ? body() : watch.renderBody(body, place);
    if (!isPromiseLike(html)) return this.store(miss, html);
    if (cannotWait !== undefined) {
      abandon(html);
      throw new CacheTagError(`The cache block's body waits for something asynchronous (a filter or tag inside it, or an await), and ${cannotWait.reason}`, place);
    }
    return Promise.resolve(html).then((text) => this.store(miss, text));
  }

  /**
   * Stores a block's HTML; a write that fails, or that the breaker skips, leaves the page as it is. None
   * is tried once the cache failed since the block's read.
   */
  private store(miss: Miss, html: string): Awaitable<string> {
    const { cache, watch } = miss;
    watch?.refuseIfBroken();
    if (cache.breaker.failureCount !== miss.failuresBefore) return html;
    const { stored, timeout } = withGrace(html, miss.timeout, miss.stale);
    // The grace period may take the timeout past the longest one stored as such.
    const written = writeOrSkip(cache, miss.key, stored, cache.resolveTimeout(timeout));
    if (!isPromiseLike(written)) return html;
    return this.waitingWatch(cache, written, miss.place, watch, miss.cannotWait)
      .endCacheWaitAfter(written)
      .then(() => html);
  }

  /** The watch a cache operation that answered with a Promise waits under; a block that cannot wait fails. */
  private waitingWatch(cache: BaseCache, pending: PromiseLike<unknown>, place: BlockPlace, watch: RenderWatch | undefined, cannotWait: NoWaiting | undefined): RenderWatch {
    try {
      if (cannotWait !== undefined) throw answersLater(cache, cannotWait, place);
      if (watch === undefined) throw new TypeError('fragcache: a block that may wait needs its render’s watch');
      watch.startCacheWait(place);
      return watch;
    } catch (error) {
      abandon(pending);
      throw error;
    }
  }
}

function answersLater(cache: BaseCache, cannotWait: NoWaiting, place: BlockPlace): CacheTagError {
  return new CacheTagError(`The cache tag's cache (${cache.constructor.name}) answers asynchronously, and ${cannotWait.reason}`, place);
}

/** Nobody will wait for an operation already started; its failure must not crash the process. */
function abandon(pending: PromiseLike<unknown>): void {
  Promise.resolve(pending).catch(() => undefined);
}
