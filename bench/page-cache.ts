/**
 * Scenario 5: whole pages over HTTP. autocannon drives one page (a 200-item Nunjucks list) on a server in
 * its own process: Express and Fastify with no cache (every request runs the handler), then with the
 * page cache on locmem and on Redis (every request after the first is a hit).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import autocannon from 'autocannon';

export interface PageCacheResult {
  framework: 'Express' | 'Fastify';
  /** The page cache's backend, or none. */
  cache: 'none' | 'locmem' | 'Redis';
  requestsPerSecond: number;
  p50: number;
  p99: number;
}

const VARIANTS: Array<Pick<PageCacheResult, 'framework' | 'cache'>> = (['Express', 'Fastify'] as const).flatMap((framework) =>
  (['none', 'locmem', 'Redis'] as const).map((cache) => ({ framework, cache })),
);

async function measure({ framework, cache }: Pick<PageCacheResult, 'framework' | 'cache'>, redisUrl: string): Promise<PageCacheResult> {
  const variant = cache === 'none' ? framework.toLowerCase() : `${framework}-${cache}`.toLowerCase();
  const server = spawn(process.execPath, ['--import', 'tsx', 'bench/page-server.ts', variant, redisUrl], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const [line] = (await once(server.stdout, 'data')) as [Buffer];
    const url = `http://127.0.0.1:${line.toString().trim()}/`;
    await autocannon({ url, connections: 10, duration: 1 });
    const result = await autocannon({ url, connections: 10, duration: 4 });
    if (result.non2xx > 0 || result.errors > 0) throw new Error(`${variant}: ${result.non2xx} non-2xx answers, ${result.errors} errors`);
    return { framework, cache, requestsPerSecond: result.requests.average, p50: result.latency.p50, p99: result.latency.p99 };
  } finally {
    server.kill();
  }
}

export async function pageCaching(redisUrl: string): Promise<PageCacheResult[]> {
  const results: PageCacheResult[] = [];
  for (const variant of VARIANTS) results.push(await measure(variant, redisUrl));
  return results;
}
