/**
 * Generated templates through the differential oracle: seeded random trees of text, values, cache
 * blocks, loops, conditions, includes, macros, filter and set blocks, nested up to depth 3, written out
 * as Nunjucks and Eta and checked in every render mode on caches that answer at once, one that answers
 * asynchronously, and Redis.
 *
 * FRAGCACHE_GENERATED_RUNS sets how many trees (default 150); a failure prints fast-check's seed and
 * path, and FRAGCACHE_GENERATED_SEED replays a seed.
 */
import fc from 'fast-check';
import { CACHE_KINDS, RENDER_MODES, applies, checkCase, registryOf, type Case, type Engine, type Expectation, type Fragment, type OracleCaches, type RenderMode, type Templates } from './differential.js';

type Node =
  | { readonly kind: 'text'; readonly text: string }
  | { readonly kind: 'value'; readonly of: 'text' | 'rev' | 'loop' }
  | { readonly kind: 'cache'; readonly trim: boolean; readonly body: readonly Node[] }
  | { readonly kind: 'for'; readonly body: readonly Node[] }
  | { readonly kind: 'if'; readonly negate: boolean; readonly body: readonly Node[]; readonly otherwise: readonly Node[] }
  | { readonly kind: 'include' | 'macro' | 'filter' | 'set'; readonly body: readonly Node[] };

