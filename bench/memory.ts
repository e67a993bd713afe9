/**
 * Scenario 4: locmem with maxEntries 10 000 and 2 KB fragments: resident memory after filling it, and
 * after 100 000 more distinct keys (it must stay bounded: culling keeps the count under the limit).
 * Measured in a fresh process, so that no earlier scenario's heap distorts it.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { LocMemCache } from 'fragcache';

export interface MemoryResult {
  maxEntries: number;
  fragmentBytes: number;
  baselineMiB: number;
  afterFillMiB: number;
  afterChurnMiB: number;
}

const mib = (bytes: number) => Math.round((bytes / 1024 / 1024) * 10) / 10;

function settledRss(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().rss;
}

async function measureHere(maxEntries = 10_000, churn = 100_000): Promise<MemoryResult> {
  const fragmentBytes = 2048;
  const baseline = settledRss();
  const cache = new LocMemCache('bench-memory', { backend: 'locmem', options: { maxEntries } });
  // Each fragment is a distinct string, as rendered pages are.
  const fragment = (i: number) => `${i}:`.padEnd(fragmentBytes, 'x');
  for (let i = 0; i < maxEntries; i++) await cache.set(`fill-${i}`, fragment(i));
  const afterFill = settledRss();
  for (let i = 0; i < churn; i++) await cache.set(`churn-${i}`, fragment(i));
  const afterChurn = settledRss();
  await cache.clear();
  return { maxEntries, fragmentBytes, baselineMiB: mib(baseline), afterFillMiB: mib(afterFill), afterChurnMiB: mib(afterChurn) };
}

/** Runs the measurement in a child process and returns what it reports. */
export function locmemMemory(): MemoryResult {
  const output = execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', fileURLToPath(import.meta.url), '--child']);
  return JSON.parse(output.toString()) as MemoryResult;
}

if (process.argv.includes('--child')) {
  measureHere().then((result) => console.log(JSON.stringify(result)));
}
