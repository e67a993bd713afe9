/**
 * What every engine's `cache` tag does alike (SPEC.md §1), run once per engine as the backend
 * conformance suite is run once per backend: `describeTagBehaviour` with an adapter that writes the
 * engine's syntax and renders its templates. What only one engine has stays in that engine's tests.
 */
import { expect } from 'chai';
import { MAX_TIMEOUT, invalidateFragment, makeTemplateFragmentKey, type CacheConfig, type CacheRegistry } from 'fragcache';
import { cacheKeyWarnings, rejectionOf, thrownBy, unique } from './helpers.js';

/** One engine's templates, rendered. */
export interface TagSite {
  readonly caches: CacheRegistry;
  /** How often the body counter ran. */
  readonly renders: { body?: number };
  render(template: string, context?: object): string;
  renderAsync(template: string, context?: object): Promise<string>;
  /** How the engine's errors name a template and line, as `<template>:<line>`. */
  place(template: string, line: number): string;
}

export interface TagEngine {
  /** The opening tag of a `cache` block with these arguments. */
  open(args: string): string;
  /** The closing tag. */
  readonly close: string;
  /** The context variable `name`, as a tag argument reads it. */
  variable(name: string): string;
  /** Prints the context variable `name`, escaped. */
  print(name: string): string;
  /** Prints how often the body counter has run, counting this run. */
  readonly count: string;
  /** Runs the body counter and prints nothing. */
  readonly silentCount: string;
  /** The timeout literal that means forever. */
  readonly forever: string;
  /** Templates by name (no extension), rendered with these caches (a fresh locmem default if none). */
  site(templates: Record<string, string>, config?: CacheConfig): TagSite;
}

/**
 * An error as `<class>: <message>`. Nunjucks without `dev: true` copies an error raised in a render into
 * a plain Error whose message carries the class's name (`… CacheTagError: page.njk:2: …`), so this is
 * the one form in which every engine names the class and the place.
 */
function described(error: Error): string {
  return `${error.name}: ${error.message}`;
}

