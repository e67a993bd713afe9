/**
 * `fragcache/pages`: whole-page caching without a framework. The Express and Fastify integrations
 * (`fragcache/express`, `fragcache/fastify`) are built on exactly this; another framework's is a
 * request adapter plus calls to `PageCache` (docs/http-caching.md).
 */
export {
  addNeverCacheHeaders,
  getMaxAge,
  hasDirective,
  headerText,
  httpDate,
  maxAgeOf,
  patchCacheControl,
  patchResponseHeaders,
  patchVaryHeaders,
  patchedCacheControl,
  patchedVary,
  responseHelpers,
  variesOn,
} from './headers.js';
export type { CacheControlDirectives, HeaderAccess, ResponseHelpers } from './headers.js';
export { headerListKey, learnHeaderList, pageKey, pageUrl } from './keys.js';
export type { PageRequest } from './keys.js';
export { DEFAULT_PAGE_SECONDS, NOT_CACHED, PageCache, PageMiss, cachedResponse } from './page-cache.js';
export type { CachedResponse, PageCacheOptions, PageLookup, SentHeaders, StoredPage } from './page-cache.js';
