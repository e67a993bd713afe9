import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { CircuitBreaker } from './breaker.js';
import type { CacheParams, CullingOptions, LockOptions } from './config.js';
import { CacheKeyWarning, KeyNotFoundError } from './errors.js';
import { Flights } from './flights.js';
import type { NearCache, TimedValue } from './near-cache.js';
import { defaultKeyFunction, memcachedKeyProblems, type KeyFunction } from './keys.js';
import { jsonSerializer, type Serializer } from './serializers.js';
import { settingsOf } from './settings.js';
import { isFresh, isStaleEnvelope, withGrace } from './stale.js';

/** A value, or a Promise of it: backends that can answer synchronously do, so a hit awaits nothing. */
export type Awaitable<T> = T | Promise<T>;

export function isPromiseLike<T>(value: unknown): value is PromiseLike<T> {
  return typeof value === 'object' && value !== null && typeof (value as PromiseLike<T>).then === 'function';
}

/** Seconds until expiry; `null` never expires; zero or negative expires at once. */
export type Timeout = number | null;

/**
 * How long an entry lives, as the storage hooks receive it: whole milliseconds, at least 1, or `null`
 * for never. BaseCache converts every timeout to this once, so no backend converts seconds itself.
 */
export type TimeToLive = number | null;

export interface VersionOption {
  version?: number;
}
export interface TimeoutOptions extends VersionOption {
  timeout?: Timeout;
}
export interface GetOrSetOptions extends TimeoutOptions {
  /**
   * Seconds a value stays servable after its timeout: the first caller after the timeout computes it
   * again while every other caller is served the stale copy. Default 0 (none).
   */
  stale?: number;
}

/** A lock's settings with their defaults filled in. */
export interface LockSettings {
  readonly lease: number;
  readonly wait: number;
  readonly pollInterval: number;
}

/**
 * Whose turn it is to fill a missing key: this process's (`release` gives the lock back, if it took
 * one), or nobody's, because another process filled it (`found`) or a stale copy may be served.
 */
export type FillTurn<T> = { readonly found: T } | { readonly release: () => Awaitable<void> };

/** The turn of a caller that fills without a lock: there is none, or waiting for it took too long. */
export const FILL_WITHOUT_LOCK: FillTurn<never> = { release: () => undefined };

const DEFAULT_TIMEOUT = 300;
const DEFAULT_MAX_ENTRIES = 300;
const DEFAULT_CULL_FREQUENCY = 3;

/** Django's int(): integers and integer-like strings; floats truncated; anything else is undefined. */
export function toInteger(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? Math.trunc(value) : undefined;
  if (typeof value === 'string' && /^\s*[+-]?\d+\s*$/.test(value)) return Number.parseInt(value, 10);
  return undefined;
}

/**
 * The longest timeout stored as such, in seconds: 2³¹ − 1, about 68 years. Every backend can store it
 * (memcached's expiry field is a 32-bit Unix time; Redis, PostgreSQL and lru-cache take far more), so a
 * longer timeout, `Infinity` included, is stored as never expiring instead of failing in one backend.
 */
export const MAX_TIMEOUT = 2 ** 31 - 1;

/** A number of seconds as caches store it: longer than MAX_TIMEOUT means never. */
function storable(seconds: number): Timeout {
  return seconds > MAX_TIMEOUT ? null : seconds;
}

/** Like Django, but a number is taken as it is: fractions of a second are useful and harmless. */
function configuredTimeout(value: unknown): Timeout {
  if (value === null) return null;
  if (typeof value === 'number' && !Number.isNaN(value)) return storable(value);
  return storable(toInteger(value) ?? DEFAULT_TIMEOUT);
}

function lockSettings(lock: LockOptions | boolean | undefined): LockSettings | undefined {
  if (lock === undefined || lock === false) return undefined;
  const setting = settingsOf('lock', lock === true ? undefined : lock, ['lease', 'wait', 'pollInterval'], 'true, false or ');
  return {
    lease: Math.ceil(setting('lease', 'milliseconds', 5000)),
    wait: setting('wait', 'milliseconds', 3000),
    pollInterval: setting('pollInterval', 'milliseconds', 25),
  };
}

