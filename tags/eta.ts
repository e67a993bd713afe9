/**
 * The `cache` tag for Eta, as a plugin:
 *
 *     <% cache TIMEOUT NAME [VARY ...] [using="ALIAS"] %> ... <% endcache %>
 *
 * TIMEOUT, VARY and ALIAS are JavaScript expressions (parenthesised when they contain spaces); NAME is
 * literal. `render`/`renderString` work with caches that answer synchronously, `renderAsync`/
 * `renderStringAsync` with every cache.
 *
 * Eta tells plugins the render mode only through the code it generates, so `processAST` writes each
 * block with placeholders and `processFnString` fills them in: in an asynchronous render, a block waits
 * with `await` where the template's own code allows it, and reads Eta's output buffer only once its HTML
 * is there (the body's `capture` swaps that buffer while it runs).
 */
import type { EtaConfig } from 'eta';
import { TemplateSyntaxError, type Awaitable, type CacheRegistry } from '../src/index.js';
import { FragmentRuntime, NO_ALIAS, NoWaiting, RenderWatch, TOO_FEW_ARGUMENTS, USING_NOT_LAST, displayValue, type RenderBody } from './fragment.js';

type AstItem = string | { t: string; val: string };

/** What compiled templates pass for the template being rendered (Eta's render options). */
interface RenderOptions {
  filepath?: string;
}

const OPENING = /^cache(?:\s|$)/;
const CLOSING = 'endcache';
// The names compiled code uses.
const PLUGIN_VARIABLE = '__fragcache';
const HTML_VARIABLE = '__fragcacheHtml';
const WATCH_VARIABLE = '__fragcacheWatch';

/** The placeholder of one part of block `index`, which `processFnString` replaces. */
const placeholder = (part: 'body' | 'cannotWait' | 'settle' | 'failed', index: number) => `/*fragcache:${part}:${index}*/`;

const SYNCHRONOUS_RENDER = new NoWaiting(
  'this render is synchronous: render with eta.renderAsync() or eta.renderStringAsync(), and include partials with await includeAsync()',
);
const INSIDE_CALLBACK = new NoWaiting(
  'the block is inside a function that is not async (a callback such as forEach or map, or block()), where an asynchronous render cannot wait: ' +
    'loop with for…of instead of a callback, or use blockAsync(name, async () => …)',
);
const ETA_ADVICE = {
  overlapping: 'callbacks rendered blocks at the same time (async functions given to forEach, or to map for Promise.all): loop with for…of instead',
  unfinished: 'it is inside a callback the template does not wait for (an async function given to forEach): loop with for…of instead',
};

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * The line of every `cache`/`endcache` tag, in order. Eta's parse tree has no positions, so they are
 * read from the source before parsing; the n-th tag found here is the n-th in the tree.
 */
function tagLines(source: string, openingDelimiter: string): number[] {
  const opening = new RegExp(`${escapeRegExp(openingDelimiter)}[-_]?\\s*(?:end)?cache(?![\\w$])`, 'g');
  const lines: number[] = [];
  let line = 1;
  let counted = 0;
  for (const match of source.matchAll(opening)) {
    for (let i = counted; i < match.index; i++) if (source.charCodeAt(i) === 10) line++;
    counted = match.index;
    lines.push(line);
  }
  return lines;
}

/** Splits tag arguments on top-level spaces, keeping quoted strings and bracketed expressions whole. */
function splitArguments(text: string): string[] {
  const parts: string[] = [];
  let current = '';
  let depth = 0;
  let quote: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const char = text[i]!;
    if (quote) {
      current += char;
      if (char === '\\') current += text[++i] ?? '';
      else if (char === quote) quote = undefined;
    } else if (/\s/.test(char) && depth === 0) {
      if (current) parts.push(current);
      current = '';
    } else {
      current += char;
      if (char === '"' || char === "'" || char === '`') quote = char;
      else if ('([{'.includes(char)) depth++;
      else if (')]}'.includes(char)) depth--;
    }
  }
  if (current) parts.push(current);
  return parts;
}

function unquoted(name: string): string {
  const quote = name[0];
  return (quote === '"' || quote === "'") && name.length > 1 && name.endsWith(quote) ? name.slice(1, -1) : name;
}

/**
 * `text` as a parenthesised expression. An argument that is not an expression (usually one with spaces
 * that were not put in parentheses, split into pieces) is a syntax error naming it, rather than
 * compiled code Eta cannot parse.
 */
