import type { Serializer } from '../serializers.js';

const INTEGER_TEXT = /^-?\d+$/;
const textDecoder = new TextDecoder();

/**
 * How the network backends store values: safe integers as their decimal text, so the server's own
 * increment (Redis INCRBY, memcached incr) works on them atomically; everything else serialized.
 * Stored text that reads as an integer is an integer, as in Django's Redis backend.
 */
export function encodeValue(value: unknown, serializer: Serializer): string | Uint8Array {
  return Number.isSafeInteger(value) ? String(value) : serializer.dumps(value);
}

export function decodeValue(data: string | Uint8Array, serializer: Serializer): unknown {
  const text = typeof data === 'string' ? data : data.length <= 20 ? textDecoder.decode(data) : undefined;
  return text !== undefined && INTEGER_TEXT.test(text) ? Number(text) : serializer.loads(data);
}
