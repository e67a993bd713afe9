/**
 * Scenario 3: 200 concurrent asynchronous renders of one page whose fragment is cold and whose body
 * takes about 20 ms. Reports how often the body ran: once, with the runtime's single flight.
 */
import { Eta } from 'eta';
import { performance } from 'node:perf_hooks';
import { CacheRegistry, type BackendConfig } from 'fragcache';
import { cachePlugin } from 'fragcache/eta';

export interface StampedeResult {
  backend: string;
  renders: number;
  bodyExecutions: number;
  milliseconds: number;
}

export async function coldStampede(backends: Record<string, BackendConfig>, renders = 200): Promise<StampedeResult[]> {
  const results: StampedeResult[] = [];
  for (const [backend, config] of Object.entries(backends)) {
    const caches = new CacheRegistry({ default: config });
    await caches.default.clear();
    const eta = new Eta({ plugins: [cachePlugin({ caches })] });
    let bodyExecutions = 0;
    const slowBody = () =>
      new Promise<string>((resolve) => {
        bodyExecutions += 1;
        setTimeout(() => resolve('<p>expensive</p>'), 20);
      });
    const template = eta.compile('<% cache 600 stampede %><%~ await it.slowBody() %><% endcache %>', { async: true });
    const started = performance.now();
    const pages = await Promise.all(Array.from({ length: renders }, () => eta.renderAsync(template, { slowBody })));
    const milliseconds = performance.now() - started;
    if (pages.some((html) => html !== '<p>expensive</p>')) throw new Error('stampede: a page rendered wrong');
    results.push({ backend, renders, bodyExecutions, milliseconds });
    await caches.close();
  }
  return results;
}
