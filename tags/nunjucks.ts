/**
 * The `{% cache %}` tag for Nunjucks.
 *
 *     {% cache TIMEOUT NAME [VARY ...] [using="ALIAS"] %} ... {% endcache %}
 *
 * By default the tag compiles to Nunjucks's synchronous extension call, which works in every construct
 * and every way of rendering, with caches that answer synchronously (locmem, dummy). With
 * `{ async: true }` it compiles to the asynchronous call, which works with every cache in renders that
 * fragcache starts (`renderAsync`, `renderStringAsync`, `expressViews`): Nunjucks goes on without
 * waiting for an asynchronous tag in some constructs, and only a render that fragcache watches can notice.
 *
 * Nothing here uses the nunjucks package itself: the tag works with whatever copy of Nunjucks the
 * application renders with, and marks its output safe with that environment's own `safe` filter.
 */
import { createHash } from 'node:crypto';
import { CacheTagError, TemplateSyntaxError, type Awaitable, type CacheRegistry } from 'fragcache';
import { FragmentRuntime, KEYWORDS, KEYWORDS_NOT_LAST, NO_OPTIONS, NoWaiting, RenderWatch, TOO_FEW_ARGUMENTS, unclosedTag, type BlockOptions, type RenderBody } from 'fragcache/fragments';

// The parts of Nunjucks's (untyped) parser API this tag uses.
interface Token {
  type: string;
  value: string;
  lineno: number;
  colno: number;
}
interface Tokenizer {
  str: string;
  tags: Record<string, string>;
  trimBlocks: boolean;
  lstripBlocks: boolean;
  nextToken(): Token | null;
}
interface ParserNode {
  lineno: number;
  colno: number;
  /** The nodes of class `type` in this node's tree. */
  findAll(type: NodeClass): ParserNode[];
}
interface Parser {
  tokens: Tokenizer;
  nextToken(withWhitespace?: boolean): Token | null;
  peekToken(): Token | null;
  pushToken(token: Token): void;
  parseExpression(): ParserNode;
  parseUntilBlocks(...names: string[]): ParserNode;
  advanceAfterBlockEnd(name?: string): Token;
}
interface SymbolNode extends ParserNode {
  value: string;
}
type NodeClass<T extends ParserNode = ParserNode> = new (lineno: number, colno: number, ...fields: unknown[]) => T;
type CallNodeClass = new (extension: object, method: string, args: ParserNode, contentArgs: ParserNode[]) => ParserNode;
interface Nodes {
  NodeList: NodeClass;
  Literal: NodeClass;
  Symbol: NodeClass<SymbolNode>;
  CallExtension: CallNodeClass;
  CallExtensionAsync: CallNodeClass;
  Extends: NodeClass;
}
/** Lexer options: the environment's options, or those of a tokenizer. */
interface LexerOptions {
  trimBlocks?: boolean;
  lstripBlocks?: boolean;
  tags?: Record<string, string>;
}
interface Lexer {
  lex(str: string, opts: LexerOptions): Tokenizer;
}
type Callback = (error: unknown, html?: string) => void;
/** What an asynchronous call hands back to Nunjucks: an error, or the block's output. */
type CallDone = (error: unknown, output?: unknown) => void;
type AsyncBody = (done: (error: unknown, html: string) => void) => void;

/** The part of a Nunjucks Environment fragcache renders with; any copy or version of Nunjucks 3 has it. */
export interface NunjucksEnvironment {
  render(name: string, context: object, callback: Callback): unknown;
  renderString(source: string, context: object, options: { path?: string }, callback: Callback): unknown;
}

/** What Nunjucks keeps of a loaded template: its source and where it was found. */
interface LoadedTemplate {
  tmplStr?: unknown;
  path?: unknown;
}

/** The parts of the rendering environment a tag uses. */
interface RenderingEnvironment {
  opts: LexerOptions;
  getFilter(name: 'safe'): (html: string) => unknown;
  getTemplate(name: string, eagerCompile: boolean, parentName: string | undefined): LoadedTemplate | undefined;
}

