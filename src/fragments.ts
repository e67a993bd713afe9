import type { BaseCache } from './base.js';
import { makeTemplateFragmentKey } from './keys.js';
import { caches as processCaches, type CacheRegistry } from './registry.js';

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
