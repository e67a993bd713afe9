/**
 * How the in-process stores (locmem, and the near cache in front of a shared backend) hold a value:
 * immutable values (strings, finite numbers, booleans, null) as they are, anything else serialized and
 * decoded on every read, which is the copy that keeps a caller's mutation out of the store.
 */
import type { Serializer } from './serializers.js';

/** A value kept in its serialized form. */
class Encoded {
  constructor(readonly data: string | Uint8Array) {}
}

/** lru-cache cannot hold null; this stands for a stored null. */
const STORED_NULL = Symbol('null');

export type Slot = string | number | boolean | typeof STORED_NULL | Encoded;

export function toSlot(value: unknown, serializer: Serializer): Slot {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      if (Number.isFinite(value)) return value;
      break;
    case 'object':
      if (value === null) return STORED_NULL;
      break;
  }
  return new Encoded(serializer.dumps(value));
}

export function fromSlot(slot: Slot | undefined, serializer: Serializer): unknown {
  if (slot instanceof Encoded) return serializer.loads(slot.data);
  return slot === STORED_NULL ? null : slot;
}

/** Roughly the bytes a slot holds: two a character for text (V8's wider form), eight for anything else. */
export function slotBytes(slot: Slot): number {
  if (typeof slot === 'string') return 2 * slot.length;
  if (slot instanceof Encoded) return typeof slot.data === 'string' ? 2 * slot.data.length : slot.data.byteLength;
  return 8;
}