/** The part of Nunjucks's render context a tag receives. */
interface TemplateContext {
  env: RenderingEnvironment;
  lookup(name: string): unknown;
}

/**
 * What Nunjucks reports on an error it did not make itself: it reads `lineno` and calls `Update(path)`
 * with the template it was rendering; `holding` turns that into the template the tag stands in.
 */
function withNunjucksProtocol(error: unknown, holding: (rendered: string) => string = (rendered) => rendered): unknown {
  if (!(error instanceof CacheTagError) || error.line === undefined) return error;
  return Object.assign(error, {
    lineno: error.line,
    Update(path: string | undefined) {
      // Nunjucks calls this at every template the error passes through; the first (innermost) counts.
      if (path !== undefined && error.template === undefined) error.locate(holding(path));
      return error;
    },
  });
}

/** The next token that is not whitespace. */
function nextSignificant(tokenizer: Tokenizer): Token | null {
  let token = tokenizer.nextToken();
  while (token && token.type === 'whitespace') token = tokenizer.nextToken();
  return token;
}

/** Identifies a template by its source, which is all a tag's parser knows of it. */
function sourceIdOf(source: string): string {
  return createHash('md5').update(source).digest('hex');
}

/** The most templates `templateHolding` reads before it gives up. */
const TEMPLATES_SEARCHED = 50;

/** The literal names a template extends, imports from or includes (`{% extends "x" %}`, `{% import "x" as y %}`, `{% from "x" import y %}`, `{% include "x" %}`). */
function templatesReferenced(source: string, env: RenderingEnvironment, lexer: Lexer): string[] {
  const tokenizer = lexer.lex(source, env.opts);
  const names: string[] = [];
  for (let token = tokenizer.nextToken(); token; token = tokenizer.nextToken()) {
    if (token.type !== 'block-start') continue;
    const word = nextSignificant(tokenizer);
    if (word?.type !== 'symbol' || !['extends', 'import', 'from', 'include'].includes(word.value)) continue;
    const name = nextSignificant(tokenizer);
    if (name?.type === 'string') names.push(name.value);
  }
  return names;
}

/**
 * The template whose source has `sourceId`, searched from the template Nunjucks was rendering through
 * the templates it extends, imports and includes: Nunjucks names the rendered template in errors, also
 * when the tag stands in a layout it extends or a macro it imports. Only errors pay for the search. When
 * it does not find the template (`{% extends layout %}` names it by a variable), the answer says the tag
 * is in one the rendered template uses, if the rendered one was read and is not it.
 */
function templateHolding(env: RenderingEnvironment, lexer: Lexer, rendered: string, sourceId: string): string {
  const queue: Array<[name: string, parent: string | undefined]> = [[rendered, undefined]];
  const seen = new Set<string>();
  let renderedIsNotIt = false;
  while (queue.length > 0 && seen.size < TEMPLATES_SEARCHED) {
    const [name, parent] = queue.shift()!;
    let template: LoadedTemplate | undefined;
    try {
      // Without a callback, an asynchronous loader gives nothing: the search stops there.
      template = env.getTemplate(name, false, parent);
    } catch {
      continue;
    }
    if (typeof template !== 'object' || template === null) continue;
    const path = typeof template.path === 'string' ? template.path : name;
    if (seen.has(path) || typeof template.tmplStr !== 'string') continue;
    seen.add(path);
    if (sourceIdOf(template.tmplStr) === sourceId) return path;
    renderedIsNotIt ||= name === rendered;
    for (const referenced of templatesReferenced(template.tmplStr, env, lexer)) queue.push([referenced, path]);
  }
  return renderedIsNotIt ? `${rendered} (in a template it extends, imports or includes)` : rendered;
}

/**
 * The constructs around a cache block that decide how its tag is compiled, with their end tags: those
 * Nunjucks renders synchronously even in an asynchronous render, and loops and tests, followed so that
 * an `else` is known to be a loop's or a test's.
 */
