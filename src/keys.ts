import { createHash } from 'node:crypto';

/** Builds the key stored in the backend from the caller's key. */
export type KeyFunction = (key: string, keyPrefix: string, version: number) => string;

/** Django's default: `${keyPrefix}:${version}:${key}`, so `foo` becomes `:1:foo`. */
export const defaultKeyFunction: KeyFunction = (key, keyPrefix, version) => `${keyPrefix}:${version}:${key}`;

/** Memcached's limit on key length, which every backend warns about. */
export const MEMCACHED_MAX_KEY_LENGTH = 250;

/**
 * Why memcached would refuse `key`, or `undefined` when it would accept it. Keys over 250 characters
 * and keys with spaces or control characters (0x00–0x20, 0x7f) are refused; other non-ASCII is fine.
 */
export function memcachedKeyProblem(key: string): string | undefined {
  if (key.length > MEMCACHED_MAX_KEY_LENGTH) {
    return `Cache key will cause errors if used with memcached: '${key}' (longer than ${MEMCACHED_MAX_KEY_LENGTH})`;
  }
  for (let i = 0; i < key.length; i++) {
    const code = key.charCodeAt(i);
    if (code <= 0x20 || code === 0x7f) {
      return `Cache key contains characters that will cause errors if used with memcached: '${key}'`;
    }
  }
  return undefined;
}

const FRAGMENT_KEY_PREFIX = 'template.cache.';
const MD5_OF_NOTHING = 'd41d8cd98f00b204e9800998ecf8427e';

/** A vary value as a template prints it: null and undefined print as nothing. */
function printed(value: unknown): string {
  return value === null || value === undefined ? '' : String(value);
}

/**
 * The text a fragment key hashes: each vary value as a netstring (`<UTF-8 byte length>:<text>,`), so
 * that `["a:b"]` and `["a", "b"]` no longer collide as they did with Django's `:`-joined encoding.
 */
export function encodeVaryOn(varyOn: readonly unknown[]): string {
  let encoded = '';
  for (const value of varyOn) {
    const text = printed(value);
    encoded += `${Buffer.byteLength(text)}:${text},`;
  }
  return encoded;
}

/** The fragment key of a name and its vary values already encoded by `encodeVaryOn`. */
export function fragmentKeyOfEncoded(fragmentName: string, encodedVaryOn: string): string {
  const digest = encodedVaryOn === '' ? MD5_OF_NOTHING : createHash('md5').update(encodedVaryOn).digest('hex');
  return `${FRAGMENT_KEY_PREFIX}${fragmentName}.${digest}`;
}

/**
 * The cache key of a template fragment, before the backend's key function is applied. For strings and
 * integers it equals the key Django computes, so a Django site and a Node site can share fragments in
 * one cache.
 */
export function makeTemplateFragmentKey(fragmentName: string, varyOn?: readonly unknown[] | null): string {
  return fragmentKeyOfEncoded(fragmentName, varyOn ? encodeVaryOn(varyOn) : '');
}
