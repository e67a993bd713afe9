/**
 * Values kept past their freshness ("serve stale", Laravel's flexible, Rails's race_condition_ttl): a
 * value stored with a grace period is wrapped with the time it stops being fresh, and stored for its
 * timeout plus the grace period. Until it is fresh it is a hit; then, for the grace period, it is a stale
 * copy that one caller refreshes while everyone else is served the copy.
 */
import type { Timeout } from './base.js';

const FRESH_UNTIL = 'fragcache:freshUntil';

/** A value with its freshness, as the cache stores it. */
export interface StaleEnvelope {
  readonly [FRESH_UNTIL]: number;
  readonly value: unknown;
}

export function isStaleEnvelope(stored: unknown): stored is StaleEnvelope {
  return typeof stored === 'object' && stored !== null && typeof (stored as Partial<StaleEnvelope>)[FRESH_UNTIL] === 'number' && 'value' in stored;
}

/** Whether an envelope's value is still fresh. */
export function isFresh(envelope: StaleEnvelope): boolean {
  return Date.now() < envelope[FRESH_UNTIL];
}

/** `value`, fresh for `timeout` seconds from now. */
export function staleEnvelope(value: unknown, timeout: number): StaleEnvelope {
  return { [FRESH_UNTIL]: Date.now() + timeout * 1000, value };
}

/**
 * What to store for `value` with a grace period of `stale` seconds, and for how long: the value itself
 * when there is nothing to grace (no grace period, a value that never expires, or one that expires at once).
 */
export function withGrace(value: unknown, timeout: Timeout, stale: number): { stored: unknown; timeout: Timeout } {
  if (stale <= 0 || timeout === null || timeout <= 0) return { stored: value, timeout };
  return { stored: staleEnvelope(value, timeout), timeout: timeout + stale };
}
