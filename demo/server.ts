/**
 * The demo site: the same page in Nunjucks and Eta, each with an expensive sidebar cached per user in
 * the in-memory default cache; and under /pages, whole pages cached per route, per visitor (Vary:
 * Cookie), and never. `npm start`, then open the URL it prints.
 */
import express from 'express';
import { Eta } from 'eta';
import nunjucks from 'nunjucks';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { caches, invalidateFragment, makeTemplateFragmentKey } from 'fragcache';
import { cachePlugin } from 'fragcache/eta';
import { cachePage, neverCache, varyOnCookie } from 'fragcache/express';
import { CacheExtension } from 'fragcache/nunjucks';

const templates = fileURLToPath(new URL('../templates/', import.meta.url));
const users = ['alice', 'bob', 'chloé'];
const catalogue = Array.from({ length: 200 }, (_, i) => ({
  title: `the story of chapter ${i + 1}`,
  author: `author ${(i * 7) % 31}`,
  tags: ['Fiction', `Shelf${i % 9}`, i % 2 ? 'Odd' : 'Even'],
}));

let sidebarRenders = 0;
const countSidebarRender = () => {
  sidebarRenders += 1;
  return '';
};

const env = new nunjucks.Environment(new nunjucks.FileSystemLoader(`${templates}nunjucks`), { autoescape: true });
env.addExtension('CacheExtension', new CacheExtension());
const eta = new Eta({ views: `${templates}eta`, cache: true, plugins: [cachePlugin()] });

const app = express();
app.use(express.urlencoded({ extended: false }));

/**
 * Renders a page and fills in what is only known once it has rendered (its render time, and how often
 * the sidebar body has run) where the layout left a placeholder comment.
 */
async function renderPage(req: express.Request, res: express.Response, render: (context: object) => string | Promise<string>) {
  const user = users.includes(String(req.query.user)) ? String(req.query.user) : users[0]!;
  const hit = await caches.default.hasKey(makeTemplateFragmentKey('sidebar', [user]));
  const started = performance.now();
  const html = await render({ title: 'fragcache demo', user, users, catalogue, path: req.path, countSidebarRender, stats: { hit } });
  const milliseconds = (performance.now() - started).toFixed(2);
  res.type('html').send(html.replace('<!--render-ms-->', milliseconds).replace('<!--sidebar-renders-->', String(sidebarRenders)));
}

app.get('/', (_req, res) => res.redirect('/nunjucks'));
app.get('/nunjucks', (req, res, next) => renderPage(req, res, (context) => env.render('page.njk', context)).catch(next));
app.get('/eta', (req, res, next) => renderPage(req, res, (context) => eta.render('page', context)).catch(next));
app.post('/invalidate', async (req, res, next) => {
  try {
    const user = String(req.body.user);
    await invalidateFragment('sidebar', [user]);
    const back = req.body.back === '/eta' ? '/eta' : '/nunjucks';
    res.redirect(303, `${back}?user=${encodeURIComponent(user)}`);
  } catch (error) {
    next(error);
  }
});

const pageRuns = new Map<string, number>();

/** A page of the whole-page caching demo: says when, and by which run of its handler, it was rendered. */
function httpPage(heading: string, explanation: string): express.RequestHandler {
  return (req, res) => {
    const runs = (pageRuns.get(req.path) ?? 0) + 1;
    pageRuns.set(req.path, runs);
    const renderedAt = new Date().toISOString().slice(11, 23);
    res.type('html').send(env.render('http.njk', { heading, explanation, renderedAt, runs, host: req.headers.host, path: req.path }));
  };
}

app.get('/pages/cached', cachePage(30), httpPage('Cached for 30 seconds', 'cachePage(30) on the route: every visitor gets the same stored page for 30 s.'));
app.get(
  '/pages/per-visitor',
  cachePage(30),
  varyOnCookie(),
  (req, res, next) => {
    // A page that sets a cookie on a cookie-less request is never stored; from the next request on, it is, per visitor.
    if (req.headers.cookie?.includes('visitor=') !== true) res.cookie('visitor', Math.random().toString(36).slice(2), { httpOnly: true });
    next();
  },
  httpPage('Cached per visitor', 'cachePage(30) with varyOnCookie(): one stored page per Cookie header. Your first visit sets a visitor cookie, so it is not stored; later visits are.'),
);
app.get('/pages/never', neverCache(), httpPage('Never cached', 'neverCache(): Expires now and Cache-Control: max-age=0, no-cache, no-store, must-revalidate, private.'));

const port = Number(process.env.PORT ?? 3000);
const server = app.listen(port, '127.0.0.1', () => {
  console.log(`fragcache demo: http://127.0.0.1:${port}/  (Nunjucks at /nunjucks, Eta at /eta, whole pages at /pages/cached; Ctrl-C to stop)`);
});
process.on('SIGINT', () => server.close(() => process.exit(0)));
