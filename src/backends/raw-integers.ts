import type { Serializer } from '../serializers.js';

const INTEGER_TEXT = /^-?\d+$/;
const textDecoder = new TextDecoder();

/**
 * How the network backends store values: safe integers as their decimal text, so the server's own
 * increment (Redis INCRBY, memcached incr) works on them atomically; everything else serialized.
 * Stored text that reads as an integer is an integer, as in Django's Redis backend.
 *
 * Bytes come back as a Buffer over the serializer's own memory: the clients take a Buffer as bytes, but
 * would turn another Uint8Array into the text `104,105`.
 */
export function encodeValue(value: unknown, serializer: Serializer): string | Buffer {
  if (Number.isSafeInteger(value)) return String(value);
  const data = serializer.dumps(value);
  return typeof data === 'string' || Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * The stored value, or `undefined` (a miss) for data the serializer cannot read: a corrupt or foreign
 * entry must not fail every read until it expires, and the next write replaces it.
 */
export function decodeValue(data: string | Uint8Array, serializer: Serializer): unknown {
  const text = typeof data === 'string' ? data : data.length <= 20 ? textDecoder.decode(data) : undefined;
  if (text !== undefined && INTEGER_TEXT.test(text)) return Number(text);
  try {
    return serializer.loads(data);
  } catch {
    return undefined;
  }
}