function configuredCount(value: unknown, fallback: number): number {
  const count = toInteger(value);
  return count === undefined || count < 0 ? fallback : count;
}

/** Django's cull, for the backends that cull themselves (locmem, file, database): one rule, three stores. */
export class Culling {
  /** The options it reads, which those backends take. */
  static readonly optionNames = ['maxEntries', 'cullFrequency'];
  readonly maxEntries: number;
  readonly cullFrequency: number;

  constructor(options: CullingOptions | undefined) {
    this.maxEntries = configuredCount(options?.maxEntries, DEFAULT_MAX_ENTRIES);
    this.cullFrequency = configuredCount(options?.cullFrequency, DEFAULT_CULL_FREQUENCY);
  }

  /**
   * How many of `count` entries a write removes before it stores: none below `maxEntries`, then
   * `floor(count / cullFrequency)`, or all of them when `cullFrequency` is 0.
   */
  toRemove(count: number): number {
    if (count < this.maxEntries) return 0;
    return this.cullFrequency === 0 ? count : Math.floor(count / this.cullFrequency);
  }
}

/** A key-level timeout option: `undefined` is the cache's default, otherwise seconds or `null`. */
function checkedTimeout(timeout: unknown, fallback: Timeout): Timeout {
  if (timeout === undefined) return fallback;
  if (timeout === null) return null;
  if (typeof timeout === 'number' && !Number.isNaN(timeout)) return storable(timeout);
  throw new TypeError(`Invalid cache timeout: ${String(timeout)} (expected seconds as a number, or null)`);
}

/** Stands for "nothing stored" where a stored null must stay distinguishable from a miss. */
const MISSING: unique symbol = Symbol('missing');

function isExpired(timeout: Timeout): boolean {
  return timeout !== null && timeout <= 0;
}

/**
 * A timeout that has not passed (seconds > 0, or null) as the hooks receive it: whole milliseconds,
 * rounded up so that a short timeout never becomes 0, which lru-cache reads as "never" and Redis refuses.
 */
function timeToLive(timeout: Timeout): TimeToLive {
  return timeout === null ? null : Math.ceil(timeout * 1000);
}

/** Django's incr takes whole deltas; every backend keeps to that, so none can round differently. */
function checkedDelta(delta: unknown): number {
  if (typeof delta === 'number' && Number.isSafeInteger(delta)) return delta;
  throw new TypeError(`The delta of incr and decr must be an integer, not ${String(delta)}`);
}

/** What `incrEntry` answers for a stored value it cannot add to. */
export const NOT_A_NUMBER: unique symbol = Symbol('not a number');

/**
 * Options are an object. Django takes a timeout, a default or a version positionally (`set(key, value,
 * 60)`); written that way here, they would be silently ignored, so anything but an object is refused.
 */
function refusePositionalOptions(opts: unknown, method: string): void {
  if (opts === undefined || (typeof opts === 'object' && opts !== null)) return;
  throw new TypeError(`${method}() takes its options as an object, not ${String(opts)}: Django's positional timeout, default and version are named here ({ timeout: 60 })`);
}

/** A stored value as callers see it: a value stored with a grace period is the value. */
function unwrapped(stored: unknown): unknown {
  return isStaleEnvelope(stored) ? stored.value : stored;
}

function checkedValue(value: unknown): void {
  if (value === undefined) throw new TypeError('Cannot cache undefined: store null to remember "nothing"');
}

/**
 * The cache API every backend shares. It owns the semantics (keys, versions, timeouts, defaults,
 * errors); a backend implements only the storage hooks below, on keys that are already made and
 * validated, with each timeout already converted to a time to live (whole milliseconds, or `null`).
 *
 * Hooks may answer synchronously: the in-memory backends do, which lets the template tags render a
 * hit without a single await. Every public key-level method returns a Promise regardless.
 */
export abstract class BaseCache {
  readonly defaultTimeout: Timeout;
  readonly keyPrefix: string;
  readonly version: number;
  protected readonly serializer: Serializer;
  private readonly keyFunction: KeyFunction;
  /** Skips this cache while it fails, for the callers that must not fail with it (the template tags). */
  readonly breaker: CircuitBreaker;
  /** The render lock's settings (`lock` in the config), or undefined when it is off. */
  readonly lock: LockSettings | undefined;
  /** The `getOrSet` calls under way, by made key, with the stale copy their callers may be served. */
  private readonly fills = new Flights<{ readonly result: Promise<unknown>; readonly stale: unknown }>();
  /**
   * The near cache in front of this backend, when its config asks for one: a shared backend that
   * supports one sets it in its constructor, with the coherence it can give (src/near-cache.ts).
   */
  protected near: NearCache | undefined = undefined;

