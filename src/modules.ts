import { createRequire } from 'node:module';
import { join } from 'node:path';

/** A `require` that resolves as code in the working directory would: the application's own modules. */
export function requireFromWorkingDirectory(): NodeJS.Require {
  return createRequire(join(process.cwd(), 'fragcache-loader.cjs'));
}

/**
 * Loads `"path#Export"` or `"package#Export"` synchronously, resolved from the working directory, so
 * that a cache can be created on first use without an await. Node >= 20.19 can require() ES modules
 * that have no top-level await; CommonJS works everywhere. Without `#Export`, the default export.
 */
export function loadExport(specifier: string): unknown {
  const hash = specifier.lastIndexOf('#');
  const moduleId = hash === -1 ? specifier : specifier.slice(0, hash);
  const exportName = hash === -1 ? 'default' : specifier.slice(hash + 1);
  const namespace = requireFromWorkingDirectory()(moduleId) as Record<string, unknown>;
  const value = exportName === 'default' ? (namespace.default ?? namespace) : namespace[exportName];
  if (value === undefined) throw new Error(`the module has no export named '${exportName}'`);
  return value;
}
