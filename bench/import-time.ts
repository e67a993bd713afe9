/**
 * What importing the package costs an application at start-up: each entry point imported in a fresh
 * Node process, beside lru-cache (the in-memory store under locmem) and the template engines alone. The
 * processes take turns, so a busy moment of the machine falls on every module alike.
 */
import { execFileSync } from 'node:child_process';

export interface ImportResult {
  module: string;
  medianMs: number;
}

const MODULES = ['lru-cache', 'fragcache', 'fragcache/nunjucks', 'fragcache/eta', 'nunjucks', 'eta'];
const RUNS = 15;

/** One fresh process importing `module`, resolved as the package resolves its own name; milliseconds. */
function importOnce(module: string): number {
  const script = `const start = performance.now(); await import(${JSON.stringify(module)}); console.log(performance.now() - start);`;
  return Number(execFileSync(process.execPath, ['--input-type=module', '--eval', script], { encoding: 'utf8' }));
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

export function importTimes(): ImportResult[] {
  const times = new Map<string, number[]>(MODULES.map((module) => [module, []]));
  for (let run = 0; run < RUNS; run++) for (const module of MODULES) times.get(module)!.push(importOnce(module));
  return MODULES.map((module) => ({ module, medianMs: median(times.get(module)!) }));
}