const { tree } = fc.letrec<{ nodes: readonly Node[]; node: Node; tree: readonly Node[] }>((tie) => ({
  nodes: fc.array(tie('node'), { maxLength: 3 }),
  node: fc.oneof(
    { maxDepth: 3, depthIdentifier: 'template' },
    fc.oneof(
      fc.stringMatching(/^[a-z <>&"'\n]{0,6}$/).map((text): Node => ({ kind: 'text', text })),
      fc.constantFrom('text', 'rev', 'loop').map((of): Node => ({ kind: 'value', of })),
    ),
    fc.record({ kind: fc.constant('cache'), trim: fc.boolean(), body: tie('nodes') }),
    fc.record({ kind: fc.constant('cache'), trim: fc.boolean(), body: tie('nodes') }),
    fc.record({ kind: fc.constant('for'), body: tie('nodes') }),
    fc.record({ kind: fc.constant('if'), negate: fc.boolean(), body: tie('nodes'), otherwise: tie('nodes') }),
    fc.record({ kind: fc.constantFrom('include', 'macro', 'filter', 'set'), body: tie('nodes') }),
  ) as fc.Arbitrary<Node>,
  tree: fc.array(tie('node'), { minLength: 1, maxLength: 4 }),
}));

/** Where the writer stands in a tree: enclosing loop variables and what it has written so far. */
interface Scope {
  /** The enclosing loop variables, as the code at this point names them. */
  readonly loops: readonly string[];
  /** Eta: inside a partial, the includer's loop variables are `it.<name>`. */
  readonly names: readonly string[];
  /** Inside a construct the engine runs synchronously (a macro; for Nunjucks also filter and set). */
  readonly synchronous: boolean;
  /** Inside a for or if of the same template that Nunjucks does not make asynchronous. */
  readonly inSyncBranch: boolean;
  /** The template this code is in was included where its engine does not wait for it. */
  readonly notWaitedFor: boolean;
  /** Whether this code runs (every loop runs twice; `flag` is true). */
  readonly runs: boolean;
}

/** A generated case: its templates per mode, its fragments, and what the model says about its blocks. */
interface Written {
  templates: Record<string, string>;
  fragments: Fragment[];
  /** A cache block runs. */
  blockRuns: boolean;
  /** A cache block runs where an asynchronous cache cannot be waited for. */
  unsafeBlockRuns: boolean;
}

/** Whether Nunjucks turns a for or if with these children into asyncEach or ifAsync: it holds a cache block outside a synchronous construct. */
function holdsAsyncCall(nodes: readonly Node[]): boolean {
  return nodes.some((node) => {
    if (node.kind === 'cache') return true;
    if (node.kind === 'text' || node.kind === 'value' || node.kind === 'include' || node.kind === 'macro' || node.kind === 'filter' || node.kind === 'set') return false;
    return holdsAsyncCall(node.body) || (node.kind === 'if' && holdsAsyncCall(node.otherwise));
  });
}

function combinations(count: number): number[][] {
  return count === 0 ? [[]] : combinations(count - 1).flatMap((rest) => [1, 2].map((i) => [...rest, i]));
}

/** Writes a tree as one engine's templates, for an asynchronous render or not. */
function write(engine: Engine, root: readonly Node[], asynchronous: boolean): Written {
  const written: Written = { templates: {}, fragments: [], blockRuns: false, unsafeBlockRuns: false };
  let ids = 0;
  const nunjucks = engine === 'nunjucks';
  const out = (code: string) => (nunjucks ? `{{ ${code} }}` : `<%= ${code} %>`);

  const nodes = (list: readonly Node[], scope: Scope): string => list.map((node) => one(node, scope)).join('');

  const one = (node: Node, scope: Scope): string => {
    const loopName = scope.names.at(-1);
    switch (node.kind) {
      case 'text':
        return node.text;
      case 'value':
        if (node.of === 'loop' && loopName !== undefined) return out(loopName);
        return out(nunjucks ? (node.of === 'text' ? 'text' : 'rev') : `it.${node.of === 'text' ? 'text' : 'rev'}`);
      case 'cache': {
        const name = `f${++ids}`;
        for (const values of combinations(scope.loops.length)) written.fragments.push([name, values]);
        if (scope.runs) {
          written.blockRuns = true;
          const unsafe = engine === 'nunjucks' ? scope.synchronous || scope.inSyncBranch || scope.notWaitedFor : scope.synchronous || scope.notWaitedFor;
          written.unsafeBlockRuns ||= unsafe;
        }
        const vary = scope.names.map((loop) => (nunjucks ? loop : `(${loop})`)).join(' ');
        const trim = node.trim ? '-' : '';
        const tick = nunjucks ? '{{ tick() }}{{ rev }}' : '<% it.tick() %><%= it.rev %>';
        const inner = nodes(node.body, scope);
        return nunjucks
          ? `{%${trim} cache 60 ${name} ${vary} ${trim}%}${inner}${tick}{%${trim} endcache ${trim}%}`
          : `<%${trim} cache 60 ${name} ${vary} ${trim}%>${inner}${tick}<%${trim} endcache ${trim}%>`;
      }
      case 'for': {
        const loop = `i${scope.loops.length}`;
        const inner: Scope = {
          ...scope,
          loops: [...scope.loops, loop],
          names: [...scope.names, loop],
          inSyncBranch: scope.inSyncBranch || !holdsAsyncCall(node.body),
        };
        return nunjucks ? `{% for ${loop} in items %}${nodes(node.body, inner)}{% endfor %}` : `<% for (const ${loop} of it.items) { %>${nodes(node.body, inner)}<% } %>`;
      }
      case 'if': {
        const syncBranch = scope.inSyncBranch || !holdsAsyncCall([...node.body, ...node.otherwise]);
        const whenTrue = nodes(node.body, { ...scope, inSyncBranch: syncBranch, runs: scope.runs && !node.negate });
        const whenFalse = nodes(node.otherwise, { ...scope, inSyncBranch: syncBranch, runs: scope.runs && node.negate });
        return nunjucks
          ? `{% if ${node.negate ? 'not ' : ''}flag %}${whenTrue}{% else %}${whenFalse}{% endif %}`
          : `<% if (${node.negate ? '!' : ''}it.flag) { %>${whenTrue}<% } else { %>${whenFalse}<% } %>`;
      }
      case 'include': {
        const partial = `p${++ids}`;
        // Nunjucks waits for an include only outside synchronous constructs and outside for/if it runs synchronously;
        // Eta awaits includeAsync, except inside a macro, where only the synchronous include() is possible.
        const waited = nunjucks ? !scope.synchronous && !scope.inSyncBranch : !(asynchronous && scope.synchronous);
        const inner: Scope = {
          loops: scope.loops,
          names: nunjucks ? scope.loops : scope.loops.map((loop) => `it.${loop}`),
          synchronous: nunjucks ? false : scope.synchronous,
          inSyncBranch: false,
          notWaitedFor: scope.notWaitedFor || !waited,
          runs: scope.runs,
        };
        written.templates[partial] = nodes(node.body, inner);
        if (nunjucks) return `{% include "${partial}.njk" %}`;
        const data = `{ ...it${scope.loops.map((loop, i) => `, ${loop}: ${scope.names[i]!}`).join('')} }`;
        return asynchronous && !scope.synchronous ? `<%~ await includeAsync("./${partial}", ${data}) %>` : `<%~ include("./${partial}", ${data}) %>`;
      }
      case 'macro': {
        const macro = `m${++ids}`;
        const inner: Scope = { ...scope, names: scope.loops, synchronous: true };
        const parameters = scope.loops.join(', ');
        const body = nodes(node.body, inner);
        return nunjucks
          ? `{% macro ${macro}(${parameters}) %}${body}{% endmacro %}{{ ${macro}(${parameters}) }}`
          : `<% const ${macro} = (${parameters}) => { %>${body}<% }; ${macro}(${scope.names.join(', ')}) %>`;
      }
      case 'filter':
      case 'set': {
        if (!nunjucks) return nodes(node.body, scope);
        const body = nodes(node.body, { ...scope, synchronous: true });
        if (node.kind === 'filter') return `{% filter upper %}${body}{% endfilter %}`;
        const captured = `s${++ids}`;
        return `{% set ${captured} %}${body}{% endset %}[{{ ${captured} }}]`;
      }
    }
  };

  written.templates.page = nodes(root, { loops: [], names: [], synchronous: false, inSyncBranch: false, notWaitedFor: false, runs: true });
  return written;
}

/** The case of a tree in one engine, with the model's expectation. */
function caseOf(engine: Engine, root: readonly Node[]): Case {
  const model = write(engine, root, true);
  return {
    engine,
    title: 'generated',
    templates: (mode: RenderMode): Templates => write(engine, root, mode.asynchronous).templates,
    fragments: model.fragments,
    expect: (mode, kind): Expectation => {
      if (kind.answersAtOnce) return 'works';
      if (!mode.canWait) return 'refused';
      return model.unsafeBlockRuns ? 'fails' : 'works';
    },
  };
}

const RUNS = Number(process.env.FRAGCACHE_GENERATED_RUNS ?? 150);
const SEED = process.env.FRAGCACHE_GENERATED_SEED === undefined ? undefined : Number(process.env.FRAGCACHE_GENERATED_SEED);
const KINDS = CACHE_KINDS.filter((kind) => ['locmem', 'dummy', 'async memory', 'redis'].includes(kind.name));

describe('Generated templates: a cached page is the uncached page', function () {
  this.timeout(0);
  const registries = new Map<string, OracleCaches>();

  before(async function () {
    for (const kind of KINDS) registries.set(kind.name, await registryOf(kind));
  });
  after(async function () {
    await Promise.all([...registries.values()].map((registry) => registry.close()));
  });

  it(`renders ${RUNS} generated trees in both engines, every mode, on ${KINDS.map((kind) => kind.name).join(', ')}`, async function () {
    await fc.assert(
      fc.asyncProperty(
        tree.filter((root) => write('nunjucks', root, true).blockRuns),
        async (root) => {
          for (const engine of ['nunjucks', 'eta'] as const) {
            const testCase = caseOf(engine, root);
            for (const mode of RENDER_MODES.filter((candidate) => applies(candidate, testCase))) {
              for (const kind of KINDS) {
                try {
                  await checkCase(mode, kind, registries.get(kind.name)!, testCase);
                } catch (error) {
                  const templates = typeof testCase.templates === 'function' ? testCase.templates(mode) : testCase.templates;
                  throw new Error(`${engine} ${mode.name} on ${kind.name}, templates ${JSON.stringify(templates)}:\n${String(error)}`, { cause: error });
                }
              }
            }
          }
        },
      ),
      { numRuns: RUNS, endOnFailure: process.env.FRAGCACHE_GENERATED_SHRINK === undefined, ...(SEED !== undefined && { seed: SEED }) },
    );
  });
});
