#!/usr/bin/env node
/**
 * fragcache createcachetable --config FILE [--dry-run]
 *
 * Creates the table of every database cache in a configuration, leaving existing tables alone; with
 * --dry-run, prints the SQL instead. FILE is JSON, or a module whose default export is the CacheConfig.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { DatabaseCache } from './backends/database.js';
import type { CacheConfig } from './config.js';
import { CacheRegistry } from './registry.js';

const USAGE = 'Usage: fragcache createcachetable --config FILE [--dry-run]';

async function loadConfig(file: string): Promise<CacheConfig> {
  const path = resolve(file);
  if (path.endsWith('.json')) return JSON.parse(await readFile(path, 'utf8')) as CacheConfig;
  const module = (await import(pathToFileURL(path).href)) as { default?: CacheConfig };
  if (module.default === undefined) throw new Error(`${file} has no default export`);
  return module.default;
}

async function createCacheTables(configFile: string, dryRun: boolean): Promise<void> {
  const registry = new CacheRegistry(await loadConfig(configFile));
  try {
    const databaseCaches = registry.all().filter((cache): cache is DatabaseCache => cache instanceof DatabaseCache);
    if (databaseCaches.length === 0) console.log('No database caches in the configuration.');
    for (const cache of databaseCaches) {
      const result = await cache.createTable({ dryRun });
      if (dryRun) for (const statement of result.sql) console.log(`${statement};`);
      else if (result.created) console.log(`Cache table '${result.table}' created.`);
      else console.log(`Cache table '${result.table}' already exists.`);
    }
  } finally {
    await registry.close();
  }
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { config: { type: 'string' }, 'dry-run': { type: 'boolean', default: false }, help: { type: 'boolean', default: false } },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (positionals[0] !== 'createcachetable' || positionals.length !== 1 || values.config === undefined) {
    console.error(USAGE);
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