  /** Work started for callers that do not wait for it, each settling quietly; close() waits for it. */
  private readonly unawaited = new Set<Promise<void>>();
  /** The release of each render lock this process holds; close() gives back those still held. */
  private readonly locksHeld = new Set<() => Awaitable<void>>();

  constructor(_location: string | string[] | undefined, params: CacheParams) {
    this.defaultTimeout = configuredTimeout(params.timeout === undefined ? DEFAULT_TIMEOUT : params.timeout);
    this.keyPrefix = params.keyPrefix ?? '';
    this.version = toInteger(params.version) ?? 1;
    if (typeof params.keyFunction === 'string' || typeof params.serializer === 'string') {
      throw new TypeError('A backend takes a key function and a serializer, not module specifiers: create caches through a CacheRegistry');
    }
    this.serializer = params.serializer ?? jsonSerializer;
    this.keyFunction = params.keyFunction ?? defaultKeyFunction;
    this.breaker = new CircuitBreaker(params.breaker);
    this.lock = lockSettings(params.lock);
  }

  // ---- storage hooks: made keys, times to live --------------------------------------------------------

  /** The stored value, or `undefined` for a miss (nothing stored ever reads back as undefined). */
  protected abstract getEntry(key: string): Awaitable<unknown>;
  protected abstract setEntry(key: string, value: unknown, ttl: TimeToLive): Awaitable<void>;
  /** Stores only when the key is absent or expired; says whether it stored. */
  protected abstract addEntry(key: string, value: unknown, ttl: TimeToLive): Awaitable<boolean>;
  protected abstract deleteEntry(key: string): Awaitable<boolean>;
  protected abstract hasEntry(key: string): Awaitable<boolean>;
  protected abstract touchEntry(key: string, ttl: TimeToLive): Awaitable<boolean>;
  /**
   * Adds a whole `delta` and keeps the expiry. Answers the new value, `undefined` when the key is
   * missing, or NOT_A_NUMBER when the stored value is not a number the backend can add to.
   */
  protected abstract incrEntry(key: string, delta: number): Awaitable<number | undefined | typeof NOT_A_NUMBER>;
  /** Removes every entry of this cache (and only of this cache, where the store is shared). */
  protected abstract clearEntries(): Awaitable<void>;

  /**
   * Hits only. Starts every read at once (a synchronous backend simply answers each); backends with a
   * bulk command override this.
   */
  protected async getEntries(keys: readonly string[]): Promise<Map<string, unknown>> {
    const entries = keys.map((key) => this.getEntry(key));
    const values = entries.some(isPromiseLike) ? await Promise.all(entries) : entries;
    const found = new Map<string, unknown>();
    values.forEach((value, i) => {
      if (value !== undefined) found.set(keys[i]!, value);
    });
    return found;
  }

  /** Starts every write at once; returns the keys that could not be stored. */
  protected async setEntries(entries: ReadonlyMap<string, unknown>, ttl: TimeToLive): Promise<string[]> {
    const writes = [...entries].map(([key, value]) => this.setEntry(key, value, ttl));
    if (writes.some(isPromiseLike)) await Promise.all(writes);
    return [];
  }

  protected async deleteEntries(keys: readonly string[]): Promise<void> {
    const deletions = keys.map((key) => this.deleteEntry(key));
    if (deletions.some(isPromiseLike)) await Promise.all(deletions);
  }

  /**
   * What `getEntry` finds, with how many more milliseconds it lives when the backend says: what a near
   * cache keeps, and for how long. A backend with a near cache overrides this when it can tell the time
   * to live, or must read through a connection of its own.
   */
  protected async getTimedEntry(key: string): Promise<TimedValue | undefined> {
    const value = await this.getEntry(key);
    return value === undefined ? undefined : { value, ttl: undefined };
  }

