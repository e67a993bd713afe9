/**
 * The `{% cache %}` tag for Nunjucks.
 *
 *     {% cache TIMEOUT NAME [VARY ...] [using="ALIAS"] %} ... {% endcache %}
 *
 * By default the tag compiles to Nunjucks's synchronous extension call, which works in every construct
 * and every way of rendering, with caches that answer synchronously (locmem, dummy). With
 * `{ async: true }` it compiles to the asynchronous call, which works with every cache when the
 * template is rendered with a callback or `renderAsync()`.
 */
import nunjucks from 'nunjucks';
import { CacheTagError, TemplateSyntaxError, type Awaitable, type CacheRegistry } from '../src/index.js';
import { isPromiseLike } from '../src/base.js';
import { FragmentRuntime, NO_ALIAS, TOO_FEW_ARGUMENTS, USING_NOT_LAST, type RenderBody } from './fragment.js';

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
}
interface Lexer {
  lex(str: string, opts: { trimBlocks: boolean; lstripBlocks: boolean }): Tokenizer;
}
type Callback = (error: unknown, html?: unknown) => void;
type SyncBody = () => string;
type AsyncBody = (done: (error: unknown, html: string) => void) => void;

/** What Nunjucks reports on an error it did not make itself: it reads `lineno` and calls `Update(path)`. */
function withNunjucksProtocol(error: unknown): unknown {
  if (!(error instanceof CacheTagError) || error.line === undefined) return error;
  return Object.assign(error, {
    lineno: error.line,
    Update(path: string | undefined) {
      if (path !== undefined) error.locate(path);
      return error;
    },
  });
}

function insideConstructAdvice(construct: string): string {
  return `it is inside {% ${construct} %}, which Nunjucks renders synchronously even in an asynchronous render; move the cache block out of it, or use a cache that answers synchronously (locmem)`;
}

const SYNC_ADVICE =
  'create the extension with new CacheExtension({ async: true }) and render with renderAsync() or a callback';

/**
 * Block constructs that Nunjucks compiles to synchronous code even in an asynchronous render; a block
 * inside them cannot wait for an asynchronous cache (Nunjucks would drop its output silently).
 */
const SYNCHRONOUS_CONSTRUCTS = new Map([
  ['macro', 'endmacro'],
  ['call', 'endcall'],
  ['filter', 'endfilter'],
  ['set', 'endset'],
]);
const RAW_BLOCKS = new Map([
  ['raw', 'endraw'],
  ['verbatim', 'endverbatim'],
]);

/**
 * The innermost synchronous construct that is open at the end of `source`, found with Nunjucks's own
 * lexer. A `set` counts only in its block form (`{% set x %}...{% endset %}`).
 */
function openSynchronousConstruct(source: string, like: Tokenizer, lexer: Lexer): string | undefined {
  const tokenizer = lexer.lex(source, { trimBlocks: like.trimBlocks, lstripBlocks: like.lstripBlocks });
  tokenizer.tags = like.tags;
  const open: string[] = [];
  let rawEnd: string | undefined;
  const nextSignificant = (): Token | null => {
    let token = tokenizer.nextToken();
    while (token && token.type === 'whitespace') token = tokenizer.nextToken();
    return token;
  };
  for (let token = tokenizer.nextToken(); token; token = tokenizer.nextToken()) {
    if (token.type !== 'block-start') continue;
    const word = nextSignificant();
    if (!word || word.type !== 'symbol') continue;
    if (rawEnd !== undefined) {
      if (word.value === rawEnd) rawEnd = undefined;
      continue;
    }
    rawEnd = RAW_BLOCKS.get(word.value);
    if (word.value === 'set') {
      let rest = nextSignificant();
      let assigns = false;
      for (; rest && rest.type !== 'block-end'; rest = nextSignificant()) assigns ||= rest.type === 'operator' && rest.value === '=';
      if (!assigns) open.push('set');
    } else if (SYNCHRONOUS_CONSTRUCTS.has(word.value)) {
      open.push(word.value);
    } else if (open.length > 0 && SYNCHRONOUS_CONSTRUCTS.get(open[open.length - 1]!) === word.value) {
      open.pop();
    }
  }
  return open[open.length - 1];
}

function offsetOf(source: string, lineno: number, colno: number): number {
  let offset = 0;
  for (let line = 0; line < lineno; line++) offset = source.indexOf('\n', offset) + 1;
  return offset + colno;
}