const CONSTRUCT_ENDS = new Map<string, string>([
  ['macro', 'endmacro'],
  ['call', 'endcall'],
  ['filter', 'endfilter'],
  ['set', 'endset'],
  ['for', 'endfor'],
  ['asyncEach', 'endeach'],
  ['asyncAll', 'endall'],
  ['if', 'endif'],
  ['ifAsync', 'endif'],
]);
const LOOPS = new Set(['for', 'asyncEach', 'asyncAll']);
const RAW_BLOCKS = new Map([
  ['raw', 'endraw'],
  ['verbatim', 'endverbatim'],
]);

/** Where fragcache's renders keep their watch, in the variables Nunjucks copies into every included template. */
const WATCH_VARIABLE = '__fragcacheRender';

const ADVICE_ON_CONSTRUCTS =
  'Nunjucks does not wait inside {% for %}, {% if %}, {% asyncAll %}, macros, {% call %}, {% filter %} or {% set %} blocks. ' +
  'Around an {% include %} (or {% block %}) of a template with cache blocks, loop with {% asyncEach %} … {% endeach %} and test with {% ifAsync %}; ' +
  'in a macro, {% call %}, {% filter %} or {% set %} block, give the block a cache that answers synchronously (using="…")';

const NUNJUCKS_ADVICE = { overlapping: ADVICE_ON_CONSTRUCTS, unfinished: ADVICE_ON_CONSTRUCTS };

const EXTENDS_IN_BODY = '{% extends %} inside a cache block would choose the layout only when the block renders, not on a hit: put it outside the block';

/** How a tag is compiled: Nunjucks's synchronous call, its asynchronous call, or the synchronous call inside a construct. */
type Mode = 'sync' | 'async' | SynchronousConstruct;
/** Where Nunjucks cannot use an asynchronous call: `else` is a loop's `{% else %}`, which it fails to compile with one. */
type SynchronousConstruct = 'macro' | 'call' | 'filter' | 'set' | 'else';

/** Why a block cannot wait, by the `mode` its call was compiled with; `async` blocks may wait in a watched render. */
const CANNOT_WAIT: Readonly<Record<Mode, NoWaiting>> = {
  sync: new NoWaiting(
    'this template is compiled for synchronous rendering: create the extension with new CacheExtension({ async: true }) and render with renderAsync()',
  ),
  async: new NoWaiting(
    'fragcache sees no render of its own around the block, so nothing would notice if Nunjucks did not wait for it: ' +
      'render with renderAsync() or renderStringAsync() from fragcache/nunjucks (with Express, expressViews(env, app)); ' +
      'in a template imported without context, blocks cannot wait (import it with context)',
  ),
  macro: insideConstruct('macro'),
  call: insideConstruct('call'),
  filter: insideConstruct('filter'),
  set: insideConstruct('set'),
  else: new NoWaiting(
    'the block is in the {% else %} of a loop, where Nunjucks cannot compile a tag that waits: ' +
      'test for the empty list with {% if %} around the loop instead, or give the block a cache that answers synchronously (using="…")',
  ),
};

function insideConstruct(construct: string): NoWaiting {
  return new NoWaiting(
    `the block is inside {% ${construct} %}, which Nunjucks renders synchronously even in an asynchronous render: ` +
      'move the cache block out of it, or give it a cache that answers synchronously (using="…")',
  );
}

/**
 * The innermost synchronous construct that is open at the end of `source`, found with Nunjucks's own
 * lexer. A `set` counts only in its block form (`{% set x %}...{% endset %}`), a loop only after its `else`.
 */
