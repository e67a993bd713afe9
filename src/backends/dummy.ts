import { BaseCache } from '../base.js';

/**
 * Caches nothing while keeping the whole API (and key validation) in place: for development, or to
 * switch caching off without changing code. Every hook answers synchronously.
 */
export class DummyCache extends BaseCache {
  static readonly optionNames = [];

  protected getEntry(): undefined {
    return undefined;
  }

  protected setEntry(): void {}

  protected addEntry(): boolean {
    return true;
  }

  protected deleteEntry(): boolean {
    return false;
  }

  protected hasEntry(): boolean {
    return false;
  }

  protected touchEntry(): boolean {
    return false;
  }

  protected incrEntry(): undefined {
    return undefined;
  }

  protected clearEntries(): void {}
}
