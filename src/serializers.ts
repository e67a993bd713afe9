/**
 * How a backend turns values into bytes or text and back. `loads` must never run code found in the
 * data: the cache may be shared with other programs.
 */
export interface Serializer {
  dumps(value: unknown): string | Uint8Array;
  loads(data: string | Uint8Array): unknown;
}

function describe(value: unknown): string {
  if (typeof value === 'number') return String(value);
  if (typeof value === 'object' && value !== null) return `a ${value.constructor?.name ?? 'null-prototype object'}`;
  return `a ${typeof value}`;
}

/**
 * Refuses what JSON would change or drop on the way through, so that a value either comes back as it
 * was stored or is not stored at all (JSON.stringify alone turns NaN into null, a Map into {} and
 * drops functions). Values with a `toJSON` method, such as Date, are stored as what it returns.
 */
function strictReplacer(this: unknown, key: string, value: unknown): unknown {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      if (Number.isFinite(value)) return value;
      break;
    case 'object': {
      if (value === null || Array.isArray(value)) return value;
      const proto: unknown = Object.getPrototypeOf(value);
      if (proto === Object.prototype || proto === null) return value;
      break;
    }
    case 'undefined':
      // An absent property reads back as undefined, so only an undefined array item would change.
      if (!Array.isArray(this)) return value;
      break;
  }
  const where = key === '' ? '' : ` (at key '${key}')`;
  throw new TypeError(`The JSON serializer cannot store ${describe(value)}${where}`);
}

const textDecoder = new TextDecoder();

/** The default serializer: JSON text, strict about what it accepts, with no code run on load. */
export class JSONSerializer implements Serializer {
  dumps(value: unknown): string {
    return JSON.stringify(value, strictReplacer);
  }

  /**
   * JSON.parse defines a `__proto__` key as an ordinary own property, so stored data can never reach
   * an object's prototype chain.
   */
  loads(data: string | Uint8Array): unknown {
    return JSON.parse(typeof data === 'string' ? data : textDecoder.decode(data));
  }
}

export const jsonSerializer: Serializer = new JSONSerializer();