function expression(text: string, line: number | undefined): string {
  if (!compiles(AsyncFunction, `return (${text});`, { varName: 'it' })) {
    throw new TemplateSyntaxError(
      `'cache' tag argument ${displayValue(text)} is not a JavaScript expression: put an expression with spaces in parentheses, such as (it.page + 1)`,
      { line },
    );
  }
  return `(${text})`;
}

/** The code that opens block `index`; the matching `endcache` closes the body function and the call. */
function openingCode(argumentText: string, index: number, line: number | undefined): string {
  const args = splitArguments(argumentText);
  if (args.length < 2) throw new TemplateSyntaxError(TOO_FEW_ARGUMENTS, { line });
  const [timeoutText, name, ...rest] = args as [string, string, ...string[]];
  const timeout = expression(timeoutText, line);
  let alias = `${PLUGIN_VARIABLE}.noAlias`;
  const usingIndex = rest.findIndex((arg) => arg.startsWith('using='));
  if (usingIndex !== -1) {
    if (usingIndex !== rest.length - 1) throw new TemplateSyntaxError(USING_NOT_LAST, { line });
    alias = expression(rest.pop()!.slice('using='.length), line);
  }
  const vary = rest.map((text) => expression(text, line)).join(', ');
  return `{${WATCH_VARIABLE}.blockStarted(${line ?? 'undefined'});let ${HTML_VARIABLE};try {${HTML_VARIABLE}=${PLUGIN_VARIABLE}.render(${JSON.stringify(unquoted(name))}, ${timeout}, ${alias}, [${vary}], () => ${placeholder('body', index)}`;
}

function closingCode(index: number, line: number | undefined): string {
  return (
    `}), ${line ?? 'undefined'}, options, ${WATCH_VARIABLE}, ${placeholder('cannotWait', index)});${placeholder('settle', index)}} ` +
    `catch (error) { ${placeholder('failed', index)} }` +
    `if (${HTML_VARIABLE} !== undefined) { __eta.res+=${HTML_VARIABLE};${WATCH_VARIABLE}.blockFinished(); }}`
  );
}

/** How one block is written once the render mode is known. */
interface BlockCode {
  /** Why the block cannot wait, or `undefined` when it may. */
  readonly cannotWait: string;
  /** The statement that awaits the block's HTML before it is added to the output, if it may wait. */
  readonly settle: string;
  /** What the block does with its error. */
  readonly failed: string;
  /** How the body is written, when not by what it awaits (see `writeBlocks`): the probes' choice. */
  readonly body?: string;
}

/** A block throws its error: the render stops, and no block around it stores anything. */
const THROWS = `throw ${WATCH_VARIABLE}.blockFailed(error);`;
/**
 * A block inside one of the template's own functions keeps its error for the end of the render and
 * leaves its output out: thrown there, it could reject a promise nobody handles (an `async` callback
 * given to forEach), which crashes the process.
 */
const KEEPS = `${WATCH_VARIABLE}.blockFailed(error);`;

const SYNCHRONOUS_BLOCK: BlockCode = { cannotWait: `${PLUGIN_VARIABLE}.synchronousRender`, settle: '', failed: THROWS };
/** A block that may wait: it awaits a Promise, and only a Promise. */
const WAITING_BLOCK: BlockCode = {
  cannotWait: 'undefined',
  settle: `if (typeof ${HTML_VARIABLE} !== 'string') ${HTML_VARIABLE} = await ${HTML_VARIABLE};`,
  failed: THROWS,
};
const CALLBACK_BLOCK: BlockCode = { cannotWait: `${PLUGIN_VARIABLE}.insideCallback`, settle: '', failed: KEEPS };

/**
 * Writes every block of `code` as `blockCode` says. A body is rendered with Eta's `captureAsync` only
 * when its code awaits something (a block inside it that may wait, or the template's own `await`), so a
 * miss that has nothing to wait for stays synchronous. Blocks are written innermost first, so that an
 * outer body sees what its inner blocks became.
 */
function writeBlocks(code: string, closingOrder: readonly number[], blockCode: (index: number) => BlockCode): string {
  for (const index of closingOrder) {
    const { cannotWait, settle, failed, body } = blockCode(index);
    const bodyCode = code.slice(code.indexOf(placeholder('body', index)), code.indexOf(placeholder('cannotWait', index)));
    const capture = body ?? (/\bawait\b/.test(bodyCode) ? 'captureAsync(async () => {' : 'capture(() => {');
    code = code
      .replace(placeholder('body', index), capture)
      .replace(placeholder('cannotWait', index), cannotWait)
      .replace(placeholder('settle', index), settle)
      .replace(placeholder('failed', index), failed);
  }
  return code;
}

