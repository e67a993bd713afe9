/**
 * `npm run bench`: every scenario in one run on this machine, with the servers started as the test
 * suite starts them. Prints the tables, writes bench/results/latest.json, docs/benchmarks.svg and the
 * results part of docs/benchmarks.md.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import type { CacheConfig } from 'fragcache';
import { memcachedServers, postgresServer, redisServers, startRedis, stopServers } from '../servers/index.js';
import { backendOperations, type OperationResult } from './backend-ops.js';
import { fragmentHit, type FragmentResult } from './fragment-hit.js';
import { importTimes, type ImportResult } from './import-time.js';
import { formatRate, printTable } from './measure.js';
import { locmemMemory, type MemoryResult, type MemorySample } from './memory.js';
import { invalidationLatency, nearGets, nearMemory, type InvalidationResult, type NearGetResult, type NearMemoryResult } from './near-cache.js';
import { redisOutage, type OutageResult } from './outage.js';
import { pageCaching, type PageCacheResult } from './page-cache.js';
import { coldStampede, type StampedeResult } from './stampede.js';

interface Results {
  date: string;
  machine: string;
  fragments: FragmentResult[];
  operations: OperationResult[];
  stampede: StampedeResult[];
  outage: OutageResult[];
  pages: PageCacheResult[];
  near: { gets: NearGetResult; invalidation: InvalidationResult; memory: NearMemoryResult };
  memory: MemoryResult;
  imports: ImportResult[];
}

/** Two decimals for ratios near 1, whole numbers for large ones (a hit is ~2 000× a miss). */
function ratio(a: number, b: number): string {
  const value = a / b;
  return value >= 100 ? Math.round(value).toLocaleString('en-US') : value.toFixed(2);
}