  /**
   * Takes the lock `key` for `lease` ms, holding `token`, unless another holder has it. By default an
   * `add`, which every built-in shared backend makes atomic (Redis SET NX, memcached add, an insert on
   * conflict); a backend whose add is not atomic overrides this.
   */
  protected acquireLockEntry(key: string, token: string, lease: number): Awaitable<boolean> {
    return this.addEntry(key, token, lease);
  }

  /** Gives the lock `key` back if `token` still holds it (its lease may have passed to another). */
  protected async releaseLockEntry(key: string, token: string): Promise<void> {
    if ((await this.getEntry(key)) === token) await this.deleteEntry(key);
  }

  // ---- the near cache ------------------------------------------------------------------------------

  /** A read of one made key: from the near cache when it holds the key, else from the backend (filling it). */
  private lookUp(key: string): Awaitable<unknown> {
    const near = this.near;
    if (near === undefined) return this.getEntry(key);
    const held = near.get(key);
    if (held !== undefined) return held;
    return near.isTrusted ? near.readThrough(key, () => this.getTimedEntry(key)) : this.getEntry(key);
  }

  /** Runs a write of `key`, which the near cache forgets before and after it, so this process reads its own writes. */
  private written<T>(key: string, write: () => Awaitable<T>): Awaitable<T> {
    return this.writtenAll([key], write);
  }

  private writtenAll<T>(keys: readonly string[], write: () => Awaitable<T>): Awaitable<T> {
    const near = this.near;
    if (near === undefined) return write();
    const forget = () => {
      for (const key of keys) near.forget(key);
    };
    forget();
    const done = write();
    if (!isPromiseLike(done)) {
      forget();
      return done;
    }
    return Promise.resolve(done).finally(forget);
  }

  /** Whether a near cache stands in front of this backend (`options.nearCache`). */
  get hasNearCache(): boolean {
    return this.near !== undefined;
  }

  /**
   * What the near cache holds for a made key, synchronously, while it can be trusted; `undefined` when
   * it holds nothing (or there is none). A backend being skipped by its breaker does not change it: the
   * near cache is told of changes, or bounds its staleness, whatever the breaker thinks.
   */
  nearHit(madeKey: string): unknown {
    return this.near?.get(madeKey);
  }

  /**
   * The copy of a made key the near cache kept when its backend went away, if that copy was stored with
   * a grace period: what the template tags serve during an outage, for blocks with `stale=`.
   */
  outageCopy(madeKey: string): unknown {
    return this.near?.outageCopy(madeKey);
  }

  // ---- made-key access for integrations (the template tags) ---------------------------------------

  /**
   * Reads a key that is already made (and validated): synchronously where the backend can (or its near
   * cache holds the key), which is what lets a template tag render a hit without an await.
   */
  getByMadeKey(madeKey: string): Awaitable<unknown> {
    return this.lookUp(madeKey);
  }

  /** Writes a key that is already made, with a resolved timeout; one that has already passed removes the entry. */
  setByMadeKey(madeKey: string, value: unknown, timeout: Timeout): Awaitable<unknown> {
    return this.written(madeKey, () => (isExpired(timeout) ? this.deleteEntry(madeKey) : this.setEntry(madeKey, value, timeToLive(timeout))));
  }

  /**
   * Decides who fills a missing `madeKey`. Without a lock configured, the caller does. With one, the
   * caller does once it holds the lock; until then it is served `staleCopy` if it has one, or waits,
   * calling `look` every `pollInterval` ms for the value another process stores, and after `wait` ms
   * fills it anyway. A holder that crashed is replaced when its lease ends. Backend errors reject.
   */
  async fillTurn<T>(madeKey: string, look: () => Promise<T | undefined>, staleCopy: T | undefined): Promise<FillTurn<T>> {
    const lock = this.lock;
    if (lock === undefined) return FILL_WITHOUT_LOCK;
    const lockKey = `${madeKey}:lock`;
    const token = randomUUID();
    // Once only: close() may give the lock back before its holder does.
    const release = () => (this.locksHeld.delete(release) ? this.releaseLockEntry(lockKey, token) : undefined);
    const held = () => {
      this.locksHeld.add(release);
      return { release };
    };
    if (await this.acquireLockEntry(lockKey, token, lock.lease)) return held();
    if (staleCopy !== undefined) return { found: staleCopy };
    const deadline = Date.now() + lock.wait;
    while (Date.now() < deadline) {
      await sleep(lock.pollInterval);
      const found = await look();
      if (found !== undefined) return { found };
      if (await this.acquireLockEntry(lockKey, token, lock.lease)) return held();
    }
    return FILL_WITHOUT_LOCK;
  }

