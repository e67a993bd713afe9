/** Timing for the benchmarks: warm-up first, then the median of several timed rounds. */
import { performance } from 'node:perf_hooks';

export interface Measurement {
  /** Operations per second: the median of the rounds. */
  opsPerSecond: number;
  rounds: number[];
}

const WARMUP_MS = Number(process.env.BENCH_WARMUP_MS ?? 300);
const ROUND_MS = Number(process.env.BENCH_ROUND_MS ?? 400);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/**
 * Runs `operation` (which may return a Promise) back to back for a warm-up, then for `ROUNDS` rounds
 * of `ROUND_MS` each, and reports the median rate. `perCall` counts operations done by one call
 * (getMany(100) is 1 call, 1 operation: the caller decides).
 */
export async function measure(operation: () => unknown, perCall = 1): Promise<Measurement> {
  const runFor = async (ms: number): Promise<number> => {
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
    return (calls * perCall * 1000) / (performance.now() - start);
  };
  await runFor(WARMUP_MS);
  const rounds: number[] = [];
  for (let i = 0; i < ROUNDS; i++) rounds.push(await runFor(ROUND_MS));
  return { opsPerSecond: median(rounds), rounds };
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
