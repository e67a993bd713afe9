#!/usr/bin/env node
/**
 * The `fragcache` command. Today it has one subcommand, Django's createcachetable: it creates the table of
 * every database cache in a configuration, leaving existing tables alone.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { DatabaseCache } from './backends/database.js';
import type { CacheConfig } from './config.js';
import { CacheRegistry, isBuiltinBackend } from './registry.js';

const HELP = `Usage: fragcache createcachetable --config FILE [--dry-run]

Creates the table of every database cache in FILE, leaving tables that exist alone.

  --config FILE   the cache configuration: a .json file, or a .js/.mjs/.cjs module whose default
                  export is the configuration (the object given to caches.configure)
  --dry-run       print the SQL instead of running it; connects to no database
  --help          show this help

Each database cache connects with its options.client (pg Pool options such as connectionString),
else with pg's PG* environment variables.`;

async function loadConfig(file: string): Promise<CacheConfig> {
  const path = resolve(file);
  if (path.endsWith('.json')) return JSON.parse(await readFile(path, 'utf8')) as CacheConfig;
  const module = (await import(pathToFileURL(path).href)) as { default?: CacheConfig };
  if (module.default === undefined) throw new Error(`${file} has no default export: export the cache configuration as its default`);
  return module.default;
}

/**
 * The aliases whose caches may be database caches: the database backend's, and custom backends (which
 * may extend it). Other built-in backends are never created, so the command connects to no cache server.
 */
function candidateAliases(config: CacheConfig): string[] {
  return Object.keys(config).filter((alias) => {
    const { backend } = config[alias]!;
    return backend === 'database' || !isBuiltinBackend(backend);
  });
}

function databaseCachesOf(registry: CacheRegistry, config: CacheConfig): DatabaseCache[] {
  return candidateAliases(config)
    .map((alias) => registry.get(alias))
    .filter((cache): cache is DatabaseCache => cache instanceof DatabaseCache);
}

/** The SQL `createcachetable` would run: from the configuration alone for the database backend (no pg, no connection). */
function printTableSql(registry: CacheRegistry, config: CacheConfig): void {
  for (const alias of candidateAliases(config)) {
    const { backend, location } = config[alias]!;
    const cache = backend === 'database' ? undefined : registry.get(alias);
    if (cache !== undefined && !(cache instanceof DatabaseCache)) continue;
    for (const statement of cache?.tableSql() ?? DatabaseCache.tableSql(location)) console.log(`${statement};`);
  }
}

async function createCacheTables(configFile: string, dryRun: boolean): Promise<void> {
  const config = await loadConfig(configFile);
  const registry = new CacheRegistry(config);
  try {
    if (dryRun) {
      printTableSql(registry, config);
      return;
    }
    const databaseCaches = databaseCachesOf(registry, config);
    if (databaseCaches.length === 0) {
      console.log('No database caches in the configuration: nothing to do.');
      return;
    }
    const existing: string[] = [];
    for (const cache of databaseCaches) {
      const result = await cache.createTable();
      if (result.created) console.log(`Cache table '${result.table}' created.`);
      else existing.push(result.table);
    }
    if (existing.length === databaseCaches.length) console.log(`Every cache table already exists (${existing.join(', ')}): nothing to do.`);
    else for (const table of existing) console.log(`Cache table '${table}' already exists.`);
  } finally {
    await registry.close();
  }
}

/** What is wrong with a command line, if anything. */
function usageProblem(positionals: string[]): string | undefined {
  const [command, extra] = positionals;
  if (command === undefined) return 'No command given';
  if (command !== 'createcachetable') return `Unknown command '${command}'`;
  if (extra !== undefined) return `Unexpected argument '${extra}'`;
  return undefined;
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { config: { type: 'string' }, 'dry-run': { type: 'boolean', default: false }, help: { type: 'boolean', default: false } },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const problem = usageProblem(positionals);
  if (problem !== undefined || values.config === undefined) {
    console.error(`fragcache: ${problem ?? 'createcachetable needs --config FILE'}.\n\n${HELP}`);
    return 2;
  }
  await createCacheTables(values.config, values['dry-run']);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (error: unknown) => {
    console.error(`fragcache: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  },
);
