import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { CacheRegistry, DatabaseCache, type CacheParams, type DatabaseBackendOptions } from 'fragcache';
import { describeConformance } from './conformance.js';
import { postgresServer } from '../servers/index.js';
import { describeTagRoundTrip } from './tag-round-trip.js';
import { CLI, rejectionOf, sleep } from './helpers.js';

const run = promisify(execFile);

describe('database', function () {
  this.timeout(60_000);
  let connectionString: string;
  const databaseCache = (table: string, params: CacheParams<DatabaseBackendOptions> = {}) =>
    new DatabaseCache(table, { ...params, options: { ...params.options, client: { connectionString, ...params.options?.client } } });

  before(async function () {
    ({ connectionString } = await postgresServer());
    for (const table of ['conformance_cache', 'tag_cache']) {
      const cache = databaseCache(table);
      await cache.createTable();
      await cache.close();
    }
  });

  describeConformance('database', {
    create: (overrides) => databaseCache('conformance_cache', overrides ?? {}),
    shortTimeout: 0.15,
    expiryWaitMs: 300,
  });

  describeConformance('database (near cache)', {
    create: (overrides) => databaseCache('conformance_cache', { ...overrides, options: { nearCache: true } }),
    shortTimeout: 0.15,
    expiryWaitMs: 300,
  });

  describeTagRoundTrip('database', () => ({ backend: 'database', location: 'tag_cache', options: { client: { connectionString } } }));

  describe('database specifics', function () {
    const opened: Array<DatabaseCache | pg.Client> = [];
    const cache = (table: string, params: CacheParams<DatabaseBackendOptions> = {}) => {
      const made = databaseCache(table, params);
      opened.push(made);
      return made;
    };
    const sql = async (text: string, values: unknown[] = []) => {
      const client = new pg.Client({ connectionString });
      opened.push(client);
      await client.connect();
      return (await client.query(text, values)).rows;
    };
    afterEach(async function () {
      await Promise.all(opened.splice(0).map((made) => (made instanceof DatabaseCache ? made.close() : made.end())));
    });

    describe('fragcache createcachetable', function () {
      let dir: string;
      beforeEach(function () {
        dir = mkdtempSync(join(tmpdir(), 'fragcache-cli-'));
      });
      afterEach(function () {
        rmSync(dir, { recursive: true, force: true });
      });
      const cli = (...args: string[]) => run(process.execPath, [...CLI, ...args]);
      /** A run that must fail: its exit code and output. */
      const failure = (...args: string[]) =>
        cli(...args).then(
          () => expect.fail('the command succeeded'),
          (error: { code: number; stderr: string }) => error,
        );

      it('creates missing tables, leaves existing ones, and says when there is nothing to do', async function () {
        const config = join(dir, 'caches.json');
        writeFileSync(
          config,
          JSON.stringify({
            default: { backend: 'locmem' },
            pages: { backend: 'database', location: 'cli_pages', options: { client: { connectionString } } },
            'odd"name': { backend: 'database', location: 'cli odd"table', options: { client: { connectionString } } },
          }),
        );
        expect((await cli('createcachetable', '--config', config)).stdout).to.equal("Cache table 'cli_pages' created.\nCache table 'cli odd\"table' created.\n");
        await sql(`INSERT INTO cli_pages VALUES ('kept', 'x', NULL)`);
        expect((await cli('createcachetable', '--config', config)).stdout).to.equal(
          'Every cache table already exists (cli_pages, cli odd"table): nothing to do.\n',
        );
        expect(await sql(`SELECT cache_key FROM cli_pages`)).to.deep.equal([{ cache_key: 'kept' }]);
      });

      it('prints the SQL with --dry-run without connecting, from a .mjs config', async function () {
        const config = join(dir, 'caches.mjs');
        // Nothing listens on port 1: a connection attempt would fail.
        writeFileSync(
          config,
          `export default { default: { backend: 'database', location: 'dry_run', options: { client: { connectionString: 'postgresql://nobody@127.0.0.1:1/none' } } } };`,
        );
        expect((await cli('createcachetable', '--config', config, '--dry-run')).stdout).to.equal(
          'CREATE TABLE IF NOT EXISTS "dry_run" (cache_key text PRIMARY KEY, value bytea NOT NULL, expires timestamptz NULL);\n' +
            'CREATE INDEX IF NOT EXISTS "dry_run_expires" ON "dry_run" (expires);\n',
        );
        expect(await sql(`SELECT to_regclass('dry_run') AS t`)).to.deep.equal([{ t: null }]);
      });

      it('explains itself: --help, wrong usage, a config without database caches or without a default export', async function () {
        const help = await cli('--help');
        expect(help.stdout).to.match(/^Usage: fragcache createcachetable --config FILE \[--dry-run\]\n/);
        expect(help.stdout).to.include('--dry-run       print the SQL instead of running it; connects to no database');
        for (const [args, problem] of [
          [['nonsense'], "Unknown command 'nonsense'"],
          [['createcachetable'], 'createcachetable needs --config FILE'],
          [[], 'No command given'],
        ] as const) {
          const usage = await failure(...args);
          expect(usage.code).to.equal(2);
          expect(usage.stderr).to.match(new RegExp(`^fragcache: ${problem}\\.\\n\\nUsage: fragcache createcachetable`));
        }
        writeFileSync(join(dir, 'memory.cjs'), `module.exports = { default: { backend: 'locmem' } };`);
        expect((await cli('createcachetable', '--config', join(dir, 'memory.cjs'))).stdout).to.equal('No database caches in the configuration: nothing to do.\n');
        writeFileSync(join(dir, 'named.mjs'), `export const caches = {};`);
        const noDefault = await failure('createcachetable', '--config', join(dir, 'named.mjs'));
        expect(noDefault.code).to.equal(1);
        expect(noDefault.stderr).to.include('has no default export: export the cache configuration as its default');
      });
    });

    it('explains a missing table with the command that creates it', async function () {
      const c = cache('no_such_table');
      for (const attempt of [() => c.get('k'), () => c.set('k', 1)]) {
        const error = await rejectionOf(attempt());
        expect(error.message).to.equal(
          "The cache table 'no_such_table' does not exist: create it with `fragcache createcachetable --config <your cache config>` (relation \"no_such_table\" does not exist)",
        );
      }
    });

    it('purges expired rows when writing', async function () {
      const c = cache('conformance_cache');
      await c.clear();
      await c.set('short', 1, { timeout: 0.1 });
      await sleep(200);
      expect(await sql('SELECT count(*)::int AS n FROM conformance_cache')).to.deep.equal([{ n: 1 }]);
      await c.set('other', 2);
      expect(await sql('SELECT cache_key FROM conformance_cache')).to.deep.equal([{ cache_key: ':1:other' }]);
    });

    it("culls as Django's: floor(n / cullFrequency) rows once full, all with 0", async function () {
      const c = cache('conformance_cache', { options: { maxEntries: 9, cullFrequency: 3 } });
      await c.clear();
      for (let i = 0; i < 9; i++) await c.set(`k${i}`, i);
      await c.set('new', 'x');
      expect(await sql('SELECT count(*)::int AS n FROM conformance_cache')).to.deep.equal([{ n: 7 }]);
      const clearing = cache('conformance_cache', { options: { maxEntries: 5, cullFrequency: 0 } });
      await clearing.clear();
      for (let i = 0; i < 5; i++) await clearing.set(`k${i}`, i);
      await clearing.set('new', 'x');
      expect(await sql('SELECT cache_key FROM conformance_cache')).to.deep.equal([{ cache_key: ':1:new' }]);
    });

    it('increments atomically under concurrency', async function () {
      const c = cache('conformance_cache', { options: { client: { max: 20 } } });
      await c.set('counter', 0);
      await Promise.all(Array.from({ length: 100 }, () => c.incr('counter')));
      expect(await c.get('counter')).to.equal(100);
    });

    it('is created by the registry from its name', async function () {
      const registry = new CacheRegistry({ default: { backend: 'database', location: 'conformance_cache', options: { client: { connectionString } } } });
      await registry.default.set('named', 'value');
      expect(await registry.default.get('named')).to.equal('value');
      await registry.close();
    });
  });
});
