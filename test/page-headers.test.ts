/**
 * The Vary and Cache-Control helpers and the page keys, against Django's own test tables
 * (tests/cache/tests.py: test_patch_vary_headers, test_patch_cache_control, test_get_cache_key).
 */
import { expect } from 'chai';
import {
  addNeverCacheHeaders,
  getMaxAge,
  headerListKey,
  learnHeaderList,
  pageKey,
  pageUrl,
  patchCacheControl,
  patchResponseHeaders,
  patchVaryHeaders,
  type CacheControlDirectives,
  type HeaderAccess,
} from 'fragcache/pages';

function headers(initial: Record<string, string> = {}): HeaderAccess & { values: Map<string, string> } {
  const values = new Map(Object.entries(initial).map(([name, value]) => [name.toLowerCase(), value]));
  return { values, get: (name) => values.get(name.toLowerCase()), set: (name, value) => values.set(name.toLowerCase(), value) };
}

describe('Vary and Cache-Control helpers (Django\'s tables)', function () {
  const varyTable: Array<[string | undefined, string[], string]> = [
    [undefined, ['Accept-Encoding'], 'Accept-Encoding'],
    ['Accept-Encoding', ['accept-encoding'], 'Accept-Encoding'],
    ['Accept-Encoding', ['ACCEPT-ENCODING'], 'Accept-Encoding'],
    ['Cookie', ['Accept-Encoding'], 'Cookie, Accept-Encoding'],
    ['Cookie, Accept-Encoding', ['Accept-Encoding'], 'Cookie, Accept-Encoding'],
    ['Cookie, Accept-Encoding', ['Accept-Encoding', 'cookie'], 'Cookie, Accept-Encoding'],
    [undefined, ['Accept-Encoding', 'COOKIE'], 'Accept-Encoding, COOKIE'],
    ['Cookie,     Accept-Encoding', ['Accept-Encoding', 'cookie'], 'Cookie, Accept-Encoding'],
    ['Cookie    ,     Accept-Encoding', ['Accept-Encoding', 'cookie'], 'Cookie, Accept-Encoding'],
    ['*', ['Accept-Language', 'Cookie'], '*'],
    ['Accept-Language, Cookie', ['*'], '*'],
  ];
  for (const [initial, added, expected] of varyTable) {
    it(`patchVaryHeaders(${initial ?? 'none'} + ${added.join(' ')}) is ${expected}`, function () {
      const response = headers(initial === undefined ? {} : { Vary: initial });
      patchVaryHeaders(response, added);
      expect(response.get('Vary')).to.equal(expected);
    });
  }

  const cacheControlTable: Array<[string | undefined, CacheControlDirectives, string[]]> = [
    [undefined, { private: true }, ['private']],
    ['', { private: true }, ['private']],
    ['', { no_cache: 'Set-Cookie' }, ['no-cache=Set-Cookie']],
    ['', { 'no-cache': 'Set-Cookie' }, ['no-cache=Set-Cookie']],
    ['no-cache=Set-Cookie', { no_cache: true }, ['no-cache']],
    ['no-cache=Set-Cookie,no-cache=Link', { no_cache: true }, ['no-cache']],
    ['no-cache=Set-Cookie', { no_cache: 'Link' }, ['no-cache=Set-Cookie', 'no-cache=Link']],
    ['no-cache=Set-Cookie,no-cache=Link', { no_cache: 'Custom' }, ['no-cache=Set-Cookie', 'no-cache=Link', 'no-cache=Custom']],
    ['private', { private: true }, ['private']],
    ['private', { public: true }, ['public']],
    ['public', { public: true }, ['public']],
    ['public', { private: true }, ['private']],
    ['must-revalidate,max-age=60,private', { public: true }, ['must-revalidate', 'max-age=60', 'public']],
    ['must-revalidate,max-age=60,public', { private: true }, ['must-revalidate', 'max-age=60', 'private']],
    ['must-revalidate,max-age=60', { public: true }, ['must-revalidate', 'max-age=60', 'public']],
    // Beyond Django's table: camelCase names, the max-age minimum, and false removing a directive.
    ['max-age=60', { maxAge: 3600 }, ['max-age=60']],
    ['max-age=3600', { maxAge: 60, staleWhileRevalidate: 30 }, ['max-age=60', 'stale-while-revalidate=30']],
    ['public, max-age=60', { public: false }, ['max-age=60']],
  ];
  for (const [initial, directives, expected] of cacheControlTable) {
    it(`patchCacheControl(${initial ?? 'none'} + ${JSON.stringify(directives)})`, function () {
      const response = headers(initial === undefined ? {} : { 'Cache-Control': initial });
      patchCacheControl(response, directives);
      expect(new Set(response.get('Cache-Control')!.split(/\s*,\s*/))).to.deep.equal(new Set(expected));
    });
  }

  it('getMaxAge reads a number, and nothing else', function () {
    expect(getMaxAge(headers({ 'Cache-Control': 'public, max-age=3600' }))).to.equal(3600);
    expect(getMaxAge(headers({ 'Cache-Control': 'max-age=soon' }))).to.equal(undefined);
    expect(getMaxAge(headers({ 'Cache-Control': 'no-cache' }))).to.equal(undefined);
    expect(getMaxAge(headers())).to.equal(undefined);
  });

  it('patchResponseHeaders adds Expires unless present, and the smaller max-age', function () {
    const now = Date.UTC(2026, 10, 22, 12, 0, 0);
    const response = headers({ 'Cache-Control': 'max-age=30' });
    patchResponseHeaders(response, 600, now);
    expect(response.get('Expires')).to.equal('Sun, 22 Nov 2026 12:10:00 GMT');
    expect(response.get('Cache-Control')).to.equal('max-age=30');
    const dated = headers({ Expires: 'Sun, 22 Nov 2026 13:00:00 GMT' });
    patchResponseHeaders(dated, 600, now);
    expect(dated.get('Expires')).to.equal('Sun, 22 Nov 2026 13:00:00 GMT');
    expect(dated.get('Cache-Control')).to.equal('max-age=600');
  });

  it('addNeverCacheHeaders: Expires now, and every directive that keeps a copy away', function () {
    const now = Date.UTC(2026, 10, 22, 12, 0, 0);
    const response = headers({ 'Cache-Control': 'public, max-age=600' });
    addNeverCacheHeaders(response, now);
    expect(response.get('Expires')).to.equal('Sun, 22 Nov 2026 12:00:00 GMT');
    expect(response.get('Cache-Control')).to.equal('max-age=0, no-cache, no-store, must-revalidate, private');
  });
});