  // ---- keys and timeouts ---------------------------------------------------------------------------

  makeKey(key: string, version?: number): string {
    return this.keyFunction(key, this.keyPrefix, version ?? this.version);
  }

  /** Warns (CacheKeyWarning) about keys that memcached would refuse, once for each problem. */
  validateKey(key: string): void {
    for (const problem of memcachedKeyProblems(key)) process.emitWarning(new CacheKeyWarning(problem));
  }

  /** `makeKey`, then `validateKey` on the result: what every key-level operation stores under. */
  makeAndValidateKey(key: string, version?: number): string {
    const madeKey = this.makeKey(key, version);
    this.validateKey(madeKey);
    return madeKey;
  }

  /**
   * The timeout a call means, as the storage hooks receive it: its own, else the cache's default; longer
   * than MAX_TIMEOUT (or `Infinity`) means never. A timeout that is not a number or null is a TypeError.
   */
  resolveTimeout(timeout?: Timeout): Timeout {
    return checkedTimeout(timeout, this.defaultTimeout);
  }

  // ---- the key-level API ---------------------------------------------------------------------------

  async get<T = unknown>(key: string, opts?: { default?: T } & VersionOption): Promise<T | undefined> {
    refusePositionalOptions(opts, 'get');
    const entry = this.lookUp(this.makeAndValidateKey(key, opts?.version));
    // Awaiting only a real Promise spares a synchronous backend's caller a turn of the microtask queue.
    const value = unwrapped(isPromiseLike(entry) ? await entry : entry);
    return value === undefined ? opts?.default : (value as T);
  }

  async set(key: string, value: unknown, opts?: TimeoutOptions): Promise<void> {
    refusePositionalOptions(opts, 'set');
    checkedValue(value);
    const written = this.setByMadeKey(this.makeAndValidateKey(key, opts?.version), value, this.resolveTimeout(opts?.timeout));
    if (isPromiseLike(written)) await written;
  }

  async add(key: string, value: unknown, opts?: TimeoutOptions): Promise<boolean> {
    refusePositionalOptions(opts, 'add');
    checkedValue(value);
    const madeKey = this.makeAndValidateKey(key, opts?.version);
    const timeout = this.resolveTimeout(opts?.timeout);
    // Stored and expired at once: nothing remains, but the add succeeded if nothing was there.
    if (isExpired(timeout)) return !(await this.hasEntry(madeKey));
    return this.written(madeKey, () => this.addEntry(madeKey, value, timeToLive(timeout)));
  }

  /**
   * The value under `key`; on a miss, `value` (called, and awaited, if it is a function) is added and
   * what the cache then holds is returned, so concurrent callers agree on one value. Concurrent calls
   * for one key in this process call the function once and share its result (or its error); with a
   * `lock` configured, so do processes. With `stale`, an expired value is served to every caller but the
   * one that computes it again.
   */
  async getOrSet<T>(key: string, value: T | (() => T | Promise<T>), opts?: GetOrSetOptions): Promise<T> {
    refusePositionalOptions(opts, 'getOrSet');
    const madeKey = this.makeAndValidateKey(key, opts?.version);
    // The flights of one made key all come from calls for the same T.
    const underway = this.fills.get(madeKey);
    if (underway !== undefined) return (underway.stale ?? underway.result) as T | Promise<T>;
    const stored = await this.lookUp(madeKey);
    const envelope = isStaleEnvelope(stored) ? stored : undefined;
    if (stored !== undefined && (envelope === undefined || isFresh(envelope))) return unwrapped(stored) as T;
    const staleCopy = envelope?.value as T | undefined;
    const started = this.fills.get(madeKey);
    if (started !== undefined) return (staleCopy ?? started.stale ?? started.result) as T | Promise<T>;
    const filling = this.fill(madeKey, value, opts, staleCopy);
    this.fills.start(madeKey, { result: filling, stale: staleCopy });
    return filling;
  }

