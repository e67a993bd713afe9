/**
 * Cache operations for callers that a backend must never fail: the template tags and the page cache.
 * An error or a timeout is told to the cache's breaker and becomes a miss or an unstored write; a cache
 * whose breaker is open is not asked at all. A cache that answers synchronously is answered
 * synchronously, which is what lets a hit render without an await.
 */
import { isPromiseLike, type Awaitable, type BaseCache, type Timeout } from './base.js';
import type { CacheOperation, CircuitBreaker } from './breaker.js';

function missNow(): undefined {
  return undefined;
}

/**
 * The answer of an operation the breaker let through: a synchronous one as it is (a success), a Promise
 * guarded by the breaker's timeout.
 */
function settled<T, F>(breaker: CircuitBreaker, answer: Awaitable<T>, operation: CacheOperation, fallback: F): Awaitable<T | F> {
  if (!isPromiseLike(answer)) {
    breaker.succeeded();
    return answer;
  }
  return breaker.guard(answer, operation, fallback);
}

/** What a guarded read that failed or timed out answers, until its outage copy replaces it. */
const FAILED: unique symbol = Symbol('failed');

/**
 * What `key` holds, or `undefined` when it holds nothing or the cache failed. A near cache's hit is
 * served whatever the breaker says. When the breaker is open the cache is not asked, and the answer is
 * `whenSkipped(cache)`'s: by default a miss. A read skipped or failed during an outage is answered with
 * the near cache's outage copy, if it kept one stored with a grace period (`stale=`).
 */
export function readOrMiss(cache: BaseCache, key: string, whenSkipped: (cache: BaseCache) => Awaitable<undefined> = missNow): Awaitable<unknown> {
  const held = cache.nearHit(key);
  if (held !== undefined) return held;
  const breaker = cache.breaker;
  if (!breaker.allows()) return cache.outageCopy(key) ?? whenSkipped(cache);
  let entry: Awaitable<unknown>;
  try {
    entry = cache.getByMadeKey(key);
  } catch (error) {
    breaker.failed('read', error);
    return cache.outageCopy(key);
  }
  if (!cache.hasNearCache) return settled(breaker, entry, 'read', undefined);
  const answer = settled(breaker, entry, 'read', FAILED);
  if (!isPromiseLike(answer)) return answer;
  return answer.then((found) => (found === FAILED ? cache.outageCopy(key) : found));
}

/**
 * Stores `value` under `key` for `timeout` (resolved seconds), if the cache can: a failed or skipped
 * write is only the breaker's concern. Synchronous where the cache is.
 */
export function writeOrSkip(cache: BaseCache, key: string, value: unknown, timeout: Timeout): Awaitable<unknown> {
  const breaker = cache.breaker;
  if (!breaker.allows()) return undefined;
  try {
    return settled(breaker, cache.setByMadeKey(key, value, timeout), 'write', undefined);
  } catch (error) {
    breaker.failed('write', error);
    return undefined;
  }
}

/** `writeOrSkip` for a caller that does not wait for the write: the cache finishes it before closing. */
export function writeInBackground(cache: BaseCache, key: string, value: unknown, timeout: Timeout): void {
  const written = writeOrSkip(cache, key, value, timeout);
  if (isPromiseLike(written)) cache.finishBeforeClosing(written);
}
