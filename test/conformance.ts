/**
 * The behaviour every storing backend shares (SPEC §3), written once. Each backend's test file calls
 * `describeConformance` with a factory for caches on one shared store.
 */
import { expect } from 'chai';
import { InvalidCacheKeyError, KeyNotFoundError, MAX_TIMEOUT, type BaseCache, type CacheParams, type Serializer } from 'fragcache';
import { cacheKeyWarnings, rejectionOf, sleep } from './helpers.js';

export interface ConformanceTarget {
  /** A cache on the store under test; every cache it returns shares that store. */
  create(overrides?: Omit<CacheParams, 'options'>): BaseCache;
  /** The shortest timeout in seconds that the backend honours, and how long (ms) until it has surely passed. */
  shortTimeout: number;
  expiryWaitMs: number;
  /** The backend refuses bad keys with InvalidCacheKeyError (memcached) instead of warning. */
  strictKeys?: boolean;
}

const BYTES_BEFORE = [0xff, 0x00, 0xfe];
const BYTES_AFTER = [0x80];

/**
 * Writes bytes that are not UTF-8 text around the JSON (0xff, 0x00, a lone continuation byte), and reads
 * back only exactly those bytes: any backend that turns bytes into text, or text into bytes, fails it.
 */
const bytesSerializer: Serializer = {
  dumps(value) {
    return new Uint8Array([...BYTES_BEFORE, ...new TextEncoder().encode(JSON.stringify(value)), ...BYTES_AFTER]);
  },
  loads(data) {
    if (typeof data === 'string') throw new TypeError('the bytes serializer was given text');
    const head = [...data.subarray(0, BYTES_BEFORE.length)];
    const tail = [...data.subarray(data.length - BYTES_AFTER.length)];
    if (head.join() !== BYTES_BEFORE.join() || tail.join() !== BYTES_AFTER.join()) throw new TypeError(`unexpected bytes: ${[...data].join(' ')}`);
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(data.subarray(BYTES_BEFORE.length, data.length - BYTES_AFTER.length)));
  },
};