  /** `getOrSet`'s miss: its turn, the value, and the write (a set over a stale copy, else an add). */
  private async fill<T>(madeKey: string, value: T | (() => T | Promise<T>), opts: GetOrSetOptions | undefined, staleCopy: T | undefined): Promise<T> {
    const look = async () => {
      const stored = await this.lookUp(madeKey);
      return isStaleEnvelope(stored) && !isFresh(stored) ? undefined : (unwrapped(stored) as T | undefined);
    };
    const turn = await this.fillTurn(madeKey, look, staleCopy);
    if ('found' in turn) return turn.found;
    try {
      const fresh = typeof value === 'function' ? await (value as () => T | Promise<T>)() : value;
      checkedValue(fresh);
      const grace = withGrace(fresh, this.resolveTimeout(opts?.timeout), opts?.stale ?? 0);
      const { stored } = grace;
      const timeout = this.resolveTimeout(grace.timeout);
      if (staleCopy !== undefined) {
        await this.setByMadeKey(madeKey, stored, timeout);
        return fresh;
      }
      if (isExpired(timeout)) return fresh;
      await this.written(madeKey, () => this.addEntry(madeKey, stored, timeToLive(timeout)));
      const kept = unwrapped(await this.lookUp(madeKey));
      return (kept === undefined ? fresh : kept) as T;
    } finally {
      await turn.release();
    }
  }

  /** `getEntries`, with what the near cache holds answered from it. */
  private async lookUpMany(keys: readonly string[]): Promise<Map<string, unknown>> {
    const near = this.near;
    if (near === undefined) return this.getEntries(keys);
    const held = new Map<string, unknown>();
    for (const key of keys) {
      const value = near.get(key);
      if (value !== undefined) held.set(key, value);
    }
    if (held.size === keys.length) return held;
    const found = await this.getEntries(held.size === 0 ? keys : keys.filter((key) => !held.has(key)));
    for (const [key, value] of held) found.set(key, value);
    return found;
  }

  async getMany(keys: Iterable<string>, opts?: VersionOption): Promise<Record<string, unknown>> {
    refusePositionalOptions(opts, 'getMany');
    const callerKeys = [...keys];
    const madeKeys = callerKeys.map((key) => this.makeAndValidateKey(key, opts?.version));
    const found = await this.lookUpMany(madeKeys);
    const result: Record<string, unknown> = {};
    for (let i = 0; i < madeKeys.length; i++) {
      const value = unwrapped(found.get(madeKeys[i]!));
      // Defined, not assigned: assigning to a key named __proto__ would replace the result's prototype.
      if (value !== undefined) Object.defineProperty(result, callerKeys[i]!, { value, enumerable: true, writable: true, configurable: true });
    }
    return result;
  }

  async setMany(entries: Record<string, unknown> | Map<string, unknown>, opts?: TimeoutOptions): Promise<string[]> {
    refusePositionalOptions(opts, 'setMany');
    const pairs = entries instanceof Map ? [...entries] : Object.entries(entries);
    const callerKeys = new Map<string, string>();
    const madeEntries = new Map<string, unknown>();
    for (const [key, value] of pairs) {
      checkedValue(value);
      const madeKey = this.makeAndValidateKey(key, opts?.version);
      callerKeys.set(madeKey, key);
      madeEntries.set(madeKey, value);
    }
    const timeout = this.resolveTimeout(opts?.timeout);
    const madeKeys = [...madeEntries.keys()];
    if (isExpired(timeout)) {
      await this.writtenAll(madeKeys, () => this.deleteEntries(madeKeys));
      return [];
    }
    const failed = await this.writtenAll(madeKeys, () => this.setEntries(madeEntries, timeToLive(timeout)));
    return failed.map((madeKey) => callerKeys.get(madeKey)!);
  }

  async delete(key: string, opts?: VersionOption): Promise<boolean> {
    refusePositionalOptions(opts, 'delete');
    const madeKey = this.makeAndValidateKey(key, opts?.version);
    return this.written(madeKey, () => this.deleteEntry(madeKey));
  }

