/**
 * The server of the page-cache scenario, in a process of its own so that it does not share the load
 * generator's event loop: `node --import tsx bench/page-server.ts <variant> [redis URL]`. Prints its
 * port once listening. The page renders a 200-item list with Nunjucks, as the demo's sidebar does.
 */
import express from 'express';
import Fastify from 'fastify';
import type { AddressInfo } from 'node:net';
import nunjucks from 'nunjucks';
import { CacheRegistry, type CacheConfig } from 'fragcache';
import { cacheSite } from 'fragcache/express';
import { pageCache } from 'fragcache/fastify';

const [variant = 'express', redisUrl = ''] = process.argv.slice(2);
const env = new nunjucks.Environment(null, { autoescape: true });
const template = nunjucks.compile(
  '<!doctype html><title>{{ title }}</title><ol>{% for item in items %}<li>{{ item.title | title }} — {{ item.author | upper }}' +
    '{% for tag in item.tags %} <small>#{{ tag | lower }}</small>{% endfor %}</li>{% endfor %}</ol>',
  env,
);
const items = Array.from({ length: 200 }, (_, i) => ({ title: `the story of chapter ${i + 1}`, author: `author ${(i * 7) % 31}`, tags: ['Fiction', `Shelf${i % 9}`] }));
const render = () => template.render({ title: 'bench', items });

const config: CacheConfig = variant.endsWith('redis') ? { default: { backend: 'redis', location: redisUrl } } : { default: { backend: 'locmem' } };
const caches = new CacheRegistry(config);
let port: number;
if (variant.startsWith('fastify')) {
  const app = Fastify();
  if (variant !== 'fastify') await app.register(pageCache, { caches, site: true });
  app.get('/', async (_request, reply) => reply.type('text/html; charset=utf-8').send(render()));
  await app.listen({ port: 0, host: '127.0.0.1' });
  port = (app.server.address() as AddressInfo).port;
} else {
  const app = express();
  if (variant !== 'express') app.use(cacheSite({ caches }));
  app.get('/', (_req, res) => res.type('html').send(render()));
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  port = (server.address() as AddressInfo).port;
}
console.log(port);