function machine(): string {
  const cpu = cpus();
  return `${cpu.length} × ${cpu[0]?.model.trim() ?? 'unknown CPU'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
}

function fragmentRows(results: FragmentResult[]): string[][] {
  return results.map((r) => [
    `${r.engine} ${r.mode} · ${r.backend}`,
    formatRate(r.missPerSecond),
    formatRate(r.hitPerSecond),
    formatRate(r.staticPerSecond),
    ratio(r.hitPerSecond, r.staticPerSecond),
    ratio(r.hitPerSecond, r.missPerSecond),
  ]);
}
const FRAGMENT_HEADER = ['page (engine, mode, cache)', 'no block/s', 'hit/s', 'static/s', 'hit ÷ static', 'hit ÷ miss'];

function operationRows(results: OperationResult[]): string[][] {
  return results.map((r) => [`${r.backend} ${r.operation}`, formatRate(r.oursPerSecond), formatRate(r.rawPerSecond), ratio(r.oursPerSecond, r.rawPerSecond)]);
}
const OPERATION_HEADER = ['operation', 'fragcache/s', 'raw client/s', 'ratio'];

function stampedeRows(results: StampedeResult[]): string[][] {
  return results.map((r) => [r.backend, String(r.renders), String(r.bodyExecutions), r.milliseconds.toFixed(0)]);
}
const STAMPEDE_HEADER = ['cache', 'concurrent renders', 'body executions', 'total ms'];

function outageRows(results: OutageResult[]): string[][] {
  return results.map((r) => [r.state, String(r.renders), String(r.failed), formatRate(r.perSecond), r.p50.toFixed(3), r.p99.toFixed(3)]);
}
const OUTAGE_HEADER = ['Nunjucks renderAsync, one block', 'renders', 'failed', 'renders/s', 'p50 ms', 'p99 ms'];

function pageRows(results: PageCacheResult[]): string[][] {
  const uncached = (framework: string) => results.find((r) => r.framework === framework && r.cache === 'none')!.requestsPerSecond;
  return results.map((r) => [
    r.cache === 'none' ? `${r.framework}, no cache` : `${r.framework} + page cache, ${r.cache}`,
    formatRate(r.requestsPerSecond),
    ratio(r.requestsPerSecond, uncached(r.framework)),
    String(r.p50),
    String(r.p99),
  ]);
}
const PAGE_HEADER = ['server (10 connections)', 'requests/s', '× no cache', 'p50 ms', 'p99 ms'];

function memoryRows(memory: MemoryResult): string[][] {
  const stages: Array<[string, MemorySample]> = [
    ['before', memory.baseline],
    [`after filling (${memory.maxEntries.toLocaleString('en-US')} keys)`, memory.afterFill],
    ...memory.afterChurn.map((sample): [string, MemorySample] => [`after ${sample.extraKeys.toLocaleString('en-US')} more distinct keys`, sample]),
  ];
  return stages.map(([stage, sample]) => [stage, sample.heapUsedMiB.toFixed(1), sample.rssMiB.toFixed(1)]);
}
const MEMORY_HEADER = ['locmem', 'live heap MiB', 'resident MiB'];

const NEAR_TARGET_HEADER = ['near cache in front of Redis', 'measured', 'target'];

function nearTargetRows(fragments: FragmentResult[], near: Results['near']): string[][] {
  const hit = (engine: string, backend: string) => fragments.find((r) => r.engine === engine && r.mode === 'renderAsync' && r.backend === backend)!.hitPerSecond;
  const { gets, invalidation } = near;
  return [
    ['Nunjucks renderAsync hit, near ÷ locmem', ratio(hit('nunjucks', NEAR), hit('nunjucks', 'locmem')), '≥ 0.5'],
    ['Eta renderAsync hit, near ÷ locmem', ratio(hit('eta', NEAR), hit('eta', 'locmem')), '≥ 0.5'],
    ['Nunjucks renderAsync hit, near ÷ plain Redis', ratio(hit('nunjucks', NEAR), hit('nunjucks', 'redis')), ''],
    ['get, near ÷ locmem', ratio(gets.near, gets.locmem), '≥ 0.5'],
    ['get, near ÷ bentocache L1+L2', ratio(gets.near, gets.bentocache), '≥ 10'],
    [`invalidation in another process, p50 / p99 / max ms (${invalidation.writes} writes)`, [invalidation.p50, invalidation.p99, invalidation.max].map((ms) => ms.toFixed(2)).join(' / '), 'p99 ≤ 50'],
  ];
}

const NEAR_GET_HEADER = ['get, one key, side by side', 'gets/s'];

function nearGetRows({ gets }: Results['near']): string[][] {
  return [
    ['locmem', formatRate(gets.locmem)],
    ['Redis with near cache', formatRate(gets.near)],
    ['Redis', formatRate(gets.redis)],
    ['bentocache (memory L1 + Redis L2 + bus)', formatRate(gets.bentocache)],
  ];
}

const NEAR_MEMORY_HEADER = ['distinct keys read', 'live heap MiB', 'entries held'];

function nearMemoryRows({ memory }: Results['near']): string[][] {
  return memory.samples.map((s) => [s.keys.toLocaleString('en-US'), s.heapUsedMiB.toFixed(1), s.entries.toLocaleString('en-US')]);
}

/** The name of the near-cached Redis in the fragment results. */
const NEAR = 'redis (near cache)';

function markdownTable(header: string[], rows: string[][]): string {
  return [`| ${header.join(' | ')} |`, `|${header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`, ...rows.map((row) => `| ${row.join(' | ')} |`)].join('\n');
}

/** A grouped bar chart of renders/s (log scale): no block, hit and static, for each page. */
function chart(results: FragmentResult[]): string {
  const series = [
    { name: 'no cache block (miss cost)', color: '#d9534f', value: (r: FragmentResult) => r.missPerSecond },
    { name: 'warm cache block (hit)', color: '#2e7d32', value: (r: FragmentResult) => r.hitPerSecond },
    { name: 'static HTML (floor)', color: '#607d8b', value: (r: FragmentResult) => r.staticPerSecond },
  ];
  const barHeight = 12;
  const groupHeight = barHeight * series.length + 14;
  const left = 230;
  const width = 820;
  const plot = width - left - 90;
  const top = 40;
  const height = top + results.length * groupHeight + 40;
  const max = Math.max(...results.flatMap((r) => series.map((s) => s.value(r))));
  const min = Math.min(...results.flatMap((r) => series.map((s) => s.value(r))));
  const low = Math.log10(Math.max(1, min / 2));
  const scale = (v: number) => ((Math.log10(v) - low) / (Math.log10(max) - low)) * plot;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<text x="10" y="18" font-size="14" font-weight="bold">Renders per second of a page with a 200-item fragment (log scale)</text>`,
  ];
  series.forEach((s, i) => {
    parts.push(`<rect x="${left + i * 190}" y="${top - 14}" width="10" height="10" fill="${s.color}"/><text x="${left + i * 190 + 14}" y="${top - 5}">${s.name}</text>`);
  });
  results.forEach((r, g) => {
    const y0 = top + 8 + g * groupHeight;
    parts.push(`<text x="${left - 8}" y="${y0 + barHeight * 1.8}" text-anchor="end">${r.engine} ${r.mode} · ${r.backend}</text>`);
    series.forEach((s, i) => {
      const value = s.value(r);
      const y = y0 + i * barHeight;
      const w = Math.max(1, scale(value));
      parts.push(`<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${barHeight - 2}" fill="${s.color}"/>`);
      parts.push(`<text x="${left + w + 4}" y="${y + barHeight - 3}">${formatRate(value)}</text>`);
    });
  });
  parts.push('</svg>');
  return parts.join('\n');
}