function openSynchronousConstruct(source: string, like: Tokenizer, lexer: Lexer): SynchronousConstruct | undefined {
  const tokenizer = lexer.lex(source, { trimBlocks: like.trimBlocks, lstripBlocks: like.lstripBlocks });
  tokenizer.tags = like.tags;
  const open: Array<{ readonly word: string; synchronous: SynchronousConstruct | undefined }> = [];
  let rawEnd: string | undefined;
  for (let token = tokenizer.nextToken(); token; token = tokenizer.nextToken()) {
    if (token.type !== 'block-start') continue;
    const word = nextSignificant(tokenizer);
    if (!word || word.type !== 'symbol') continue;
    if (rawEnd !== undefined) {
      if (word.value === rawEnd) rawEnd = undefined;
      continue;
    }
    rawEnd = RAW_BLOCKS.get(word.value);
    const innermost = open.at(-1);
    if (word.value === 'set') {
      let rest = nextSignificant(tokenizer);
      let assigns = false;
      for (; rest && rest.type !== 'block-end'; rest = nextSignificant(tokenizer)) assigns ||= rest.type === 'operator' && rest.value === '=';
      if (!assigns) open.push({ word: 'set', synchronous: 'set' });
    } else if (word.value === 'macro' || word.value === 'call' || word.value === 'filter') {
      open.push({ word: word.value, synchronous: word.value });
    } else if (CONSTRUCT_ENDS.has(word.value)) {
      open.push({ word: word.value, synchronous: undefined });
    } else if (word.value === 'else' && innermost !== undefined && LOOPS.has(innermost.word)) {
      innermost.synchronous = 'else';
    } else if (innermost !== undefined && CONSTRUCT_ENDS.get(innermost.word) === word.value) {
      open.pop();
    }
  }
  for (let index = open.length - 1; index >= 0; index--) if (open[index]!.synchronous !== undefined) return open[index]!.synchronous;
  return undefined;
}

function offsetOf(source: string, lineno: number, colno: number): number {
  let offset = 0;
  for (let line = 0; line < lineno; line++) offset = source.indexOf('\n', offset) + 1;
  return offset + colno;
}

export interface CacheExtensionOptions {
  /** The registry whose caches the tag uses; default: the process-wide `caches`. */
  caches?: CacheRegistry;
  /**
   * Compile to Nunjucks's asynchronous extension call, for caches that answer asynchronously; render
   * with `renderAsync`, `renderStringAsync` or `expressViews`. Default false.
   */
  async?: boolean;
}

/**
 * A block's keyword arguments, which the compiled call passes after their space-separated names and
 * before the vary values; removes them from `values`, leaving the vary values.
 */
function takeKeywords(names: string, values: unknown[]): BlockOptions {
  if (names === '') return NO_OPTIONS;
  const options: Record<string, unknown> = {};
  for (const name of names.split(' ')) options[name] = values.shift();
  return options;
}

/** The Nunjucks extension: `env.addExtension('CacheExtension', new CacheExtension({ caches }))`. */
export class CacheExtension {
  readonly tags = ['cache'];
  readonly async: boolean;
  private readonly runtime: FragmentRuntime;
  /** The environment's lexer, learnt when it first parses a tag; errors use it to find their template. */
  private lexer: Lexer | undefined;
  /** The source id of each template being parsed, computed once per template. */
  private readonly sourceIds = new WeakMap<Tokenizer, string>();
  /** The environment that rendered last, and its `safe` filter: an extension rarely serves two. */
  private safeOf: { env: RenderingEnvironment; safe: (html: string) => unknown } | undefined;

  constructor(options: CacheExtensionOptions = {}) {
    this.runtime = new FragmentRuntime(options.caches);
    this.async = options.async ?? false;
  }

