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
import { CLI, sleep } from './helpers.js';

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

    it('createcachetable creates missing tables, leaves existing ones, and prints SQL with --dry-run', async function () {
      const dir = mkdtempSync(join(tmpdir(), 'fragcache-cli-'));
      try {
        const config = join(dir, 'caches.json');
        writeFileSync(
          config,
          JSON.stringify({
            default: { backend: 'locmem' },
            pages: { backend: 'database', location: 'cli_pages', options: { client: { connectionString } } },
            'odd"name': { backend: 'database', location: 'cli odd"table', options: { client: { connectionString } } },
          }),
        );
        const cli = (...args: string[]) => run(process.execPath, [...CLI, 'createcachetable', '--config', config, ...args]);
        const dry = await cli('--dry-run');
        expect(dry.stdout).to.include('CREATE TABLE IF NOT EXISTS "cli_pages"');
        expect(dry.stdout).to.include('CREATE TABLE IF NOT EXISTS "cli odd""table"');
        expect(await sql(`SELECT to_regclass('cli_pages') AS t`)).to.deep.equal([{ t: null }]);

        expect((await cli()).stdout).to.equal("Cache table 'cli_pages' created.\nCache table 'cli odd\"table' created.\n");
        await sql(`INSERT INTO cli_pages VALUES ('kept', 'x', NULL)`);
        expect((await cli()).stdout).to.equal("Cache table 'cli_pages' already exists.\nCache table 'cli odd\"table' already exists.\n");
        expect(await sql(`SELECT cache_key FROM cli_pages`)).to.deep.equal([{ cache_key: 'kept' }]);
        expect((await cli('--dry-run')).stdout).to.equal('');

        const usage = await run(process.execPath, [...CLI, 'nonsense']).catch((error: { code: number; stderr: string }) => error);
        expect(usage).to.include({ code: 2 });
      } finally {
        rmSync(dir, { recursive: true, force: true });
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