type FunctionConstructor = new (...parameters: string[]) => unknown;
const AsyncFunction = (async () => undefined).constructor as FunctionConstructor;
const GeneratorFunction = function* () {}.constructor as FunctionConstructor;
const AsyncGeneratorFunction = async function* () {}.constructor as FunctionConstructor;

/** Whether `code` compiles as the body of a template function made by `constructor`. */
function compiles(constructor: FunctionConstructor, code: string, config: Pick<EtaConfig, 'varName'>): boolean {
  try {
    new constructor(config.varName, 'options', code);
    return true;
  } catch (error) {
    if (error instanceof SyntaxError) return false;
    throw error;
  }
}

/**
 * Probes where a block stands with `yield 0`, which compiles only directly in a generator (elsewhere
 * `yield` is a plain name, and `yield 0` two expressions in a row): the template is compiled as a
 * generator and so are the bodies of the blocks, so the probe compiles unless one of the template's own
 * functions (a callback) encloses the block.
 */
function topLevelProbe(asynchronous: boolean, probed: boolean): BlockCode {
  const body = asynchronous ? 'captureAsync(async function* () {' : 'capture(function* () {';
  return { cannotWait: 'undefined', settle: probed ? 'yield 0;' : '', failed: THROWS, body };
}

/** The Eta plugin; create it with `cachePlugin()`. Compiled templates call its `render` method. */
export class EtaCachePlugin {
  readonly noAlias = NO_ALIAS;
  readonly synchronousRender = SYNCHRONOUS_RENDER;
  readonly insideCallback = INSIDE_CALLBACK;
  private readonly runtime: FragmentRuntime;
  // What the parse of the template being compiled found, for processFnString (Eta compiles synchronously).
  private lines: number[] = [];
  private blockLines: Array<number | undefined> = [];
  /** The block whose body holds each block, if any. */
  private blockParents: Array<number | undefined> = [];
  private closingOrder: number[] = [];

  constructor(caches?: CacheRegistry) {
    this.runtime = new FragmentRuntime(caches);
  }

  // Eta always passes its config; the signatures say optional because Eta's plugin type does.
  processTemplate(source: string, config?: EtaConfig): string {
    this.lines = tagLines(source, config?.tags[0] ?? '<%');
    return source;
  }

  /** Replaces the tags with code; a malformed block makes the whole template throw when rendered. */
  processAST(buffer: AstItem[]): AstItem[] {
    const lines = this.lines;
    let tagIndex = 0;
    const open: number[] = [];
    const blockLines: Array<number | undefined> = [];
    const blockParents: Array<number | undefined> = [];
    const closingOrder: number[] = [];
    const result: AstItem[] = [];
    try {
      for (const item of buffer) {
        if (typeof item === 'string' || item.t !== 'e') {
          result.push(item);
          continue;
        }
        const code = item.val.trim();
        if (OPENING.test(code)) {
          const line = lines[tagIndex++];
          const index = blockLines.push(line) - 1;
          blockParents.push(open.at(-1));
          open.push(index);
          result.push({ t: 'e', val: openingCode(code.slice('cache'.length), index, line) });
        } else if (code === CLOSING) {
          const line = lines[tagIndex++];
          const index = open.pop();
          if (index === undefined) throw new TemplateSyntaxError(`Invalid block tag on line ${line ?? '?'}: 'endcache'.`, { line });
          closingOrder.push(index);
          result.push({ t: 'e', val: closingCode(index, blockLines[index]) });
        } else {
          result.push(item);
        }
      }
      if (open.length > 0) {
        const line = blockLines[open.pop()!];
        throw new TemplateSyntaxError(`Unclosed tag on line ${line ?? '?'}: 'cache'. Looking for one of: endcache.`, { line });
      }
    } catch (error) {
      if (!(error instanceof TemplateSyntaxError)) throw error;
      this.blockLines = [];
      this.blockParents = [];
      this.closingOrder = [];
      // Eta parses without knowing the template's name; throwing from the compiled code names it.
      return [{ t: 'e', val: `throw ${PLUGIN_VARIABLE}.located(${JSON.stringify(error.reason)}, ${error.line ?? 'undefined'}, options);` }];
    }
    this.blockLines = blockLines;
    this.blockParents = blockParents;
    this.closingOrder = closingOrder;
    return result;
  }