describe('Page keys', function () {
  const request = (target: string, extra: Record<string, string> = {}) => ({ method: 'GET', origin: 'http://www.example.com', target, headers: extra });

  it("are Django's for a page that varies on nothing (test_get_cache_key, on host www.example.com)", function () {
    expect(pageKey('settingsprefix', 'GET', pageUrl(request('/cache/test/'), undefined), [], {})).to.equal(
      'views.decorators.cache.cache_page.settingsprefix.GET.18a03f9c9649f7d684af5db3524f5c99.d41d8cd98f00b204e9800998ecf8427e',
    );
    expect(pageKey('settingsprefix', 'GET', pageUrl(request('/cache/test/?test=1'), undefined), [], {})).to.equal(
      'views.decorators.cache.cache_page.settingsprefix.GET.beaf87a9a99ee81c673ea2d67ccbec2a.d41d8cd98f00b204e9800998ecf8427e',
    );
    expect(headerListKey('localprefix', 'http://www.example.com/cache/test/')).to.equal('views.decorators.cache.cache_header.localprefix.18a03f9c9649f7d684af5db3524f5c99');
  });

  it('differ by host, by query, by method and by the values of the varied headers', function () {
    const key = (origin: string, target: string, method = 'GET', values: Record<string, string> = {}) =>
      pageKey('', method, pageUrl({ method, origin, target, headers: values }, undefined), ['accept-language', 'cookie'], values);
    const keys = [
      key('http://sub-1.example.com', '/'),
      key('http://sub-2.example.com', '/'),
      key('http://sub-1.example.com', '/?a=1'),
      key('http://sub-1.example.com', '/', 'HEAD'),
      key('http://sub-1.example.com', '/', 'GET', { cookie: 'id=1' }),
      key('http://sub-1.example.com', '/', 'GET', { cookie: 'id=2' }),
      // Values that Django's concatenation would merge: "ab" + "c" and "a" + "bc".
      key('http://sub-1.example.com', '/', 'GET', { 'accept-language': 'ab', cookie: 'c' }),
      key('http://sub-1.example.com', '/', 'GET', { 'accept-language': 'a', cookie: 'bc' }),
      key('http://sub-1.example.com', '/', 'GET', { cookie: '' }),
    ];
    expect(new Set(keys).size).to.equal(keys.length);
  });

  it('learn a header list: lower-case, sorted, once each; none for Vary: *', function () {
    expect(learnHeaderList('Cookie, Accept-Language, cookie')).to.deep.equal(['accept-language', 'cookie']);
    expect(learnHeaderList(undefined)).to.deep.equal([]);
    expect(learnHeaderList('Cookie, *')).to.equal(undefined);
  });

  it('with a query allow-list, keep only those parameters, in name order', function () {
    const allowed = new Set(['page', 'sort']);
    const url = (target: string) => pageUrl(request(target), allowed);
    expect(url('/list?sort=new&utm_source=mail&page=2')).to.equal('http://www.example.com/list?page=2&sort=new');
    expect(url('/list?page=2&sort=new')).to.equal(url('/list?utm_campaign=x&sort=new&page=2'));
    expect(url('/list?utm_source=mail')).to.equal('http://www.example.com/list');
    expect(url('/list?page=2')).not.to.equal(url('/list?page=3'));
  });
});