  parse(parser: Parser, nodes: Nodes, lexer: Lexer): ParserNode {
    this.lexer = lexer;
    const tag = parser.nextToken()!;
    const line = tag.lineno + 1;
    const fail = (reason: string): never => {
      throw withNunjucksProtocol(new TemplateSyntaxError(reason, { line }));
    };
    const atBlockEnd = (): boolean => {
      const next = parser.peekToken();
      return !next || next.type === 'block-end';
    };

    if (atBlockEnd()) fail(TOO_FEW_ARGUMENTS);
    const timeout = parser.parseExpression();
    if (atBlockEnd()) fail(TOO_FEW_ARGUMENTS);
    const name = this.parseFragmentName(parser);

    const vary: ParserNode[] = [];
    const keywords = new Map<string, ParserNode>();
    while (!atBlockEnd()) {
      const argument = parser.parseExpression();
      const next = parser.peekToken();
      if (argument instanceof nodes.Symbol && KEYWORDS.includes(argument.value) && next?.value === '=') {
        parser.nextToken();
        keywords.set(argument.value, parser.parseExpression());
      } else {
        if (keywords.size > 0) fail(KEYWORDS_NOT_LAST);
        vary.push(argument);
      }
    }
    parser.advanceAfterBlockEnd(tag.value);

    const body = parser.parseUntilBlocks('endcache');
    if (parser.peekToken()?.value !== 'endcache') fail(unclosedTag(line));
    parser.advanceAfterBlockEnd();
    const [extendsTag] = body.findAll(nodes.Extends);
    if (extendsTag !== undefined) throw withNunjucksProtocol(new TemplateSyntaxError(EXTENDS_IN_BODY, { line: extendsTag.lineno + 1 }));

    // Inside a synchronous construct the asynchronous call cannot work (Nunjucks drops its output, or
    // fails to compile it inside call and filter blocks), so the synchronous call is used there too.
    const construct = this.async
      ? openSynchronousConstruct(parser.tokens.str.slice(0, offsetOf(parser.tokens.str, tag.lineno, tag.colno)), parser.tokens, lexer)
      : undefined;
    const mode: Mode = construct ?? (this.async ? 'async' : 'sync');
    const literal = (value: unknown) => new nodes.Literal(tag.lineno, tag.colno, value);
    const args = new nodes.NodeList(tag.lineno, tag.colno, [
      literal(name),
      literal(line),
      literal(mode),
      literal(this.sourceIdOf(parser.tokens)),
      timeout,
      literal([...keywords.keys()].join(' ')),
      ...keywords.values(),
      ...vary,
    ]);
    const Call = mode === 'async' ? nodes.CallExtensionAsync : nodes.CallExtension;
    return new Call(this, mode === 'async' ? 'runAsync' : 'run', args, [body]);
  }

  /**
   * `html` as HTML Nunjucks will not escape again: a SafeString of the environment's own copy of
   * Nunjucks, made by its `safe` filter. (A flag on the compiled call would be lost: Nunjucks rebuilds
   * the call's node, without the flag, when it transforms an asynchronous filter or loop in the body.)
   */
  private markSafe(context: TemplateContext, html: string): unknown {
    const env = context.env;
    if (this.safeOf?.env !== env) this.safeOf = { env, safe: env.getFilter('safe') };
    return this.safeOf.safe(html);
  }

  private sourceIdOf(tokens: Tokenizer): string {
    let id = this.sourceIds.get(tokens);
    if (id === undefined) {
      id = sourceIdOf(tokens.str);
      this.sourceIds.set(tokens, id);
    }
    return id;
  }

  /** What an error of a block in the template with `sourceId` reports to Nunjucks. */
  private reported(error: unknown, context: TemplateContext, sourceId: string): unknown {
    const lexer = this.lexer;
    return withNunjucksProtocol(error, lexer && ((rendered) => templateHolding(context.env, lexer, rendered, sourceId)));
  }

  /**
   * NAME is taken literally, never evaluated: the source tokens up to the next space, so `sidebar`,
   * `local-thing`, `a.b` and `"quoted name"` (without its quotes) are all names.
   */
  private parseFragmentName(parser: Parser): string {
    const parts: Token[] = [parser.nextToken()!];
    for (let next = parser.nextToken(true); next && next.type !== 'whitespace'; next = parser.nextToken(true)) {
      if (next.type === 'block-end') {
        parser.pushToken(next);
        break;
      }
      parts.push(next);
    }
    if (parts.length === 1) return parts[0]!.value;
    return parts.map((part) => (part.type === 'string' ? JSON.stringify(part.value) : part.value)).join('');
  }

  /** The synchronous call: `run(context, name, line, mode, sourceId, timeout, keywordNames, ...keywordValues, ...vary, body)`. */
  run(context: TemplateContext, name: string, line: number, mode: Mode, sourceId: string, timeout: unknown, keywordNames: string, ...rest: unknown[]): unknown {
    const body = rest.pop() as AsyncBody;
    const options = takeKeywords(keywordNames, rest);
    let html: string;
    try {
      // Only in the asynchronous mode can a block inside this one (in an include) wait; a lookup on every
      // hit would cost the default mode.
      const watch = mode === 'sync' ? undefined : watchOf(context);
      html = this.runtime.render(name, timeout, options, rest, awaitableBody(body), undefined, line, watch, CANNOT_WAIT[mode]);
    } catch (error) {
      const reported = this.reported(error, context, sourceId);
      // After an asynchronous filter or tag, Nunjucks runs the rest of the template outside its own
      // try/catch, where a throw would stop Node. A render fragcache watches keeps the error and fails at its end.
      const watch = watchOf(context);
      if (watch === undefined) throw reported;
      watch.blockFailed(reported);
      html = '';
    }
    return this.markSafe(context, html);
  }

