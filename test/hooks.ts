/**
 * Mocha root hooks for the whole run. The real servers started by the backend tests are stopped when
 * the run ends. Process warnings are captured instead of printed: a test that expects one takes it
 * with `warningsDuring` and asserts on it, and any other warning fails the test that caused it, so
 * `npm test` prints only results.
 */
import { stopServers } from '../servers/index.js';

const captures: Error[][] = [];
const unexpected: Error[] = [];

// Node prints warnings through a listener of its own; the run's output is the tests' business.
process.removeAllListeners('warning');
process.on('warning', (warning) => (captures.at(-1) ?? unexpected).push(warning));

/** Runs `action` and returns the process warnings it emitted (delivered on a later tick, so waited for). */
export async function warningsDuring(action: () => unknown): Promise<Error[]> {
  const seen: Error[] = [];
  captures.push(seen);
  try {
    await action();
    await new Promise((resolve) => setImmediate(resolve));
  } finally {
    captures.splice(captures.lastIndexOf(seen), 1);
  }
  return seen;
}

export const mochaHooks = {
  afterEach() {
    if (unexpected.length === 0) return;
    const warnings = unexpected.splice(0).map((warning) => `${warning.name}: ${warning.message}`);
    throw new Error(`The test emitted warnings it did not expect:\n${warnings.join('\n')}`);
  },
  async afterAll(this: Mocha.Context) {
    this.timeout(30_000);
    await stopServers();
  },
};
