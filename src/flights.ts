/**
 * Work under way in this process, by key: whoever needs a key's result meanwhile shares it instead of
 * doing the work again (single flight). A flight is forgotten once its result settles, either way.
 * The template tags and the page cache keep one per cache; `BaseCache` one for `getOrSet`.
 */
import type { BaseCache } from './base.js';

export interface Flight {
  /** What the work gives, or its error, for everyone who shares it. */
  readonly result: Promise<unknown>;
}

export class Flights<F extends Flight> {
  private readonly underway = new Map<string, F>();

  get(key: string): F | undefined {
    return this.underway.get(key);
  }

  /** Shares `flight` under `key` until its result settles. */
  start(key: string, flight: F): void {
    this.underway.set(key, flight);
    const landed = () => {
      if (this.underway.get(key) === flight) this.underway.delete(key);
    };
    flight.result.then(landed, landed);
  }
}

/** The flights of each cache, made on first use and forgotten with the cache. */
export class FlightsByCache<F extends Flight> {
  private readonly byCache = new WeakMap<BaseCache, Flights<F>>();

  of(cache: BaseCache): Flights<F> {
    let flights = this.byCache.get(cache);
    if (flights === undefined) {
      flights = new Flights();
      this.byCache.set(cache, flights);
    }
    return flights;
  }
}
