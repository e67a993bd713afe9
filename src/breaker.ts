/**
 * The circuit breaker of one cache: what lets a page skip a dead or slow backend instead of waiting for
 * it, and reports each outage once instead of on every render. The template tags (and any caller that
 * must never fail because of the cache) ask it before each operation and tell it how the operation went;
 * the low-level API does neither, so `cache.get()` from code always reaches the backend and reports its
 * own errors.
 */

import type { BreakerOptions } from './config.js';
import { LONGEST_TIMER, settingsOf } from './settings.js';

/** What the breaker guards: a read, a write, or taking a lock for a render. */
export type CacheOperation = 'read' | 'write' | 'lock';

/** The first failure of an outage. */
export interface CacheIncident {
  /** The alias of the cache, when it was made by a registry. */
  readonly alias: string | undefined;
  readonly operation: CacheOperation;
  readonly error: unknown;
}

/** The end of an outage: the first success after it. */
export interface CacheRecovery {
  readonly alias: string | undefined;
  /** How many operations failed during the outage, the first included. */
  readonly failures: number;
  /** Milliseconds from the first failure to the first success. */
  readonly downtime: number;
}

/** Where a breaker reports; a registry sets one for each cache it makes. */
export interface IncidentListener {
  incident(incident: CacheIncident): void;
  recovery(recovery: CacheRecovery): void;
}

const DEFAULT_FAILURE_THRESHOLD = 3;
const DEFAULT_RETRY_AFTER = 500;
const DEFAULT_TIMEOUT = 50;

/** An operation the breaker guards took longer than its `timeout`. */
export class CacheTimeoutError extends Error {
  override name = 'CacheTimeoutError';
}

/** A process warning for an outage that no listener heard about. */
export class CacheIncidentWarning extends Error {
  override name = 'CacheIncidentWarning';
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** Without a listener, an outage is one process warning, and its end another. */
export const warningListener: IncidentListener = {
  incident({ alias, operation, error }) {
    const cache = alias === undefined ? 'a cache' : `cache '${alias}'`;
    process.emitWarning(new CacheIncidentWarning(`fragcache: ${cache} failed (${operation}), pages render uncached until it recovers: ${describe(error)}`));
  },
  recovery({ alias, failures, downtime }) {
    const cache = alias === undefined ? 'a cache' : `cache '${alias}'`;
    process.emitWarning(new CacheIncidentWarning(`fragcache: ${cache} recovered after ${downtime} ms and ${failures} failed operations`));
  },
};

const SILENT: IncidentListener = { incident() {}, recovery() {} };

/**
 * Closed, it lets every operation through. `failureThreshold` consecutive failures open it: operations
 * are refused at once for `retryAfter` ms, then one is let through as a probe (and the next probe
 * another `retryAfter` later, should that one hang). The first success closes it.
 *
 * An outage (from the first failure to the next success) is reported once when it starts and once when
 * it ends, however many operations fail in between.
 */
export class CircuitBreaker {
  private readonly failureThreshold: number;
  private readonly retryAfter: number;
  /** Milliseconds a guarded operation may take. */
  readonly timeout: number;
  private listener: IncidentListener = warningListener;
  private alias: string | undefined;
  /** Failures since the last success. */
  private failures = 0;
  /** Failures since the breaker was made (`failureCount`). */
  private failuresEver = 0;
  /** When the outage began; 0 while there is none, which is all the hot path looks at. */
  private outageSince = 0;
  /** Until when operations are refused; 0 while closed. */
  private openUntil = 0;

  constructor(options: BreakerOptions | undefined) {
    const setting = settingsOf('breaker', options, ['failureThreshold', 'retryAfter', 'timeout']);
    this.failureThreshold = Math.ceil(setting('failureThreshold', 'threshold', DEFAULT_FAILURE_THRESHOLD));
    this.retryAfter = setting('retryAfter', 'milliseconds', DEFAULT_RETRY_AFTER);
    this.timeout = setting('timeout', 'milliseconds', DEFAULT_TIMEOUT);
  }

  /** Sends this cache's reports to `listener`, naming it `alias`. */
  reportTo(listener: IncidentListener, alias: string): void {
    this.listener = listener;
    this.alias = alias;
  }

  /** Reports nothing more: once its cache is closing, what fails is the shutdown, not an outage. */
  stopReporting(): void {
    this.listener = SILENT;
  }

  /** Whether an operation may go to the backend now. While open, only a probe every `retryAfter` ms may. */
  allows(): boolean {
    if (this.openUntil === 0) return true;
    const now = Date.now();
    if (now < this.openUntil) return false;
    this.openUntil = now + this.retryAfter;
    return true;
  }

  /** Whether the circuit is open: the backend is being skipped. */
  get isOpen(): boolean {
    return this.openUntil !== 0;
  }

  /**
   * How many operations have failed since the breaker was made. Two readings tell whether anything
   * failed in between: a render reads it before its block's read, and tries neither the lock nor the
   * write if it changed, since the page would wait a timeout for each.
   */
  get failureCount(): number {
    return this.failuresEver;
  }

  succeeded(): void {
    if (this.outageSince === 0) return;
    const recovery: CacheRecovery = { alias: this.alias, failures: this.failures, downtime: Date.now() - this.outageSince };
    this.failures = 0;
    this.outageSince = 0;
    this.openUntil = 0;
    this.listener.recovery(recovery);
  }

  failed(operation: CacheOperation, error: unknown): void {
    this.failures++;
    this.failuresEver++;
    if (this.outageSince === 0) {
      this.outageSince = Date.now();
      this.listener.incident({ alias: this.alias, operation, error });
    }
    if (this.failures >= this.failureThreshold && this.openUntil === 0) this.openUntil = Date.now() + this.retryAfter;
  }

  /**
   * Waits for an operation that answered with a Promise, for at most `timeout` ms (by default the
   * breaker's): resolves to its value, or to `fallback` once it failed or ran out of time, and tells
   * the breaker which. Time this process spent busy does not count, so a slow page never opens the
   * circuit of a healthy cache: the clock starts with the promise callbacks of the task that asked,
   * where a backend sends its command (synchronous work later in that task, such as the rest of a
   * request handler, would otherwise run on the backend's clock), and a reply that arrived while a long
   * task held the event loop is read before the timeout is declared (the check runs after the loop's
   * I/O phase).
   */
  guard<T, F>(pending: PromiseLike<T>, operation: CacheOperation, fallback: F, timeout = this.timeout): Promise<T | F> {
    return new Promise<T | F>((resolve) => {
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const timedOut = () => {
        if (settled) return;
        settled = true;
        this.failed(operation, new CacheTimeoutError(`The cache did not answer within ${timeout} ms`));
        resolve(fallback);
      };
      queueMicrotask(() => {
        if (!settled) timer = setTimeout(() => setImmediate(timedOut), Math.min(timeout, LONGEST_TIMER));
      });
      pending.then(
        (value) => {
          clearTimeout(timer);
          if (settled) return;
          settled = true;
          this.succeeded();
          resolve(value);
        },
        (error: unknown) => {
          clearTimeout(timer);
          if (settled) return;
          settled = true;
          this.failed(operation, error);
          resolve(fallback);
        },
      );
    });
  }
}
