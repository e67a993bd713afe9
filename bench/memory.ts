/**
 * Scenario 4: locmem with maxEntries 10 000 and 2 KB fragments: resident memory after filling it, and
 * after 100 000 more distinct keys (it must stay bounded: culling keeps the count under the limit).
 * Measured in a fresh process, so that no earlier scenario's heap distorts it.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { LocMemCache } from 'fragcache';

/** Resident memory, and the live JavaScript heap (what culling bounds; V8 keeps freed pages resident). */
export interface MemorySample {
  rssMiB: number;
  heapUsedMiB: number;
}

export interface MemoryResult {
  maxEntries: number;
  fragmentBytes: number;
  baseline: MemorySample;
  afterFill: MemorySample;
  /** After `extraKeys` more distinct keys than fit: 50 000, then 100 000. */
  afterChurn: Array<MemorySample & { extraKeys: number }>;
}

const mib = (bytes: number) => Math.round((bytes / 1024 / 1024) * 10) / 10;

function settledMemory(): MemorySample {
  (globalThis as { gc?: () => void }).gc?.();
  const { rss, heapUsed } = process.memoryUsage();
  return { rssMiB: mib(rss), heapUsedMiB: mib(heapUsed) };
}

async function measureHere(maxEntries = 10_000, churnRounds = 2, churnPerRound = 50_000): Promise<MemoryResult> {
  const fragmentBytes = 2048;
  const baseline = settledMemory();
  const cache = new LocMemCache('bench-memory', { options: { maxEntries } });
  // Each fragment is a distinct flat string on the heap, as rendered pages are (padEnd could share its
  // filler; a Buffer per fragment would add memory outside the heap that is the benchmark's, not ours).
  const page = Buffer.alloc(fragmentBytes, 'x');
  const fragment = (i: number) => {
    page.write(`${i}:`, 0, 'latin1');
    return page.toString('latin1');
  };
  for (let i = 0; i < maxEntries; i++) await cache.set(`fill-${i}`, fragment(i));
  const afterFill = settledMemory();
  const afterChurn: MemoryResult['afterChurn'] = [];
  for (let round = 1; round <= churnRounds; round++) {
    for (let i = 0; i < churnPerRound; i++) await cache.set(`churn-${round}-${i}`, fragment(i));
    afterChurn.push({ ...settledMemory(), extraKeys: round * churnPerRound });
  }
  await cache.clear();
  return { maxEntries, fragmentBytes, baseline, afterFill, afterChurn };
}

/** Runs the measurement in a child process and returns what it reports. */
export function locmemMemory(): MemoryResult {
  const output = execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', fileURLToPath(import.meta.url), '--child']);
  return JSON.parse(output.toString()) as MemoryResult;
}

if (process.argv.includes('--child')) {
  measureHere().then((result) => console.log(JSON.stringify(result)));
}
