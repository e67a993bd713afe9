import { cpSync, mkdtempSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CacheKeyWarning } from 'fragcache';
import { warningsDuring } from './hooks.js';

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

let counter = 0;
/** A name no other test uses, for stores that are shared by name. */
/** Waits until `condition` holds, polling every 5 ms; fails naming `what` after `limit` ms. */
export async function until(condition: () => boolean | Promise<boolean>, what: string, limit = 3000): Promise<void> {
  const deadline = Date.now() + limit;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${limit} ms`);
    await sleep(5);
  }
}

export function unique(prefix: string): string {
  counter += 1;
  return `${prefix}-${process.pid}-${counter}`;
}

/** Runs `action` and returns the messages of the CacheKeyWarnings it emitted; any other warning fails the test. */
export async function cacheKeyWarnings(action: () => Promise<unknown>): Promise<string[]> {
  const warnings = await warningsDuring(action);
  const other = warnings.find((warning) => !(warning instanceof CacheKeyWarning));
  if (other !== undefined) throw new Error(`an unexpected warning: ${other.name}: ${other.message}`);
  return warnings.map((warning) => warning.message);
}

/** The rejection of `promise`, failing the test if it resolves. */
export async function rejectionOf(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected the promise to reject, but it resolved');
}

/** What `action` throws, failing the test if it returns. */
export function thrownBy(action: () => unknown): Error {
  try {
    action();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected it to throw, but it returned');
}

/**
 * A second, separate copy of an installed package, as an application has when its own copy sits beside
 * fragcache's (npm link, a path or workspace install, another version): the package and its
 * dependencies are copied into a new node_modules and loaded from there.
 */
export function separateCopyOf<T>(packageName: string): T {
  const app = mkdtempSync(join(tmpdir(), 'fragcache-app-'));
  const copy = (name: string) => {
    const target = join(app, 'node_modules', name);
    cpSync(join('node_modules', name), target, { recursive: true });
    const manifest = JSON.parse(readFileSync(join(target, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
    for (const dependency of Object.keys(manifest.dependencies ?? {})) copy(dependency);
  };
  copy(packageName);
  return createRequire(join(app, 'app.cjs'))(packageName) as T;
}

/** Node's arguments for a child process that loads `fragcache` from the sources, as the tests do. */
export const SOURCES = ['--import', 'tsx', '--conditions=fragcache-source'];

/** The arguments that run the `fragcache` command from the sources. */
export const CLI = [...SOURCES, 'src/cli.ts'];