export function describeConformance(title: string, target: ConformanceTarget): void {
  describe(`${title}: conformance`, function () {
    let cache: BaseCache;
    const short = target.shortTimeout;
    const waitForExpiry = () => sleep(target.expiryWaitMs);
    this.timeout(20_000 + 4 * target.expiryWaitMs);

    // Every cache a test makes is closed after it, so network backends leave no connection open.
    const opened: BaseCache[] = [];
    const create = (overrides?: Omit<CacheParams, 'options'>) => {
      const made = target.create(overrides);
      opened.push(made);
      return made;
    };

    beforeEach(async function () {
      cache = create();
      await cache.clear();
    });

    afterEach(async function () {
      await Promise.all(opened.splice(0).map((made) => made.close()));
    });

    describe('get and set', function () {
      it('misses with undefined, or the default given', async function () {
        expect(await cache.get('absent')).to.equal(undefined);
        expect(await cache.get('absent', { default: 'fallback' })).to.equal('fallback');
      });

      it('gives back what was stored, for every JSON type', async function () {
        const values: Record<string, unknown> = {
          string: 'héllo wörld ✓',
          empty: '',
          integer: 42,
          float: 1.5,
          negative: -7,
          boolean: false,
          object: { a: 1, nested: { list: [1, 'two', null] } },
          array: [1, [2, 3], { x: 'y' }],
        };
        for (const [key, value] of Object.entries(values)) await cache.set(key, value);
        for (const [key, value] of Object.entries(values)) expect(await cache.get(key)).to.deep.equal(value);
      });

      it('stores null as a value: get gives null, hasKey is true', async function () {
        await cache.set('nothing', null);
        expect(await cache.get('nothing')).to.equal(null);
        expect(await cache.get('nothing', { default: 'fallback' })).to.equal(null);
        expect(await cache.hasKey('nothing')).to.equal(true);
      });

      it('accepts non-ASCII keys', async function () {
        await cache.set('ключ-日本', 'value');
        expect(await cache.get('ключ-日本')).to.equal('value');
      });

      it('overwrites', async function () {
        await cache.set('key', 'first');
        await cache.set('key', 'second');
        expect(await cache.get('key')).to.equal('second');
      });

      it("refuses Django's positional timeout, default or version rather than ignore it", async function () {
        const attempts: Array<[string, Promise<unknown>, unknown]> = [
          ['set', cache.set('p', 1, 0 as never), 0],
          ['get', cache.get('p', 'fallback' as never), 'fallback'],
          ['add', cache.add('p', 1, 60 as never), 60],
          ['touch', cache.touch('p', null as never), null],
          ['delete', cache.delete('p', 2 as never), 2],
        ];
        for (const [method, attempt, value] of attempts) {
          const error = await rejectionOf(attempt);
          expect(error).to.be.instanceOf(TypeError);
          expect(error.message).to.equal(
            `${method}() takes its options as an object, not ${String(value)}: Django's positional timeout, default and version are named here ({ timeout: 60 })`,
          );
        }
        expect(await cache.hasKey('p')).to.equal(false);
      });

      it('rejects set(key, undefined) with a TypeError and stores nothing', async function () {
        const error = await rejectionOf(cache.set('key', undefined));
        expect(error).to.be.instanceOf(TypeError);
        expect(await cache.hasKey('key')).to.equal(false);
      });

      it('rejects values the serializer cannot encode and keeps the previous value', async function () {
        await cache.set('key', 'kept');
        const circular: Record<string, unknown> = {};
        circular.self = circular;
        for (const bad of [() => 1, new Map([[1, 2]]), { n: 10n }, Number.NaN, circular, [undefined]]) {
          await rejectionOf(cache.set('key', bad));
          await rejectionOf(cache.add('fresh', bad));
        }
        expect(await cache.get('key')).to.equal('kept');
        expect(await cache.hasKey('fresh')).to.equal(false);
      });

      it('copies values in and out: mutating an object never changes the cache', async function () {
        const value = { list: [1, 2] };
        await cache.set('key', value);
        value.list.push(3);
        const first = await cache.get<{ list: number[] }>('key');
        expect(first).to.deep.equal({ list: [1, 2] });
        first!.list.push(4);
        expect(await cache.get('key')).to.deep.equal({ list: [1, 2] });
      });

      it('round-trips the exact bytes of a serializer that writes bytes', async function () {
        const bytes = create({ serializer: bytesSerializer });
        const values: Record<string, unknown> = { text: 'héllo ✓', object: { list: [1, 'two', null] }, empty: '', integer: 42 };
        for (const [key, value] of Object.entries(values)) await bytes.set(key, value);
        for (const [key, value] of Object.entries(values)) expect(await bytes.get(key), key).to.deep.equal(value);
        expect(await bytes.getMany(Object.keys(values))).to.deep.equal(values);
      });

      it('never lets stored data reach the prototype chain', async function () {
        await cache.set('key', JSON.parse('{"__proto__": {"polluted": true}, "ok": 1}'));
        const value = await cache.get<Record<string, unknown>>('key');
        expect(value!.ok).to.equal(1);
        expect(Object.getPrototypeOf(value)).to.equal(Object.prototype);
        expect(({} as Record<string, unknown>).polluted).to.equal(undefined);
      });
    });

    describe('timeouts', function () {
      it('expires an entry after its timeout', async function () {
        await cache.set('short', 'value', { timeout: short });
        expect(await cache.get('short')).to.equal('value');
        await waitForExpiry();
        expect(await cache.get('short')).to.equal(undefined);
        expect(await cache.hasKey('short')).to.equal(false);
      });

      it('never expires with timeout null', async function () {
        const forever = create({ timeout: short });
        await forever.set('forever', 'value', { timeout: null });
        await forever.set('default', 'value');
        await waitForExpiry();
        expect(await forever.get('forever')).to.equal('value');
        expect(await forever.get('default')).to.equal(undefined);
      });

      it('uses the configured default timeout, and null there means forever', async function () {
        expect(create().defaultTimeout).to.equal(300);
        expect(create({ timeout: null }).defaultTimeout).to.equal(null);
        expect(create({ timeout: 'bogus' as unknown as number }).defaultTimeout).to.equal(300);
      });

      it('treats a zero or negative timeout as expired at once', async function () {
        for (const timeout of [0, -1]) {
          await cache.set('gone', 'old');
          await cache.set('gone', 'value', { timeout });
          expect(await cache.get('gone')).to.equal(undefined);
          expect(await cache.add('added', 'value', { timeout })).to.equal(true);
          expect(await cache.get('added')).to.equal(undefined);
          expect(await cache.setMany({ many: 1 }, { timeout })).to.deep.equal([]);
          expect(await cache.get('many')).to.equal(undefined);
        }
      });

      it('stores a timeout longer than MAX_TIMEOUT seconds, or Infinity, as never expiring', async function () {
        for (const [i, timeout] of [MAX_TIMEOUT, MAX_TIMEOUT + 1, 1e20, Number.POSITIVE_INFINITY].entries()) {
          await cache.set(`set-${i}`, 'value', { timeout });
          expect(await cache.add(`add-${i}`, 'value', { timeout })).to.equal(true);
          expect(await cache.setMany({ [`many-${i}`]: 'value' }, { timeout })).to.deep.equal([]);
          expect(await cache.touch(`set-${i}`, { timeout })).to.equal(true);
          expect(Object.keys(await cache.getMany([`set-${i}`, `add-${i}`, `many-${i}`]))).to.have.length(3);
        }
        expect(create({ timeout: 1e20 }).defaultTimeout).to.equal(null);
        expect(create({ timeout: Number.POSITIVE_INFINITY }).defaultTimeout).to.equal(null);
        expect(create({ timeout: MAX_TIMEOUT }).defaultTimeout).to.equal(MAX_TIMEOUT);
      });

      it('rejects a timeout that is not a number or null', async function () {
        const error = await rejectionOf(cache.set('key', 1, { timeout: 'soon' as unknown as number }));
        expect(error).to.be.instanceOf(TypeError);
      });

      it('touch sets a new expiry and says whether the key existed', async function () {
        await cache.set('key', 'value', { timeout: short });
        expect(await cache.touch('key', { timeout: null })).to.equal(true);
        expect(await cache.touch('absent')).to.equal(false);
        await waitForExpiry();
        expect(await cache.get('key')).to.equal('value');
        expect(await cache.touch('key', { timeout: short })).to.equal(true);
        await waitForExpiry();
        expect(await cache.get('key')).to.equal(undefined);
      });

      it('touch with a timeout of zero expires the key', async function () {
        await cache.set('key', 'value');
        expect(await cache.touch('key', { timeout: 0 })).to.equal(true);
        expect(await cache.hasKey('key')).to.equal(false);
      });
    });

    describe('add and getOrSet', function () {
      it('add stores only when absent and says whether it stored', async function () {
        expect(await cache.add('key', 'first')).to.equal(true);
        expect(await cache.add('key', 'second')).to.equal(false);
        expect(await cache.get('key')).to.equal('first');
      });

      it('add stores again once the entry has expired', async function () {
        await cache.set('key', 'old', { timeout: short });
        await waitForExpiry();
        expect(await cache.add('key', 'new')).to.equal(true);
        expect(await cache.get('key')).to.equal('new');
      });

      it('getOrSet stores the default on a miss and returns the cached value on a hit', async function () {
        let calls = 0;
        const compute = async () => {
          calls += 1;
          return { computed: calls };
        };
        expect(await cache.getOrSet('key', compute)).to.deep.equal({ computed: 1 });
        expect(await cache.getOrSet('key', compute)).to.deep.equal({ computed: 1 });
        expect(calls).to.equal(1);
        expect(await cache.getOrSet('plain', 'value')).to.equal('value');
        await cache.set('nothing', null);
        expect(await cache.getOrSet('nothing', 'other')).to.equal(null);
      });

      it('getOrSet keeps the value another caller added first', async function () {
        expect(await cache.getOrSet('key', async () => {
          await cache.add('key', 'winner');
          return 'loser';
        })).to.equal('winner');
      });
    });

    describe('many at once', function () {
      it('getMany returns the hits only, by the caller keys', async function () {
        await cache.set('a', 1);
        await cache.set('b', null);
        expect(await cache.getMany(['a', 'b', 'c'])).to.deep.equal({ a: 1, b: null });
        expect(await cache.getMany([])).to.deep.equal({});
      });

      it('getMany returns keys such as __proto__ as ordinary entries of a plain object', async function () {
        const entries = new Map<string, unknown>([['__proto__', { polluted: true }], ['constructor', 'c'], ['toString', 't']]);
        await cache.setMany(entries);
        const found = await cache.getMany(entries.keys());
        expect(Object.getPrototypeOf(found)).to.equal(Object.prototype);
        expect(Object.keys(found)).to.deep.equal(['__proto__', 'constructor', 'toString']);
        expect(Object.getOwnPropertyDescriptor(found, '__proto__')?.value).to.deep.equal({ polluted: true });
        expect((found as { polluted?: unknown }).polluted).to.equal(undefined);
        expect(found.constructor).to.equal('c');
      });

      it('setMany stores every entry and returns no failures', async function () {
        expect(await cache.setMany({ a: 1, b: 'two' })).to.deep.equal([]);
        expect(await cache.setMany(new Map<string, unknown>([['c', [3]]]), { timeout: short })).to.deep.equal([]);
        expect(await cache.getMany(['a', 'b', 'c'])).to.deep.equal({ a: 1, b: 'two', c: [3] });
        await waitForExpiry();
        expect(await cache.getMany(['a', 'c'])).to.deep.equal({ a: 1 });
      });

      it('deleteMany deletes every key given', async function () {
        await cache.setMany({ a: 1, b: 2, c: 3 });
        await cache.deleteMany(['a', 'b', 'absent']);
        expect(await cache.getMany(['a', 'b', 'c'])).to.deep.equal({ c: 3 });
      });
    });

    describe('delete, hasKey, clear', function () {
      it('delete says whether there was something to delete', async function () {
        await cache.set('key', 'value');
        expect(await cache.delete('key')).to.equal(true);
        expect(await cache.delete('key')).to.equal(false);
        expect(await cache.get('key')).to.equal(undefined);
      });

      it('hasKey is true for stored keys only', async function () {
        await cache.set('key', 0);
        expect(await cache.hasKey('key')).to.equal(true);
        expect(await cache.hasKey('absent')).to.equal(false);
      });

      it('clear removes every entry', async function () {
        await cache.setMany({ a: 1, b: 2 });
        await cache.clear();
        expect(await cache.getMany(['a', 'b'])).to.deep.equal({});
      });
    });

    describe('incr and decr', function () {
      it('add a delta, which may be negative, and return the new value', async function () {
        await cache.set('n', 1);
        expect(await cache.incr('n')).to.equal(2);
        expect(await cache.incr('n', 10)).to.equal(12);
        expect(await cache.incr('n', -2)).to.equal(10);
        expect(await cache.decr('n')).to.equal(9);
        expect(await cache.decr('n', 5)).to.equal(4);
        expect(await cache.get('n')).to.equal(4);
      });

      it("reject a missing key with a KeyNotFoundError: Key '<key>' not found", async function () {
        // One at a time: a second call started beside the first could reject before it is awaited.
        for (const attempt of [() => cache.incr('absent'), () => cache.decr('absent')]) {
          const error = await rejectionOf(attempt());
          expect(error).to.be.instanceOf(KeyNotFoundError);
          expect(error).to.include({ message: "Key 'absent' not found", key: 'absent' });
        }
      });

      it('reject a value that is not a number with one TypeError, leaving it as it was', async function () {
        await cache.set('text', 'abc');
        const error = await rejectionOf(cache.incr('text'));
        expect(error).to.be.instanceOf(TypeError);
        expect(error.message).to.equal("Cannot increment key 'text': its value is not a number");
        expect(await cache.get('text')).to.equal('abc');
      });

      it('reject a delta that is not an integer before touching the entry', async function () {
        await cache.set('n', 1);
        for (const delta of [1.5, Number.NaN, Number.POSITIVE_INFINITY, '1' as unknown as number]) {
          const error = await rejectionOf(cache.incr('n', delta));
          expect(error).to.be.instanceOf(TypeError);
          expect(error.message).to.equal(`The delta of incr and decr must be an integer, not ${String(delta)}`);
          expect((await rejectionOf(cache.decr('n', delta))).message).to.equal(error.message);
        }
        expect(await cache.get('n')).to.equal(1);
      });

      it('keep the expiry of the entry', async function () {
        await cache.set('n', 1, { timeout: short });
        expect(await cache.incr('n')).to.equal(2);
        await waitForExpiry();
        expect(await cache.get('n')).to.equal(undefined);
      });
    });

    describe('versions, prefixes and key functions', function () {
      it('makes keys as keyPrefix:version:key', function () {
        expect(create().makeKey('foo')).to.match(/:1:foo$/);
        expect(create({ keyPrefix: 'pre' }).makeKey('foo', 3)).to.equal('pre:3:foo');
      });

      it('keeps versions apart, with the per-call version overriding the default', async function () {
        const v2 = create({ version: 2 });
        await cache.set('key', 'v1');
        await v2.set('key', 'v2');
        expect(await cache.get('key')).to.equal('v1');
        expect(await v2.get('key')).to.equal('v2');
        expect(await cache.get('key', { version: 2 })).to.equal('v2');
        expect(await v2.get('key', { version: 1 })).to.equal('v1');
        await cache.set('other', 'x', { version: 5 });
        expect(await cache.hasKey('other')).to.equal(false);
        expect(await cache.getMany(['other'], { version: 5 })).to.deep.equal({ other: 'x' });
      });

      it('keeps caches with different key prefixes apart on one store', async function () {
        const prefixed = create({ keyPrefix: 'other' });
        await cache.set('key', 'plain');
        await prefixed.set('key', 'prefixed');
        expect(await cache.get('key')).to.equal('plain');
        expect(await prefixed.get('key')).to.equal('prefixed');
        await prefixed.delete('key');
        expect(await cache.get('key')).to.equal('plain');
      });

      it('keeps caches with different key functions apart', async function () {
        const custom = create({ keyFunction: (key, prefix, version) => `custom-${prefix}-${version}-${key}` });
        expect(custom.makeKey('key')).to.equal('custom--1-key');
        await cache.set('key', 'default');
        await custom.set('key', 'custom');
        expect(await cache.get('key')).to.equal('default');
        expect(await custom.get('key')).to.equal('custom');
      });

      it('incrVersion moves the value to the next version and returns it', async function () {
        await cache.set('key', 'value');
        expect(await cache.incrVersion('key')).to.equal(2);
        expect(await cache.get('key')).to.equal(undefined);
        expect(await cache.get('key', { version: 2 })).to.equal('value');
        expect(await cache.incrVersion('key', 3, { version: 2 })).to.equal(5);
        expect(await cache.decrVersion('key', 4, { version: 5 })).to.equal(1);
        expect(await cache.get('key')).to.equal('value');
      });

      it('incrVersion works for a stored null and rejects a missing key', async function () {
        await cache.set('nothing', null);
        expect(await cache.incrVersion('nothing')).to.equal(2);
        expect(await cache.get('nothing', { version: 2 })).to.equal(null);
        expect((await rejectionOf(cache.incrVersion('absent'))).message).to.equal("Key 'absent' not found");
        expect((await rejectionOf(cache.decrVersion('absent'))).message).to.equal("Key 'absent' not found");
      });
    });

    describe('key validation', function () {
      const long = 'a'.repeat(250);
      const badKeys = ['with space', 'tab\there', 'del\x7f'];
      const tooLong = (key: string) => `Cache key will cause errors if used with memcached: '${cache.makeKey(key)}' (longer than 250)`;
      const badCharacters = (key: string) => `Cache key contains characters that will cause errors if used with memcached: '${cache.makeKey(key)}'`;
      const expectedProblems = () => [tooLong(long), ...badKeys.map(badCharacters)];
      const longWithSpace = 'a b'.repeat(100);

      if (target.strictKeys) {
        it('refuses keys memcached cannot store with InvalidCacheKeyError, naming the made key', async function () {
          const attempts = [cache.set(long, 1), cache.get(badKeys[0]!), cache.hasKey(badKeys[1]!), cache.delete(badKeys[2]!)];
          const errors = await Promise.all(attempts.map((attempt) => rejectionOf(attempt)));
          expect(errors.every((error) => error instanceof InvalidCacheKeyError)).to.equal(true);
          expect(errors.map((error) => error.message)).to.deep.equal(expectedProblems());
          expect((await rejectionOf(cache.set(longWithSpace, 1))).message).to.equal(tooLong(longWithSpace));
        });
      } else {
        it('warns about keys memcached would refuse, naming the made key', async function () {
          const warnings = await cacheKeyWarnings(async () => {
            await cache.set(long, 1);
            await cache.get(badKeys[0]!);
            await cache.hasKey(badKeys[1]!);
            await cache.delete(badKeys[2]!);
          });
          expect(warnings).to.deep.equal(expectedProblems());
        });

        it('warns about each problem of a key that has two, as Django does', async function () {
          const warnings = await cacheKeyWarnings(() => cache.set(longWithSpace, 1));
          expect(warnings).to.deep.equal([tooLong(longWithSpace), badCharacters(longWithSpace)]);
        });
      }

      it('accepts non-ASCII keys without a warning', async function () {
        expect(await cacheKeyWarnings(() => cache.set('ключ-日本-é', 1))).to.deep.equal([]);
        expect(await cache.get('ключ-日本-é')).to.equal(1);
      });
    });
  });
}
