/**
 * The package as users install it: packed by npm (which builds it), installed into a fresh application
 * beside that application's own nunjucks, eta, ioredis and pg (not memjs), and used from ES modules,
 * CommonJS and TypeScript with the module resolutions users set.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const repo = resolve('.');

/** The version of a dev dependency installed here, so the application gets the same one from npm's cache. */
function installedVersion(name: string): string {
  return (JSON.parse(readFileSync(join(repo, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
}

describe('the package as installed', function () {
  this.timeout(300_000);
  let app: string;

  /** Runs a file of the application with Node; its stdout and stderr. */
  const node = (...args: string[]) => run(process.execPath, args, { cwd: app });

  before(async function () {
    app = mkdtempSync(join(tmpdir(), 'fragcache-app-'));
    const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', app], { cwd: repo });
    const [{ filename }] = JSON.parse(stdout) as Array<{ filename: string }>;
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    const dependencies = ['nunjucks', 'eta', 'express', 'fastify', 'ioredis', 'pg', '@types/node', '@types/pg', '@types/nunjucks', '@types/memjs'].map(
      (name) => `${name}@${installedVersion(name)}`,
    );
    await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', join(app, filename), ...dependencies], { cwd: app });
  });

  after(function () {
    rmSync(app, { recursive: true, force: true });
  });

  it('imports without loading a client library, and names a missing one with the command that installs it', async function () {
    writeFileSync(
      join(app, 'clients.mjs'),
      `import { createRequire } from 'node:module';
      const require = createRequire(import.meta.url);
      const clientsLoaded = () => Object.keys(require.cache).filter((path) => /node_modules\\/(ioredis|memjs|pg)\\//.test(path)).length > 0;
      const { CacheRegistry } = await import('fragcache');
      await import('fragcache/nunjucks');
      await import('fragcache/eta');
      const afterImport = clientsLoaded();
      const registry = new CacheRegistry({
        default: { backend: 'redis', options: { client: { lazyConnect: true } } },
        memcached: { backend: 'memcached' },
      });
      registry.default;
      let missing;
      try { registry.get('memcached'); } catch (error) { missing = error.name + ': ' + error.message; }
      console.log(JSON.stringify({ afterImport, afterRedis: clientsLoaded(), missing }));
      await registry.close();`,
    );
    const { stdout, stderr } = await node('clients.mjs');
    expect(JSON.parse(stdout)).to.deep.equal({
      afterImport: false,
      afterRedis: true,
      missing: "InvalidCacheBackendError: Could not find backend 'memcached': install memjs (npm install memjs)",
    });
    expect(stderr).to.equal('');
  });

  const page = '<p>{% cache 60 sidebar user %}<b>{{ user }}</b>{% endcache %}</p>';
  const expected = '<p><b>ann</b></p>';

  it('renders cached fragments with the application’s own Nunjucks and Eta from an ES module', async function () {
    writeFileSync(
      join(app, 'render.mjs'),
      `import nunjucks from 'nunjucks';
      import { Eta } from 'eta';
      import { CacheExtension, renderStringAsync } from 'fragcache/nunjucks';
      import { cachePlugin } from 'fragcache/eta';
      const env = new nunjucks.Environment(null, { autoescape: true });
      env.addExtension('CacheExtension', new CacheExtension({ async: true }));
      const eta = new Eta({ plugins: [cachePlugin()] });
      const html = [];
      for (let i = 0; i < 2; i++) {
        html.push(await renderStringAsync(env, ${JSON.stringify(page)}, { user: 'ann' }));
        html.push(await eta.renderStringAsync('<p><% cache 60 eta-sidebar it.user %><b><%= it.user %></b><% endcache %></p>', { user: 'ann' }));
      }
      console.log(JSON.stringify(html));`,
    );
    const { stdout, stderr } = await node('render.mjs');
    expect(JSON.parse(stdout)).to.deep.equal([expected, expected, expected, expected]);
    expect(stderr).to.equal('');
  });

  it('caches whole pages with the application’s own Express and Fastify', async function () {
    writeFileSync(
      join(app, 'pages.mjs'),
      `import express from 'express';
      import Fastify from 'fastify';
      import { cacheSite } from 'fragcache/express';
      import { pageCache, cachePage } from 'fragcache/fastify';
      let runs = 0;
      const onExpress = express();
      onExpress.use(cacheSite());
      onExpress.get('/', (req, res) => res.send('express ' + ++runs));
      const server = onExpress.listen(0, '127.0.0.1');
      await new Promise((resolve) => server.once('listening', resolve));
      const onFastify = Fastify();
      await onFastify.register(pageCache);
      onFastify.get('/', { config: cachePage(60) }, async () => 'fastify ' + ++runs);
      await onFastify.listen({ port: 0, host: '127.0.0.1' });
      const bodies = [];
      for (const port of [server.address().port, onFastify.server.address().port]) {
        for (let i = 0; i < 2; i++) bodies.push(await (await fetch('http://127.0.0.1:' + port + '/')).text());
      }
      server.close();
      await onFastify.close();
      console.log(JSON.stringify(bodies));`,
    );
    const { stdout, stderr } = await node('pages.mjs');
    expect(JSON.parse(stdout)).to.deep.equal(['express 1', 'express 1', 'fastify 2', 'fastify 2']);
    expect(stderr).to.equal('');
  });

  it('works from CommonJS through require()', async function () {
    writeFileSync(
      join(app, 'render.cjs'),
      `const nunjucks = require('nunjucks');
      const { caches } = require('fragcache');
      const { CacheExtension } = require('fragcache/nunjucks');
      const env = new nunjucks.Environment(null, { autoescape: true });
      env.addExtension('CacheExtension', new CacheExtension({ caches }));
      const first = env.renderString(${JSON.stringify(page)}, { user: 'ann' });
      const hit = env.renderString(${JSON.stringify(page)}, { user: 'bob' });
      console.log(JSON.stringify([first, hit, caches.default.constructor.name]));`,
    );
    const { stdout, stderr } = await node('render.cjs');
    expect(JSON.parse(stdout)).to.deep.equal([expected, '<p><b>bob</b></p>', 'LocMemCache']);
    expect(stderr).to.equal('');
  });

  describe('installed from a local path', function () {
    /** A copy of this working tree as a fresh clone has it: sources, no node_modules, no build. */
    function clone(): string {
      const dir = mkdtempSync(join(tmpdir(), 'fragcache-clone-'));
      for (const entry of ['package.json', 'tsconfig.json', 'tsconfig.build.json', 'scripts', 'src', 'tags', 'frameworks']) {
        cpSync(join(repo, entry), join(dir, entry), { recursive: true });
      }
      return dir;
    }

    it('says how to build a clone that has no build and no dev dependencies', async function () {
      const dir = clone();
      try {
        const failure = await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', dir], { cwd: app }).catch((error: { stderr: string; code: number }) => error);
        expect(failure).to.have.property('code').that.is.not.equal(0);
        expect(failure.stderr).to.include(`fragcache: cannot build in ${dir}: TypeScript is not installed there. Run \`npm install\` in that directory first`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('links a clone once `npm install` has run in it', async function () {
      const dir = clone();
      const linkedApp = mkdtempSync(join(tmpdir(), 'fragcache-linked-app-'));
      try {
        cpSync(join(repo, 'package-lock.json'), join(dir, 'package-lock.json'));
        await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: dir });
        writeFileSync(join(linkedApp, 'package.json'), JSON.stringify({ name: 'linked-app', private: true, type: 'module' }));
        await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', dir], { cwd: linkedApp });
        writeFileSync(join(linkedApp, 'app.mjs'), `import { caches } from 'fragcache';\nawait caches.default.set('k', 1);\nconsole.log(await caches.default.get('k'));`);
        expect((await run(process.execPath, ['app.mjs'], { cwd: linkedApp })).stdout).to.equal('1\n');
      } finally {
        rmSync(dir, { recursive: true, force: true });
        rmSync(linkedApp, { recursive: true, force: true });
      }
    });
  });

  describe('type-checks a TypeScript application', function () {
    const source = `import { caches, type CacheConfig } from 'fragcache';
      import { RedisCache } from 'fragcache/redis';
      import { CacheExtension, renderAsync } from 'fragcache/nunjucks';
      import { cachePlugin } from 'fragcache/eta';
      import { FragmentRuntime } from 'fragcache/fragments';
      import { cachePage as routeCache, cacheSite, varyOnCookie } from 'fragcache/express';
      import { cachePage, neverCache, pageCache } from 'fragcache/fastify';
      import Fastify from 'fastify';
      const app = Fastify();
      void app.register(pageCache, { site: true, query: ['page'] });
      app.get('/', { config: { ...cachePage(60), ...neverCache() } }, async () => 'page');
      // @ts-expect-error -- a misspelt route option
      app.get('/typo', { config: { cachePage: { secnds: 60 } } }, async () => 'page');
      const config: CacheConfig = {
        default: { backend: 'locmem', options: { maxEntries: 1000 } },
        shared: { backend: 'redis', location: 'redis://127.0.0.1:6379', options: { client: { connectTimeout: 50 } } },
        // @ts-expect-error -- a misspelt backend
        typo: { backend: 'reddis' },
        // @ts-expect-error -- client options belong under options.client
        stray: { backend: 'redis', options: { connectTimeout: 50 } },
      };
      caches.configure(config);
      export const parts = [RedisCache, CacheExtension, renderAsync, cachePlugin, FragmentRuntime, routeCache(60), cacheSite(), varyOnCookie()];
    `;

    for (const [module, moduleResolution] of [
      ['node16', 'node16'],
      ['nodenext', 'nodenext'],
      ['esnext', 'bundler'],
      ['commonjs', 'node'],
    ] as const) {
      it(`with module ${module} and moduleResolution ${moduleResolution}`, async function () {
        const dir = join(app, `ts-${moduleResolution}`);
        // esModuleInterop as `tsc --init` writes it: Fastify's own types (pino's) need it when libraries are checked.
        const compilerOptions = { module, moduleResolution, target: 'es2022', strict: true, noEmit: true, skipLibCheck: false, types: ['node'], esModuleInterop: true };
        rmSync(dir, { recursive: true, force: true });
        await run('mkdir', ['-p', dir]);
        writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions, files: ['app.ts'] }));
        writeFileSync(join(dir, 'app.ts'), source);
        const tsc = join(repo, 'node_modules', 'typescript', 'bin', 'tsc');
        const result = await run(process.execPath, [tsc, '-p', dir], { cwd: dir }).catch((error: { stdout: string }) => error);
        expect(result.stdout).to.equal('');
      });
    }
  });
});
