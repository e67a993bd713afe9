/**
 * The client libraries of the network backends (ioredis, memjs, pg) are optional peer dependencies:
 * each is loaded when the first cache of its kind is created, so importing fragcache costs none of
 * them and an application installs only the one it uses.
 */
import { createRequire } from 'node:module';
import { InvalidCacheBackendError } from './errors.js';
import { requireFromWorkingDirectory } from './modules.js';

const requireFromHere = createRequire(import.meta.url);

function isNotFound(error: unknown, packageName: string): boolean {
  return error instanceof Error && 'code' in error && error.code === 'MODULE_NOT_FOUND' && error.message.includes(`'${packageName}'`);
}

/**
 * The client library `packageName` of the backend `backend`. Resolved beside fragcache first (where
 * npm puts an application's peer dependencies), then from the working directory (for a linked or path
 * install, whose real location is outside the application).
 */
export function loadClient<Client>(backend: string, packageName: string): Client {
  for (const load of [requireFromHere, requireFromWorkingDirectory()]) {
    try {
      return load(packageName);
    } catch (error) {
      if (!isNotFound(error, packageName)) throw error;
    }
  }
  throw new InvalidCacheBackendError(`Could not find backend '${backend}': install ${packageName} (npm install ${packageName})`);
}