const IMPORT_HEADER = ['import()', 'median ms', '× lru-cache'];

function importRows(results: ImportResult[]): string[][] {
  const lru = results.find((r) => r.module === 'lru-cache')!.medianMs;
  return results.map((r) => [r.module, r.medianMs.toFixed(1), (r.medianMs / lru).toFixed(1)]);
}

function report(results: Results): string {
  const headline = results.fragments.find((r) => r.engine === 'nunjucks' && r.mode === 'render (sync)' && r.backend === 'locmem');
  return [
    `Measured on ${results.date.slice(0, 10)}: ${results.machine}.`,
    '',
    headline ? `Headline: a Nunjucks page with a warm cache block renders ${ratio(headline.hitPerSecond, headline.missPerSecond)}× faster than without it, at ${ratio(headline.hitPerSecond, headline.staticPerSecond)}× the speed of the same page as static HTML.` : '',
    '',
    '### Fragment hit, per engine',
    '',
    markdownTable(FRAGMENT_HEADER, fragmentRows(results.fragments)),
    '',
    '![renders per second](benchmarks.svg)',
    '',
    '### Backend operations against the raw client',
    '',
    markdownTable(OPERATION_HEADER, operationRows(results.operations)),
    '',
    '### Cold stampede',
    '',
    markdownTable(STAMPEDE_HEADER, stampedeRows(results.stampede)),
    '',
    '### Outage: Redis killed',
    '',
    'The same page while its Redis is up, without the cache block, and after the Redis is SIGKILLed: the',
    'block fails open, so the page renders as if uncached, with no wait for the dead server.',
    '',
    markdownTable(OUTAGE_HEADER, outageRows(results.outage)),
    '',
    '### Whole pages over HTTP',
    '',
    'One page (a 200-item Nunjucks list) served by a server in its own process, driven by autocannon for',
    '4 s with 10 connections after a 1 s warm-up: without a cache every request runs the handler; with the',
    'page cache every request after the first is a hit.',
    '',
    markdownTable(PAGE_HEADER, pageRows(results.pages)),
    '',
    '### Near cache in front of Redis',
    '',
    'The same pages and gets on a Redis with `nearCache` (docs/backends/redis.md), side by side with locmem,',
    'plain Redis and bentocache\'s two-tier cache; the latency of an invalidation from the write\'s',
    'acknowledgement in one process to its near cache dropping the key in another; and the live heap of a',
    `process reading ${results.near.memory.samples.at(-1)!.keys.toLocaleString('en-US')} distinct ${results.near.memory.fragmentBytes}-byte fragments through a near cache of maxBytes ${results.near.memory.maxBytes / 2 ** 20} MiB.`,
    '',
    markdownTable(NEAR_TARGET_HEADER, nearTargetRows(results.fragments, results.near)),
    '',
    markdownTable(NEAR_GET_HEADER, nearGetRows(results.near)),
    '',
    markdownTable(NEAR_MEMORY_HEADER, nearMemoryRows(results.near)),
    '',
    '### Memory (locmem)',
    '',
    `maxEntries ${results.memory.maxEntries.toLocaleString('en-US')}, ${results.memory.fragmentBytes}-byte fragments, each a distinct string. ` +
      'The live heap is what culling bounds; V8 keeps some freed pages resident.',
    '',
    markdownTable(MEMORY_HEADER, memoryRows(results.memory)),
    '',
    '### Start-up: importing the package',
    '',
    'Each entry point imported in a fresh Node process (median of 15, taking turns). Client libraries',
    '(ioredis, memjs, pg) load only when a cache of their kind is created, so they cost nothing here.',
    '',
    markdownTable(IMPORT_HEADER, importRows(results.imports)),
  ].join('\n');
}