  /**
   * Fills in what depends on the render mode, which Eta tells plugins only through the code it
   * generates: an asynchronous template awaits its layout with `await includeAsync`.
   */
  processFnString(code: string, config?: EtaConfig): string {
    if (!code.includes(PLUGIN_VARIABLE)) return code;
    const index = config?.plugins.indexOf(this) ?? -1;
    if (config === undefined || index === -1) throw new Error('fragcache: the Eta cache plugin must be listed in the Eta config it compiles with');
    const watched = `const ${PLUGIN_VARIABLE} = this.config.plugins[${index}];\nconst ${WATCH_VARIABLE} = ${PLUGIN_VARIABLE}.watch(options);\n${this.finishing(code)}`;
    const asynchronous = code.includes('await includeAsync (__eta.layout');
    const topLevel = this.blocksAtTopLevel(watched, config, asynchronous);
    if (!asynchronous) return writeBlocks(watched, this.closingOrder, (block) => (topLevel[block] ? SYNCHRONOUS_BLOCK : { ...SYNCHRONOUS_BLOCK, failed: KEEPS }));
    const canWait = topLevel.every(Boolean) ? topLevel : this.blocksThatCanWait(watched, config);
    return writeBlocks(watched, this.closingOrder, (block) =>
      topLevel[block] ? WAITING_BLOCK : canWait[block] ? { ...WAITING_BLOCK, failed: KEEPS } : CALLBACK_BLOCK,
    );
  }

  /** `code` with the render's final return checking that every block it started has finished. */
  private finishing(code: string): string {
    const end = code.lastIndexOf('return __eta.res;');
    return `${code.slice(0, end)}if (${WATCH_VARIABLE}.open) throw ${WATCH_VARIABLE}.unfinished();\n${code.slice(end)}`;
  }

  /**
   * The answer of `probe(block)` for every block, found by compiling, which is the only sure way to read
   * JavaScript: once for all blocks when they all pass, else block by block. When the template's own code
   * does not compile, every block passes and Eta reports the error.
   */
  private probeBlocks(passes: (code: string) => boolean, code: string, probe: (block: number, probed: boolean) => BlockCode): boolean[] {
    const count = this.blockLines.length;
    if (passes(writeBlocks(code, this.closingOrder, (block) => probe(block, true)))) return new Array<boolean>(count).fill(true);
    if (!passes(writeBlocks(code, this.closingOrder, (block) => probe(block, false)))) return new Array<boolean>(count).fill(true);
    const results: boolean[] = [];
    // A block's enclosing block comes first (it opens first), and a block passes only if that one did.
    for (let block = 0; block < count; block++) {
      const parent = this.blockParents[block];
      results.push((parent === undefined || results[parent]!) && passes(writeBlocks(code, this.closingOrder, (other) => probe(other, other === block))));
    }
    return results;
  }

  /** Which blocks no function of the template's own encloses (see `topLevelProbe`). */
  private blocksAtTopLevel(code: string, config: EtaConfig, asynchronous: boolean): boolean[] {
    const generator = asynchronous ? AsyncGeneratorFunction : GeneratorFunction;
    return this.probeBlocks((candidate) => compiles(generator, candidate, config), code, (_, probed) => topLevelProbe(asynchronous, probed));
  }

  /**
   * Which blocks of an asynchronous render stand where the template's own code allows `await`: not
   * inside a callback that is not async (`forEach(i => …)`, Eta's `block()`), and not inside the body of a
   * block that cannot wait (that body must render synchronously).
   */
  private blocksThatCanWait(code: string, config: EtaConfig): boolean[] {
    return this.probeBlocks((candidate) => compiles(AsyncFunction, candidate, config), code, (_, probed) => (probed ? WAITING_BLOCK : CALLBACK_BLOCK));
  }

  /** Called by compiled templates for every cache block. */
  render(
    name: string,
    timeout: unknown,
    alias: unknown,
    vary: unknown[],
    body: RenderBody,
    line: number | undefined,
    options: RenderOptions,
    watch: RenderWatch,
    cannotWait: NoWaiting | undefined,
  ): Awaitable<string> {
    return this.runtime.render(name, timeout, alias, vary, body, options.filepath, line, watch, cannotWait);
  }

  /** Called by compiled templates once per render. */
  watch(options: RenderOptions): RenderWatch {
    return new RenderWatch(ETA_ADVICE, options.filepath);
  }

  /** The error a malformed cache block throws when its template is rendered. */
  located(reason: string, line: number | undefined, options: RenderOptions): TemplateSyntaxError {
    return new TemplateSyntaxError(reason, { template: options.filepath, line });
  }
}

export interface CachePluginOptions {
  /** The registry whose caches the tag uses; default: the process-wide `caches`. */
  caches?: CacheRegistry;
}

/** The Eta plugin: `new Eta({ views, plugins: [cachePlugin({ caches })] })`. */
export function cachePlugin(options: CachePluginOptions = {}): EtaCachePlugin {
  return new EtaCachePlugin(options.caches);
}