  async deleteMany(keys: Iterable<string>, opts?: VersionOption): Promise<void> {
    refusePositionalOptions(opts, 'deleteMany');
    const madeKeys: string[] = [];
    for (const key of keys) madeKeys.push(this.makeAndValidateKey(key, opts?.version));
    await this.writtenAll(madeKeys, () => this.deleteEntries(madeKeys));
  }

  async hasKey(key: string, opts?: VersionOption): Promise<boolean> {
    refusePositionalOptions(opts, 'hasKey');
    return this.hasEntry(this.makeAndValidateKey(key, opts?.version));
  }

  async touch(key: string, opts?: TimeoutOptions): Promise<boolean> {
    refusePositionalOptions(opts, 'touch');
    const madeKey = this.makeAndValidateKey(key, opts?.version);
    const timeout = this.resolveTimeout(opts?.timeout);
    return this.written(madeKey, () => (isExpired(timeout) ? this.deleteEntry(madeKey) : this.touchEntry(madeKey, timeToLive(timeout))));
  }

  /** Adds a whole `delta` (negative subtracts) and keeps the expiry; resolves to the new value. */
  async incr(key: string, delta = 1, opts?: VersionOption): Promise<number> {
    refusePositionalOptions(opts, 'incr');
    const madeKey = this.makeAndValidateKey(key, opts?.version);
    const value = await this.written(madeKey, () => this.incrEntry(madeKey, checkedDelta(delta)));
    if (value === undefined) throw new KeyNotFoundError(key);
    if (value === NOT_A_NUMBER) throw new TypeError(`Cannot increment key '${key}': its value is not a number`);
    return value;
  }

  async decr(key: string, delta = 1, opts?: VersionOption): Promise<number> {
    refusePositionalOptions(opts, 'decr');
    return this.incr(key, -checkedDelta(delta), opts);
  }

  /** Moves the value to `version + delta` (default timeout, as Django does) and returns the new version. */
  async incrVersion(key: string, delta = 1, opts?: VersionOption): Promise<number> {
    refusePositionalOptions(opts, 'incrVersion');
    const version = opts?.version ?? this.version;
    const value = await this.get<unknown>(key, { default: MISSING, version });
    if (value === MISSING) throw new KeyNotFoundError(key);
    await this.set(key, value, { version: version + delta });
    await this.delete(key, { version });
    return version + delta;
  }

  async decrVersion(key: string, delta = 1, opts?: VersionOption): Promise<number> {
    refusePositionalOptions(opts, 'decrVersion');
    return this.incrVersion(key, -delta, opts);
  }

  async clear(): Promise<void> {
    this.near?.forgetAll();
    try {
      await this.clearEntries();
    } finally {
      this.near?.forgetAll();
    }
  }

  /**
   * Lets `work` finish before this cache closes, for a caller that does not wait for it, such as a page
   * stored after it was sent. Without this, a shutdown right after a page would cut it off. Its outcome
   * is the work's own concern (the callers guard it); here it only settles.
   */
  finishBeforeClosing(work: PromiseLike<unknown>): void {
    const settled = Promise.resolve(work).then(ignore, ignore);
    this.unawaited.add(settled);
    void settled.then(() => this.unawaited.delete(settled));
  }

  /**
   * Gives a render lock back (the `release` of a `fillTurn`) without the caller waiting for it: guarded
   * by the breaker, and finished before this cache closes, so that no lock outlives a shutdown.
   */
  giveBackLater(release: () => Awaitable<void>): void {
    this.finishBeforeClosing(this.breaker.guard(Promise.resolve().then(release), 'lock', undefined));
  }

  /**
   * Stops reporting outages (what fails during a shutdown, or is cut off by it, is not one), gives back
   * the render locks still held (by renders under way, whose bodies may take long) and finishes the work
   * started for callers that did not wait for it, so that a shutdown leaves no lock for other processes
   * to wait out; then empties the near cache. A backend holding connections or handles overrides this,
   * calls `await super.close()` first, then releases them.
   */
  async close(): Promise<void> {
    this.breaker.stopReporting();
    for (const release of this.locksHeld) this.giveBackLater(release);
    while (this.unawaited.size > 0) await Promise.all(this.unawaited);
    this.near?.close();
  }
}

function ignore(): void {}
