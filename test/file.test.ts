import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, truncateSync, utimesSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileBasedCache, type CullingOptions } from 'fragcache';
import { describeConformance } from './conformance.js';
import { SOURCES } from './helpers.js';
import { describeTagRoundTrip } from './tag-round-trip.js';

const directories: string[] = [];
function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), 'fragcache-file-test-'));
  directories.push(dir);
  return dir;
}
after(function () {
  for (const dir of directories) rmSync(dir, { recursive: true, force: true });
});

const conformanceDir = join(scratch(), 'cache');
describeConformance('file', {
  create: (overrides) => new FileBasedCache(conformanceDir, { ...overrides }),
  shortTimeout: 0.15,
  expiryWaitMs: 300,
});

describeTagRoundTrip('file', () => ({ backend: 'file', location: join(scratch(), 'tags') }));

describe('file specifics', function () {
  const cacheIn = (dir: string, options?: CullingOptions) => new FileBasedCache(dir, { options });
  const fileOf = (dir: string, cache: FileBasedCache, key: string) =>
    join(dir, createHash('md5').update(cache.makeKey(key)).digest('hex') + '.fragcache');

  it('leaves the mode of an existing directory alone, and does not follow a symlinked location to change it', async function () {
    const shared = join(scratch(), 'shared-tmp');
    mkdirSync(shared);
    chmodSync(shared, 0o1777);
    await cacheIn(shared).set('key', 'value');
    expect(statSync(shared).mode & 0o7777).to.equal(0o1777);
    const link = join(scratch(), 'link');
    symlinkSync(shared, link);
    await cacheIn(link).set('other', 'value');
    expect(lstatSync(link).isSymbolicLink()).to.equal(true);
    expect(statSync(shared).mode & 0o7777).to.equal(0o1777);
  });

  it('removes temporary files that dead writers left: a minute old by the cull, all by clear()', async function () {
    const dir = scratch();
    const cache = cacheIn(dir);
    await cache.set('first', 1);
    const abandoned = join(dir, '.0123456789abcdef.tmp');
    const recent = join(dir, '.fedcba9876543210.tmp');
    writeFileSync(abandoned, 'half a write');
    writeFileSync(recent, 'a write under way');
    const twoMinutesAgo = new Date(Date.now() - 120_000);
    utimesSync(abandoned, twoMinutesAgo, twoMinutesAgo);
    await cache.set('second', 2);
    expect(readdirSync(dir).filter((name) => name.endsWith('.tmp'))).to.deep.equal(['.fedcba9876543210.tmp']);
    await cache.clear();
    expect(readdirSync(dir)).to.deep.equal([]);
  });

  it('creates the directory 0700 and its files 0600', async function () {
    const dir = join(scratch(), 'nested', 'cache');
    const cache = cacheIn(dir);
    await cache.set('key', 'value');
    expect(statSync(dir).mode & 0o777).to.equal(0o700);
    expect(statSync(fileOf(dir, cache, 'key')).mode & 0o777).to.equal(0o600);
  });

  it('names each file by the MD5 of the made key and compresses the value', async function () {
    const dir = scratch();
    const cache = cacheIn(dir);
    const big = 'repetitive '.repeat(10_000);
    await cache.set('key', big);
    expect(statSync(fileOf(dir, cache, 'key')).size).to.be.lessThan(big.length / 10);
  });

  for (const [damage, spoil] of [
    ['empty', (path: string) => writeFileSync(path, '')],
    ['truncated', (path: string) => truncateSync(path, statSync(path).size - 5)],
    ['corrupt', (path: string) => writeFileSync(path, 'fragcache/1 never\nnot deflate data')],
    ['foreign', (path: string) => writeFileSync(path, readFileSync(path).subarray(3))],
  ] as const) {
    it(`reads an ${damage} file as a miss and deletes it`, async function () {
      const dir = scratch();
      const cache = cacheIn(dir);
      await cache.set('key', { some: 'value'.repeat(20) });
      const path = fileOf(dir, cache, 'key');
      spoil(path);
      expect(await cache.get('key')).to.equal(undefined);
      expect(() => statSync(path)).to.throw();
      await cache.set('key', 'works again');
      expect(await cache.get('key')).to.equal('works again');
    });
  }

  it('clear deletes only cache files, not other files in the directory', async function () {
    const dir = scratch();
    const cache = cacheIn(dir);
    writeFileSync(join(dir, 'README.txt'), 'not a cache file');
    await cache.setMany({ a: 1, b: 2 });
    await cache.clear();
    expect(readdirSync(dir)).to.deep.equal(['README.txt']);
  });

  it('culls floor(n / cullFrequency) files once there are maxEntries, or all with 0', async function () {
    const dir = scratch();
    const cache = cacheIn(dir, { maxEntries: 9, cullFrequency: 3 });
    for (let i = 0; i < 9; i++) await cache.set(`k${i}`, i);
    await cache.set('new', 'x');
    expect(readdirSync(dir)).to.have.length(7);
    const clearing = cacheIn(scratch(), { maxEntries: 5, cullFrequency: 0 });
    for (let i = 0; i < 5; i++) await clearing.set(`k${i}`, i);
    await clearing.set('new', 'x');
    expect(Object.keys(await clearing.getMany(['k0', 'k1', 'k2', 'k3', 'k4', 'new']))).to.deep.equal(['new']);
  });

  it('stays consistent with several processes writing the same keys at once', async function () {
    this.timeout(60_000);
    const dir = scratch();
    const writers = [1, 2, 3].map(
      (writer) =>
        new Promise<number>((resolve) => {
          const child = spawn(process.execPath, [...SOURCES, 'test/fixtures/file-writer.mjs', dir, String(writer), '30'], { stdio: 'inherit' });
          child.on('exit', (code) => resolve(code ?? 1));
        }),
    );
    const reader = cacheIn(dir);
    let reads = 0;
    const finished = Promise.all(writers);
    let done = false;
    void finished.then(() => (done = true));
    while (!done) {
      const value = await reader.get<{ writer: string; payload: string }>(`shared-${reads % 10}`);
      if (value !== undefined) expect(value.payload).to.equal(`${value.writer}:`.repeat(5000));
      reads += 1;
    }
    expect(await finished).to.deep.equal([0, 0, 0]);
    const values = await reader.getMany(Array.from({ length: 10 }, (_, i) => `shared-${i}`));
    expect(Object.keys(values)).to.have.length(10);
    expect(readdirSync(dir).filter((name) => name.endsWith('.tmp'))).to.deep.equal([]);
    expect(reads).to.be.greaterThan(0);
  });
});
