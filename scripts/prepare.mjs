// npm runs `prepare` when the package is installed from a git URL or a local path: build dist/ there.
// A local path is linked, not packed, so its dev dependencies are only there once `npm install` ran in it.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
let tsc;
try {
  tsc = require.resolve('typescript/bin/tsc');
} catch {
  tsc = undefined;
}

if (tsc !== undefined) {
  execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
} else if (existsSync('dist/src/index.js')) {
  console.log('fragcache: TypeScript is not installed here, so the existing build in dist/ is used as it is.');
} else {
  console.error(
    `fragcache: cannot build in ${process.cwd()}: TypeScript is not installed there. ` +
      'Run `npm install` in that directory first (it installs the dev dependencies and builds), then install it again.',
  );
  process.exit(1);
}
