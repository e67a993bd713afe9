/**
 * `npm run bench:profile`: where a fragment hit spends its time. Renders the benchmark's hit page
 * (locmem, synchronous render) for each engine under V8's sampling profiler and prints the time per
 * hit and the self time of each part: fragcache, lru-cache, the engine, the compiled template and V8.
 * The profiles are written to bench/results/hit-<engine>.cpuprofile, for Chrome DevTools.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { performance } from 'node:perf_hooks';
import { CacheRegistry } from 'fragcache';
import { etaPages, nunjucksPages, type Pages } from './fragment-hit.js';
import { printTable } from './measure.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const RENDERS = Number(process.env.BENCH_PROFILE_RENDERS ?? 2_000_000);
const PARTS: Array<[part: string, matches: (url: string) => boolean]> = [
  ['fragcache', (url) => /\/dist\/(src|tags)\//.test(url)],
  ['lru-cache', (url) => url.includes('/node_modules/lru-cache/')],
  ['engine (nunjucks, eta)', (url) => /\/node_modules\/(nunjucks|eta)\//.test(url)],
];

function partOf(frame: ProfileNode['callFrame']): string {
  for (const [part, matches] of PARTS) if (matches(frame.url)) return part;
  if (frame.functionName.startsWith('(')) return 'V8 (GC, runtime)';
  // Both engines compile templates with new Function: JavaScript without a URL (native code has no line).
  return frame.url === '' && frame.lineNumber >= 0 ? 'compiled template' : 'other (benchmark loop, Node)';
}

/** Self time per part and per function, in nanoseconds per render. */
function selfTimes(profile: Profile, renders: number): { parts: Map<string, number>; functions: Map<string, number> } {
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const parts = new Map<string, number>();
  const functions = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const frame = nodes.get(id)!.callFrame;
    if (frame.functionName === '(idle)') return;
    const ns = ((profile.timeDeltas[i] ?? 0) * 1000) / renders;
    const part = partOf(frame);
    parts.set(part, (parts.get(part) ?? 0) + ns);
    const where = frame.url === '' ? '' : ` ${frame.url.split('/').slice(-2).join('/')}:${frame.lineNumber + 1}`;
    const name = `${frame.functionName || '(anonymous)'}${where}`;
    functions.set(name, (functions.get(name) ?? 0) + ns);
  });
  return { parts, functions };
}

function timePerRender(render: () => unknown, count: number): number {
  const start = performance.now();
  for (let i = 0; i < count; i++) render();
  return ((performance.now() - start) * 1e6) / count;
}

async function profileHit(engine: string, pages: Pages, session: Session): Promise<void> {
  timePerRender(pages.hit, RENDERS / 4);
  const staticNs = timePerRender(pages.static, RENDERS);
  await session.post('Profiler.start');
  const hitNs = timePerRender(pages.hit, RENDERS);
  const { profile } = (await session.post('Profiler.stop')) as unknown as { profile: Profile };
  writeFileSync(`bench/results/hit-${engine}.cpuprofile`, JSON.stringify(profile));

  const { parts, functions } = selfTimes(profile, RENDERS);
  const sampled = [...parts.values()].reduce((sum, ns) => sum + ns, 0);
  const share = (ns: number) => `${((100 * ns) / sampled).toFixed(1)} %`;
  console.log(`\n${engine}: ${hitNs.toFixed(0)} ns per hit (under the profiler), ${staticNs.toFixed(0)} ns per static render`);
  const byTime = (map: Map<string, number>) => [...map].sort((a, b) => b[1] - a[1]);
  printTable(`${engine}: self time by part`, ['part', 'ns per hit', 'share'], byTime(parts).map(([part, ns]) => [part, ns.toFixed(1), share(ns)]));
  printTable(
    `${engine}: the 12 functions with the most self time`,
    ['function', 'ns per hit', 'share'],
    byTime(functions)
      .slice(0, 12)
      .map(([name, ns]) => [name, ns.toFixed(1), share(ns)]),
  );
}

async function main(): Promise<void> {
  mkdirSync('bench/results', { recursive: true });
  const caches = new CacheRegistry({ default: { backend: 'locmem', location: 'bench-profile' } });
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
  await profileHit('nunjucks', await nunjucksPages(caches, false), session);
  await profileHit('eta', await etaPages(caches, false), session);
  session.disconnect();
  await caches.close();
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