  /**
   * The asynchronous call: `runAsync(context, name, line, mode, sourceId, timeout, keywordNames, ...keywordValues, ...vary, body, done)`.
   * It may wait only in a render fragcache watches, and tells the watch while it does.
   */
  runAsync(context: TemplateContext, name: string, line: number, _mode: string, sourceId: string, timeout: unknown, keywordNames: string, ...rest: unknown[]): void {
    const done = rest.pop() as CallDone;
    const body = rest.pop() as AsyncBody;
    const options = takeKeywords(keywordNames, rest);
    const watch = watchOf(context);
    watch?.blockStarted(line);
    let html: Awaitable<string>;
    try {
      html = this.runtime.render(name, timeout, options, rest, awaitableBody(body), undefined, line, watch, watch ? undefined : CANNOT_WAIT.async);
    } catch (error) {
      watch?.blockFinished();
      return done(this.reported(error, context, sourceId));
    }
    // Straight to Nunjucks, with no frame of ours in between: in {% asyncEach %}, each item's block calls
    // the next item from here, and the stack grows by what every item adds.
    if (typeof html === 'string') {
      watch?.blockFinished();
      return done(null, this.markSafe(context, html));
    }
    const finish: BlockDone = (error, text) => {
      if (error) return done(this.reported(error, context, sourceId));
      // After a wait, Nunjucks runs the rest of the template inside this callback, outside its own
      // try/catch: an error there would escape as an unhandled rejection. Its error branch fails the render.
      try {
        done(null, this.markSafe(context, text!));
      } catch (thrown) {
        done(thrown);
      }
    };
    // Without a watch, only the body may wait (the cache answered at once): Nunjucks's own business.
    const output = watch ? watch.finishing(line, finish) : finish;
    html.then(
      (text) => output(null, text),
      (error: unknown) => output(error),
    );
  }
}

/** The watch of the render fragcache started, if it started this one. */
function watchOf(context: TemplateContext): WatchedRender | undefined {
  const watch = context.lookup(WATCH_VARIABLE);
  return watch instanceof WatchedRender ? watch : undefined;
}

/** Hands a block's result to Nunjucks. */
type BlockDone = (error: unknown, html?: string) => void;

/**
 * The watch of one render that fragcache started. When Nunjucks reports the render finished while a
 * block is still open, the render fails once every such block has finished: each then fails its own
 * template (so Nunjucks names it), and the first of those errors is the render's.
 */
class WatchedRender extends RenderWatch {
  private ended = false;
  private lost: unknown;
  private onSettled: (() => void) | undefined;

  /** `root` names the template rendered, when it has a name: kept errors are located from it. */
  constructor(private readonly root: string | undefined) {
    super(NUNJUCKS_ADVICE);
  }

  /**
   * Nunjucks reports a render's end a turn of the event loop late (setImmediate), while a block it did
   * not wait for may already have its cache's answer: such a block renders its body only after that
   * turn, by which time the end is known and the body is refused.
   */
  override async beforeBody(): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve));
    this.refuseIfBroken();
  }

  /** Finishes a block that waited: hands Nunjucks its result, or an error once the render has ended. */
  finishing(line: number, done: BlockDone): BlockDone {
    return (error, html) => {
      this.blockFinished();
      if (!this.ended) return done(error, html);
      const failure = error ?? this.unfinished(line);
      done(failure);
      this.lost ??= failure;
      if (!this.open) this.onSettled?.();
    };
  }

  /** The callback for Nunjucks's render: settles `resolve`/`reject` once, as the blocks allow. */
  callback(resolve: (html: string) => void, reject: (error: unknown) => void): Callback {
    return (error, html) => {
      // Nunjucks calls back again when a block that it did not wait for fails.
      if (this.ended) return;
      this.ended = true;
      // A block kept its error (see run), which Nunjucks never saw: it is located from the root, as Nunjucks would.
      if (this.failed) return reject(located(this.unfinished(), this.root));
      if (error) return reject(this.breakWith(error));
      if (!this.open) return resolve(html ?? '');
      // Blocks are still waiting: the render is broken from here, and fails once they have settled.
      const ending = this.unfinished();
      this.onSettled = () => reject(this.lost ?? ending);
    };
  }
}