export function describeTagBehaviour(title: string, engine: TagEngine): void {
  const { open, close, variable, print, count, silentCount, forever } = engine;
  const block = (args: string, body: string) => `${open(args)}${body}${close}`;
  const site = (templates: Record<string, string>, config?: CacheConfig) => engine.site(templates, config);

  describe(`${title}: the cache tag`, function () {
    describe('caching', function () {
      it('renders the body once and serves the stored HTML afterwards, rendered either way', async function () {
        const s = site({ page: `a${block('60 sidebar', `[${count}]`)}b` });
        expect(s.render('page')).to.equal('a[1]b');
        expect(s.render('page')).to.equal('a[1]b');
        expect(await s.renderAsync('page')).to.equal('a[1]b');
        const fresh = site({ page: `a${block('60 sidebar', `[${count}]`)}b` });
        expect(await fresh.renderAsync('page')).to.equal('a[1]b');
        expect(await fresh.renderAsync('page')).to.equal('a[1]b');
        expect([s.renders.body, fresh.renders.body]).to.deep.equal([1, 1]);
      });

      it('keeps one entry per combination of vary values', function () {
        const s = site({ page: block(`60 menu ${variable('user')} ${variable('lang')}`, `${print('user')}${count}`) });
        expect(s.render('page', { user: 'ann', lang: 'en' })).to.equal('ann1');
        expect(s.render('page', { user: 'ann', lang: 'en' })).to.equal('ann1');
        expect(s.render('page', { user: 'bob', lang: 'en' })).to.equal('bob2');
        expect(s.render('page', { user: 'bob', lang: 'fr' })).to.equal('bob3');
      });

      it('keys on vary values as they print: 1 and "1" share an entry, an object follows what it prints now', function () {
        const s = site({ page: block(`60 menu ${variable('x')}`, count) });
        expect(s.render('page', { x: 1 })).to.equal('1');
        expect(s.render('page', { x: '1' })).to.equal('1');
        const viewer = { name: 'ann', toString: () => viewer.name };
        expect(s.render('page', { x: viewer })).to.equal('2');
        viewer.name = 'bob';
        expect(s.render('page', { x: viewer })).to.equal('3');
        expect(s.render('page', { x: 'bob' })).to.equal('3');
      });

      it('stores under makeTemplateFragmentKey(name, vary), shared by templates using the same name and values', async function () {
        const s = site({ a: block(`60 shared ${variable('user')} 7`, `A${count}`), b: block(`60 shared ${variable('user')} 7`, `B${count}`) });
        expect(s.render('a', { user: 'ann' })).to.equal('A1');
        expect(s.render('b', { user: 'ann' })).to.equal('A1');
        expect(await s.caches.default.get(makeTemplateFragmentKey('shared', ['ann', 7]))).to.equal('A1');
      });

      it('takes NAME literally: dashes, dots, quotes, a variable’s name, using= first', async function () {
        const s = site({
          page:
            block('60 local-thing', '1') + block('60 a.b', '2') + block('60 "quoted name"', '3') + block('60 sidebar', '4') + block('1 using="x"', '5'),
        });
        const warning = `Cache key contains characters that will cause errors if used with memcached: '${s.caches.default.makeKey(makeTemplateFragmentKey('quoted name'))}'`;
        expect(await cacheKeyWarnings(async () => s.render('page', { sidebar: 'not this', a: { b: 'nor this' } }))).to.deep.equal([warning]);
        const stored = await cacheKeyWarnings(async () => {
          for (const [name, html] of [['local-thing', '1'], ['a.b', '2'], ['quoted name', '3'], ['sidebar', '4'], ['using="x"', '5']] as const) {
            expect(await s.caches.default.get(makeTemplateFragmentKey(name)), name).to.equal(html);
          }
        });
        expect(stored).to.deep.equal([warning]);
      });

      it('caches an empty rendering as a hit', function () {
        const s = site({ page: `[${block('60 empty', silentCount)}]` });
        expect(s.render('page')).to.equal('[]');
        expect(s.render('page')).to.equal('[]');
        expect(s.renders.body).to.equal(1);
      });

      it('outputs a hit without escaping it again', async function () {
        const s = site({ page: block('60 e', `<b>${print('text')}</b>`) });
        for (let i = 0; i < 2; i++) {
          expect(s.render('page', { text: '<i>&' })).to.equal('<b>&lt;i&gt;&amp;</b>');
          expect(await s.renderAsync('page', { text: '<i>&' })).to.equal('<b>&lt;i&gt;&amp;</b>');
        }
      });

      it('is invalidated by invalidateFragment with the same name and vary values', async function () {
        const s = site({ page: block(`60 sidebar ${variable('user')}`, count) });
        expect(s.render('page', { user: 'ann' })).to.equal('1');
        expect(await invalidateFragment('sidebar', ['ann'], { caches: s.caches })).to.equal(true);
        expect(s.render('page', { user: 'ann' })).to.equal('2');
      });

      it('uses the cache the registry holds at render time, with its key prefix, after configure()', async function () {
        const s = site({ page: block(`60 sidebar ${variable('user')}`, count) });
        const location = unique('reconfigured');
        s.caches.configure({ default: { backend: 'locmem', location } });
        expect(s.render('page', { user: 'ann' })).to.equal('1');
        s.caches.configure({ default: { backend: 'locmem', location, keyPrefix: 'v2' } });
        expect(s.render('page', { user: 'ann' })).to.equal('2');
        expect(await s.caches.default.get(makeTemplateFragmentKey('sidebar', ['ann']))).to.equal('2');
      });
    });

    describe('timeouts', function () {
      it(`accepts integers, integer-like strings, floats and ${forever}, as a variable or a literal`, function () {
        const s = site({ page: block(`${variable('t')} frag ${variable('n')}`, count) });
        for (const [t, n] of [[60, 'a'], ['12', 'b'], [' 12 ', 'c'], ['+4', 'd'], [2.9, 'e'], [null, 'f']] as const) {
          expect(s.render('page', { t, n }), String(t)).to.equal(s.render('page', { t, n }));
        }
        const literal = site({ page: block(`${forever} forever`, count) + block('5 five', count) });
        expect(literal.render('page')).to.equal('12');
        expect(literal.render('page')).to.equal('12');
      });

      it('renders the body every time for a zero or negative timeout', function () {
        const s = site({ page: block(`${variable('t')} z`, count) });
        expect(s.render('page', { t: 0 })).to.equal('1');
        expect(s.render('page', { t: '-3' })).to.equal('2');
        expect(s.render('page', { t: -1 })).to.equal('3');
      });

      it('rejects a non-integer timeout with the template and line, even on a hit', async function () {
        const s = site({ page: `x\n${block(`${variable('t')} frag`, 'body')}` });
        s.render('page', { t: 60 });
        const cases: Array<[unknown, string]> = [
          [undefined, 'undefined'],
          ['fail', "'fail'"],
          ['1.5', "'1.5'"],
          ['', "''"],
          [[], '[]'],
          ['None', "'None'"],
          [Number.NaN, 'NaN'],
          [Number.NEGATIVE_INFINITY, '-Infinity'],
        ];
        for (const [t, shown] of cases) {
          const expected = `TemplateSyntaxError: ${s.place('page', 2)}: "cache" tag got a non-integer timeout value: ${shown}`;
          expect(described(thrownBy(() => s.render('page', { t })))).to.include(expected);
          expect(described(await rejectionOf(s.renderAsync('page', { t })))).to.include(expected);
        }
      });

      it('stores a timeout longer than MAX_TIMEOUT as never expiring', async function () {
        const s = site({ page: block(`${String(MAX_TIMEOUT)}0 far`, count) });
        expect(s.render('page')).to.equal('1');
        expect(s.render('page')).to.equal('1');
        expect(await s.caches.default.get(makeTemplateFragmentKey('far'))).to.equal('1');
      });
    });

    describe('vary values', function () {
      it('refuses an object without a text of its own, on a miss and on a hit, naming the template, line and argument', function () {
        const s = site({ page: `x\n${block(`60 sidebar ${variable('name')} ${variable('user')}`, count)}` });
        s.render('page', { name: 'ann', user: 'ann' });
        for (const user of [{ id: 1 }, { id: 2 }, Object.create(null), [{ id: 1 }]]) {
          const error = described(thrownBy(() => s.render('page', { name: 'ann', user })));
          expect(error).to.match(/vary value 2(\[0\])? is (a plain object|an object without a prototype), which has no text of its own/);
          expect(error).to.include(`CacheTagError: ${s.place('page', 2)}: vary value 2`);
          expect(error).to.include('such as user.id');
        }
        expect(s.renders.body).to.equal(1);
      });

      it('keeps lists apart from the strings they print as', function () {
        const s = site({ page: block(`60 list ${variable('v')}`, count) });
        expect(s.render('page', { v: [1, 2] })).to.equal('1');
        expect(s.render('page', { v: '1,2' })).to.equal('2');
        expect(s.render('page', { v: [1, 2] })).to.equal('1');
      });
    });

    describe('choosing the cache', function () {
      const config = (): CacheConfig => ({
        default: { backend: 'locmem', location: unique('default') },
        other: { backend: 'locmem', location: unique('other') },
      });

      it('uses using= (a literal or a variable), else template_fragments, else default', async function () {
        const s = site({ page: block('60 a using="other"', 'A') + block(`60 b using=${variable('alias')}`, 'B') + block('60 c', 'C') }, config());
        s.render('page', { alias: 'other' });
        const other = s.caches.get('other');
        expect(await other.get(makeTemplateFragmentKey('a'))).to.equal('A');
        expect(await other.get(makeTemplateFragmentKey('b'))).to.equal('B');
        expect(await s.caches.default.get(makeTemplateFragmentKey('c'))).to.equal('C');

        const withFragments = site({ page: block('60 c', 'C') }, { ...config(), template_fragments: { backend: 'locmem', location: unique('fragments') } });
        withFragments.render('page');
        expect(await withFragments.caches.get('template_fragments').get(makeTemplateFragmentKey('c'))).to.equal('C');
        expect(await withFragments.caches.default.get(makeTemplateFragmentKey('c'))).to.equal(undefined);
      });

      for (const [value, shown] of [['"soon"', "'soon'"], ['-1', '-1'], ['"1.5"', "'1.5'"]] as const) {
        it(`rejects stale=${value}, naming the value, on a hit too`, async function () {
          const s = site({ page: `\n${block(`60 a stale=${value}`, 'A')}` });
          const reason = `TemplateSyntaxError: ${s.place('page', 2)}: "cache" tag got an invalid stale value: ${shown} (expected whole seconds, 0 or more)`;
          expect(described(thrownBy(() => s.render('page')))).to.include(reason);
          expect(described(await rejectionOf(s.renderAsync('page')))).to.include(reason);
        });
      }

      it('serves a block with stale= like any other while it is fresh, in either keyword order', async function () {
        const s = site({ page: `${block(`60 a stale=30 using="default"`, print('n'))}|${block(`60 b using="default" stale=0`, print('n'))}` });
        expect(s.render('page', { n: 1 })).to.equal('1|1');
        expect(s.render('page', { n: 2 })).to.equal('1|1');
        expect(await s.renderAsync('page', { n: 3 })).to.equal('1|1');
      });

      it('rejects an unknown alias at render time, naming it', function () {
        const s = site({ page: `\n\n${block(`60 a using=${variable('alias')}`, 'A')}` });
        expect(described(thrownBy(() => s.render('page', { alias: 'nope' })))).to.include(
          `TemplateSyntaxError: ${s.place('page', 3)}: Invalid cache name specified for cache tag: 'nope'`,
        );
      });
    });

    describe('syntax errors, with the template and line', function () {
      const cases: Array<[string, string]> = [
        [block('', 'x'), "'cache' tag requires at least 2 arguments."],
        [block('60', 'x'), "'cache' tag requires at least 2 arguments."],
        [block(`60 name using="default" ${variable('user')}`, 'x'), "'cache' tag accepts using= and stale= only after its other arguments."],
        [block(`60 name stale=5 ${variable('user')}`, 'x'), "'cache' tag accepts using= and stale= only after its other arguments."],
        [`${open('60 name')}never closed`, "Unclosed tag on line 2: 'cache'. Looking for one of: endcache."],
      ];
      for (const [source, reason] of cases) {
        it(reason, async function () {
          const s = site({ broken: `first line\n${source}` });
          const expected = `TemplateSyntaxError: ${s.place('broken', 2)}: ${reason}`;
          expect(described(thrownBy(() => s.render('broken')))).to.include(expected);
          expect(described(await rejectionOf(s.renderAsync('broken')))).to.include(expected);
        });
      }
    });
  });
}
