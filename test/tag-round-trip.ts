/**
 * The check every backend passes: the Nunjucks and Eta tags, rendering asynchronously on a cache of that
 * backend, render a block's body once and serve it from the cache the second time.
 */
import { expect } from 'chai';
import { Eta } from 'eta';
import nunjucks from 'nunjucks';
import { CacheRegistry, type BackendConfig } from 'fragcache';
import { cachePlugin } from 'fragcache/eta';
import { CacheExtension, renderStringAsync } from 'fragcache/nunjucks';

export function describeTagRoundTrip(title: string, config: () => BackendConfig): void {
  describe(`${title}: template tags`, function () {
    let caches: CacheRegistry;
    let renders = 0;
    const count = () => ++renders;

    beforeEach(async function () {
      caches = new CacheRegistry({ default: config() });
      await caches.default.clear();
      renders = 0;
    });

    afterEach(async function () {
      await caches.close();
    });

    it('Nunjucks renderStringAsync renders the body once', async function () {
      const env = new nunjucks.Environment(null, { autoescape: true });
      env.addExtension('CacheExtension', new CacheExtension({ caches, async: true }));
      env.addGlobal('count', count);
      const source = '<p>{% cache 60 card user %}{{ user }} & {{ count() }}{% endcache %}</p>';
      expect(await renderStringAsync(env, source, { user: 'a<b' })).to.equal('<p>a&lt;b & 1</p>');
      expect(await renderStringAsync(env, source, { user: 'a<b' })).to.equal('<p>a&lt;b & 1</p>');
      expect(renders).to.equal(1);
    });

    it('Eta renderStringAsync renders the body once', async function () {
      const eta = new Eta({ plugins: [cachePlugin({ caches })] });
      const source = '<p><% cache 60 card it.user %><%= it.user %> & <%= it.count() %><% endcache %></p>';
      expect(await eta.renderStringAsync(source, { user: 'a<b', count })).to.equal('<p>a&lt;b & 1</p>');
      expect(await eta.renderStringAsync(source, { user: 'a<b', count })).to.equal('<p>a&lt;b & 1</p>');
      expect(renders).to.equal(1);
    });
  });
}