const RESULTS_START = '<!-- results: written by npm run bench -->';
const RESULTS_END = '<!-- end of results -->';

async function main(): Promise<void> {
  const [redis, memcached, postgres] = await Promise.all([redisServers(), memcachedServers(), postgresServer()]);
  try {
    const locations = { redis: redis.url, memcached: memcached[0]!, postgres: postgres.connectionString };
    const fragmentBackends = { locmem: { backend: 'locmem', location: 'bench-fragments' }, redis: { backend: 'redis', location: redis.url } } satisfies CacheConfig;

    const fragments = await fragmentHit({ ...fragmentBackends, [NEAR]: { backend: 'redis', location: redis.url, keyPrefix: 'near', options: { nearCache: true } } });
    printTable('Fragment hit (renders/s)', FRAGMENT_HEADER, fragmentRows(fragments));
    const operations = await backendOperations(locations);
    printTable('Backend operations (ops/s)', OPERATION_HEADER, operationRows(operations));
    const stampede = await coldStampede(fragmentBackends);
    printTable('Cold stampede', STAMPEDE_HEADER, stampedeRows(stampede));
    const outage = await redisOutage(await startRedis('redis-outage'));
    printTable('Outage: Redis killed', OUTAGE_HEADER, outageRows(outage));
    const pages = await pageCaching(redis.url);
    printTable('Whole pages over HTTP', PAGE_HEADER, pageRows(pages));
    const near = { gets: await nearGets(redis.url), invalidation: await invalidationLatency(redis.url), memory: nearMemory(redis.url) };
    printTable('Near cache in front of Redis', NEAR_TARGET_HEADER, nearTargetRows(fragments, near));
    printTable('Near cache: get', NEAR_GET_HEADER, nearGetRows(near));
    printTable('Near cache: memory', NEAR_MEMORY_HEADER, nearMemoryRows(near));
    const memory = locmemMemory();
    printTable('Memory', MEMORY_HEADER, memoryRows(memory));
    const imports = importTimes();
    printTable('Start-up: import()', IMPORT_HEADER, importRows(imports));

    const results: Results = { date: new Date().toISOString(), machine: machine(), fragments, operations, stampede, outage, pages, near, memory, imports };
    mkdirSync('bench/results', { recursive: true });
    writeFileSync('bench/results/latest.json', `${JSON.stringify(results, null, 2)}\n`);
    writeFileSync('docs/benchmarks.svg', `${chart(fragments)}\n`);
    const doc = readFileSync('docs/benchmarks.md', 'utf8');
    const start = doc.indexOf(RESULTS_START);
    const end = doc.indexOf(RESULTS_END);
    if (start !== -1 && end > start) {
      writeFileSync('docs/benchmarks.md', `${doc.slice(0, start + RESULTS_START.length)}\n${report(results)}\n${doc.slice(end)}`);
    }
    console.log('\nWrote bench/results/latest.json, docs/benchmarks.svg and the results in docs/benchmarks.md');
  } finally {
    await stopServers();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
