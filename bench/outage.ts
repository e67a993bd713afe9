/**
 * Scenario 4: renders while Redis is up, then after it is SIGKILLed. A fragment cache must degrade to
 * "no cache": the renders keep succeeding, at about the speed of the page without a cache, and none
 * waits for the dead server.
 */
import { performance } from 'node:perf_hooks';
import { CacheRegistry } from 'fragcache';
import { CacheExtension, renderStringAsync } from 'fragcache/nunjucks';
import nunjucks from 'nunjucks';
import type { RestartableServer } from '../servers/index.js';

export interface OutageResult {
  state: string;
  renders: number;
  failed: number;
  perSecond: number;
  p50: number;
  p99: number;
}

const PAGE = '<ul>{% cache 600 list n %}{% for i in items %}<li>{{ i }} of {{ n }}</li>{% endfor %}{% endcache %}</ul>';
const items = Array.from({ length: 300 }, (_, i) => `item ${i}`);

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

async function measure(state: string, render: (n: number) => Promise<string>, renders: number): Promise<OutageResult> {
  const latencies: number[] = [];
  let failed = 0;
  const started = performance.now();
  for (let i = 0; i < renders; i++) {
    const before = performance.now();
    try {
      await render(i % 20);
    } catch {
      failed++;
    }
    latencies.push(performance.now() - before);
  }
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { state, renders, failed, perSecond: renders / seconds, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99) };
}

export async function redisOutage(redis: RestartableServer, renders = 5000): Promise<OutageResult[]> {
  const caches = new CacheRegistry({ default: { backend: 'redis', location: `redis://127.0.0.1:${redis.port}` } });
  // Outages are measured here, not reported.
  caches.on('incident', () => undefined);
  caches.on('recovery', () => undefined);
  const env = new nunjucks.Environment(null);
  env.addExtension('CacheExtension', new CacheExtension({ caches, async: true }));
  const render = (n: number) => renderStringAsync(env, PAGE, { n, items });
  const uncached = new nunjucks.Environment(null);
  const renderUncached = async (n: number) => uncached.renderString(PAGE.replace(/\{% (end)?cache[^%]*%\}/g, ''), { n, items });
  await measure('warm-up', render, 200);
  const results = [
    await measure('Redis up (hits)', render, renders),
    await measure('no cache block at all', renderUncached, renders),
  ];
  await redis.stop();
  results.push(await measure('Redis SIGKILLed (fail-open)', render, renders));
  await caches.close();
  return results;
}