export interface CacheExtensionOptions {
  /** The registry whose caches the tag uses; default: the process-wide `caches`. */
  caches?: CacheRegistry;
  /** Compile to Nunjucks's asynchronous extension call, for caches that answer asynchronously. */
  async?: boolean;
}

/** The Nunjucks extension: `env.addExtension('CacheExtension', new CacheExtension({ caches }))`. */
export class CacheExtension {
  readonly tags = ['cache'];
  readonly async: boolean;
  private readonly runtime: FragmentRuntime;

  constructor(options: CacheExtensionOptions = {}) {
    this.runtime = new FragmentRuntime(options.caches);
    this.async = options.async ?? false;
  }

  parse(parser: Parser, nodes: Nodes, lexer: Lexer): ParserNode {
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
    let alias: ParserNode | undefined;
    while (!atBlockEnd()) {
      if (alias) fail(USING_NOT_LAST);
      const argument = parser.parseExpression();
      const next = parser.peekToken();
      if (argument instanceof nodes.Symbol && argument.value === 'using' && next?.value === '=') {
        parser.nextToken();
        alias = parser.parseExpression();
      } else {
        vary.push(argument);
      }
    }
    parser.advanceAfterBlockEnd(tag.value);

    const body = parser.parseUntilBlocks('endcache');
    if (parser.peekToken()?.value !== 'endcache') fail(`Unclosed tag on line ${line}: 'cache'. Looking for one of: endcache.`);
    parser.advanceAfterBlockEnd();

    const construct = this.async
      ? openSynchronousConstruct(parser.tokens.str.slice(0, offsetOf(parser.tokens.str, tag.lineno, tag.colno)), parser.tokens, lexer)
      : undefined;
    // The advice a synchronous call gives when its cache answers asynchronously; null for the asynchronous call.
    const syncAdvice = construct !== undefined ? insideConstructAdvice(construct) : this.async ? null : SYNC_ADVICE;
    const literal = (value: unknown) => new nodes.Literal(tag.lineno, tag.colno, value);
    const args = new nodes.NodeList(tag.lineno, tag.colno, [
      literal(name),
      literal(line),
      literal(syncAdvice),
      timeout,
      alias ?? literal(null),
      literal(alias !== undefined),
      ...vary,
    ]);
    // Inside a synchronous construct the asynchronous call cannot work (Nunjucks drops its output, or
    // fails to compile it inside call and filter blocks), so the synchronous call is used there too.
    const Call = syncAdvice === null ? nodes.CallExtensionAsync : nodes.CallExtension;
    return new Call(this, 'run', args, [body]);
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

  /** Called by the compiled template: `run(context, name, line, syncAdvice, timeout, alias, hasAlias, ...vary, body[, callback])`. */
  run(_context: unknown, name: string, line: number, syncAdvice: string | null, timeout: unknown, alias: unknown, hasAlias: boolean, ...rest: unknown[]): unknown {
    const using = hasAlias ? alias : NO_ALIAS;
    if (syncAdvice !== null) {
      const body = rest.pop() as SyncBody;
      try {
        return new nunjucks.runtime.SafeString(this.runtime.render(name, timeout, using, rest, body, undefined, line, syncAdvice) as string);
      } catch (error) {
        throw withNunjucksProtocol(error);
      }
    }
    const done = rest.pop() as Callback;
    const body = rest.pop() as AsyncBody;
    let html: Awaitable<string>;
    try {
      html = this.runtime.render(name, timeout, using, rest, awaitableBody(body), undefined, line);
    } catch (error) {
      done(withNunjucksProtocol(error));
      return undefined;
    }
    if (!isPromiseLike(html)) {
      done(null, new nunjucks.runtime.SafeString(html));
    } else {
      html.then(
        (text) => done(null, new nunjucks.runtime.SafeString(text)),
        (error: unknown) => done(withNunjucksProtocol(error)),
      );
    }
    return undefined;
  }
}

/**
 * Adapts a compiled asynchronous body to the runtime: its HTML directly when it finished at once (so a
 * miss on a synchronous cache stays synchronous, even inside a macro), else a Promise.
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

/** Renders a template with a callback and resolves to its HTML: works with every cache. */
export function renderAsync(env: nunjucks.Environment, name: string, context: object = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    env.render(name, context, (error, html) => {
      if (error) reject(error);
      else if (typeof html !== 'string') reject(new Error(`Nunjucks rendered no output for '${name}'`));
      else resolve(html);
    });
  });
}
