/** Timing for the benchmarks: warm-up first, then the median of several timed rounds taken in turns. */
import { performance } from 'node:perf_hooks';

const WARMUP_MS = Number(process.env.BENCH_WARMUP_MS ?? 300);
const ROUND_MS = Number(process.env.BENCH_ROUND_MS ?? 400);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Calls `operation` (awaiting it when it returns a Promise) back to back for `ms`; returns calls per second. */
async function rateFor(operation: () => unknown, ms: number): Promise<number> {
  let calls = 0;
  const start = performance.now();
  const deadline = start + ms;
  while (performance.now() < deadline) {
    // Batches of calls between clock reads keep timing overhead out of fast operations.
    for (let i = 0; i < 32; i++) {
      const result = operation();
      if (result instanceof Promise) await result;
    }
    calls += 32;
  }
  return (calls * 1000) / (performance.now() - start);
}

/**
 * Operations per second of each operation: the median of `ROUNDS` rounds of `ROUND_MS`, after a
 * warm-up. The operations take turns round by round, so that a slow spell of the machine (or of a
 * server sharing its cores) falls on all of them alike instead of on whichever ran last.
 */
export async function measureSideBySide<Name extends string>(operations: Record<Name, () => unknown>): Promise<Record<Name, number>> {
  const names = Object.keys(operations) as Name[];
  for (const name of names) await rateFor(operations[name], WARMUP_MS);
  const rounds = new Map<Name, number[]>(names.map((name) => [name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const name of names) rounds.get(name)!.push(await rateFor(operations[name], ROUND_MS));
  }
  return Object.fromEntries(names.map((name) => [name, median(rounds.get(name)!)])) as Record<Name, number>;
}

export function formatRate(rate: number): string {
  return rate >= 100 ? Math.round(rate).toLocaleString('en-US') : rate.toFixed(1);
}

export function printTable(title: string, header: string[], rows: string[][]): void {
  const widths = header.map((cell, i) => Math.max(cell.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  console.log(`\n${title}\n${line(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}`);
  for (const row of rows) console.log(line(row));
}
