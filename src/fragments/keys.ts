/**
 * Fragment keys: how a fragment's name and vary values become the key it is stored under. The text
 * hashed is Django's netstring encoding, so a Node site and a Django site can share fragments.
 */
import { createHash } from 'node:crypto';
import { InvalidVaryValueError } from '../errors.js';

const FRAGMENT_KEY_PREFIX = 'template.cache.';
const MD5_OF_NOTHING = 'd41d8cd98f00b204e9800998ecf8427e';

/** What a value is, for errors: never its contents, which may be one user's data. */
function kindOf(value: unknown): string {
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'symbol') return 'a symbol';
  if (Array.isArray(value)) return 'an array';
  const prototype: unknown = Object.getPrototypeOf(value);
  if (prototype === null) return 'an object without a prototype';
  if (prototype === Object.prototype) return 'a plain object';
  const name = (value as object).constructor?.name;
  return name ? `a ${name}` : 'an object';
}

/**
 * Appends one vary value to the text a fragment key hashes. Strings, numbers, bigints and booleans are
 * written as a netstring of their printed text (`<UTF-8 byte length>:<text>,`), null and undefined as the
 * empty string. An array is written as `[`, its items, `]`: a netstring starts with a digit, so an array
 * can never be read as a string, and `[1, 2]`, `"1,2"` and `[[1], 2]` stay apart. Any other object is
 * written as the text of its own `toString` (a Date, a URL, a class that defines one); an object without
 * one prints `[object Object]` for every value, and is refused rather than let different users share an
 * entry.
 */
function appendVaryValue(encoded: string, value: unknown, position: string): string {
  let text: string;
  switch (typeof value) {
    case 'string':
      text = value;
      break;
    case 'number':
    case 'bigint':
    case 'boolean':
      text = String(value);
      break;
    case 'undefined':
      text = '';
      break;
    case 'object':
      if (value === null) {
        text = '';
        break;
      }
      if (Array.isArray(value)) {
        encoded += '[';
        for (let i = 0; i < value.length; i++) encoded = appendVaryValue(encoded, value[i], `${position}[${i}]`);
        return `${encoded}]`;
      }
      text = ownText(value, position);
      break;
    default:
      throw refusal(value, position);
  }
  return `${encoded}${Buffer.byteLength(text)}:${text},`;
}

function ownText(value: object, position: string): string {
  const { toString } = value as { toString?: unknown };
  if (typeof toString !== 'function' || toString === Object.prototype.toString || toString === Array.prototype.toString) {
    throw refusal(value, position);
  }
  try {
    return String(value);
  } catch (error) {
    throw new InvalidVaryValueError(`vary value ${position} (${kindOf(value)}) could not be turned into text: ${String(error)}`, { cause: error });
  }
}

function refusal(value: unknown, position: string): InvalidVaryValueError {
  return new InvalidVaryValueError(
    `vary value ${position} is ${kindOf(value)}, which has no text of its own to tell one value from another: ` +
      'vary on a string or number that identifies it, such as user.id',
  );
}

/**
 * The text a fragment key hashes, one entry per vary value (see `appendVaryValue`). Throws
 * InvalidVaryValueError for a value that cannot tell fragments apart; `position` in its message counts
 * the vary values from 1.
 */
export function encodeVaryOn(varyOn: readonly unknown[]): string {
  let encoded = '';
  for (let i = 0; i < varyOn.length; i++) encoded = appendVaryValue(encoded, varyOn[i], String(i + 1));
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
 * one cache. Throws InvalidVaryValueError for a vary value that cannot tell fragments apart.
 */
export function makeTemplateFragmentKey(fragmentName: string, varyOn?: readonly unknown[] | null): string {
  return fragmentKeyOfEncoded(fragmentName, varyOn ? encodeVaryOn(varyOn) : '');
}