/**
 * Adapts a compiled asynchronous body to the runtime: its HTML directly when it finished at once (so a
 * miss on a synchronous cache stays synchronous), else a Promise. The first result counts: a body whose
 * loop did not wait for an include reports that include's error, then its own end.
 */
function awaitableBody(body: AsyncBody): RenderBody {
  return () => {
    let settled = false;
    let failure: unknown;
    let html = '';
    let resolve: ((text: string) => void) | undefined;
    let reject: ((error: unknown) => void) | undefined;
    body((error, text) => {
      if (resolve && reject) {
        if (error) reject(error);
        else resolve(text);
        return;
      }
      if (settled) return;
      settled = true;
      failure = error;
      html = text;
    });
    if (settled) {
      if (failure) throw failure;
      return html;
    }
    return new Promise<string>((res, rej) => {
      resolve = res;
      reject = rej;
    });
  };
}

/** `error` located by Nunjucks's protocol from the template `rendered`, when there is one to name. */
function located(error: unknown, rendered: string | undefined): unknown {
  const protocol = error as { Update?: (path: string) => unknown };
  if (rendered !== undefined && typeof protocol.Update === 'function') protocol.Update(rendered);
  return error;
}

/** Runs `start` with a copy of `context` that carries a new watch, and resolves to the HTML it renders. */
function watched(context: object, root: string | undefined, start: (context: object, callback: Callback) => unknown): Promise<string> {
  const watch = new WatchedRender(root);
  return new Promise((resolve, reject) => {
    // Not { ...context, [key]: watch }: V8 builds that literal in a slow shape, and every variable lookup
    // of the render pays for it (about 1 µs a render).
    start(Object.assign({}, context, { [WATCH_VARIABLE]: watch }), watch.callback(resolve, reject));
  });
}

/**
 * Renders a template and resolves to its HTML: works with every cache, and fails rather than resolve
 * to a page Nunjucks did not finish.
 */
export function renderAsync(env: NunjucksEnvironment, name: string, context: object = {}): Promise<string> {
  return watched(context, name, (watchedContext, callback) => env.render(name, watchedContext, callback));
}

/** `renderAsync` for a template given as its source; `options.path` names it in errors. */
export function renderStringAsync(env: NunjucksEnvironment, source: string, context: object = {}, options: { path?: string } = {}): Promise<string> {
  return watched(context, options.path, (watchedContext, callback) => env.renderString(source, watchedContext, options, callback));
}

/** The part of an Express application `expressViews` uses. */
export interface ExpressApplication {
  set(setting: string, value: unknown): unknown;
}

/**
 * Makes Express's `res.render(name, locals)` render `name` with `renderAsync`, as `env.express(app)`
 * does with `env.render`; without an extension in the name, Express's `view engine` setting is added.
 */
export function expressViews(env: NunjucksEnvironment, app: ExpressApplication): void {
  class FragcacheView {
    readonly name: string;
    readonly path: string;

    constructor(name: string, options: { defaultEngine?: string }) {
      const engine = options.defaultEngine;
      if (/\.[^./\\]+$/.test(name)) this.name = name;
      else if (engine) this.name = `${name}${engine.startsWith('.') ? '' : '.'}${engine}`;
      else throw new Error('No default engine was specified and no extension was provided.');
      this.path = this.name;
    }

    render(locals: object, callback: Callback): void {
      renderAsync(env, this.name, locals).then((html) => callback(null, html), callback);
    }
  }
  app.set('view', FragcacheView);
}
