/** Builds the key stored in the backend from the caller's key. */
export type KeyFunction = (key: string, keyPrefix: string, version: number) => string;

/** Django's default: `${keyPrefix}:${version}:${key}`, so `foo` becomes `:1:foo`. */
export const defaultKeyFunction: KeyFunction = (key, keyPrefix, version) => `${keyPrefix}:${version}:${key}`;

/** Memcached's limit on key length, which every backend warns about. */
export const MEMCACHED_MAX_KEY_LENGTH = 250;

const NO_PROBLEMS: readonly string[] = Object.freeze([]);

/**
 * Why memcached would refuse `key`, each reason a message (none for a key it accepts). Keys over 250
 * characters and keys with spaces or control characters (0x00–0x20, 0x7f) are refused; other non-ASCII
 * is fine. A key can have both problems, and then gets both messages, as in Django.
 */
export function memcachedKeyProblems(key: string): readonly string[] {
  let problems = NO_PROBLEMS;
  if (key.length > MEMCACHED_MAX_KEY_LENGTH) {
    problems = [`Cache key will cause errors if used with memcached: '${key}' (longer than ${MEMCACHED_MAX_KEY_LENGTH})`];
  }
  for (let i = 0; i < key.length; i++) {
    const code = key.charCodeAt(i);
    if (code <= 0x20 || code === 0x7f) {
      return [...problems, `Cache key contains characters that will cause errors if used with memcached: '${key}'`];
    }
  }
  return problems;
}
