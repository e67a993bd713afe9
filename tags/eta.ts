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
 * block with placeholders and `processFnString` fills them in. A block may wait for its cache only where
 * the template's own code runs in order: in an asynchronous render, and not inside one of the
 * template's own functions (a callback given to forEach or map runs beside the rest of the template, and
 * Eta's output buffer cannot take two writers at once). Where the block stands is found by compiling.
 */
import type { EtaConfig } from 'eta';
import { TemplateSyntaxError, type Awaitable, type CacheRegistry } from 'fragcache';
import { FragmentRuntime, KEYWORDS, KEYWORDS_NOT_LAST, NO_OPTIONS, NoWaiting, RenderWatch, TOO_FEW_ARGUMENTS, displayValue, unclosedTag, type BlockOptions, type RenderBody } from 'fragcache/fragments';

type AstItem = string | { t: string; val: string; lineNo?: number };

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
const LAYOUT_VARIABLE = '__fragcacheLayout';

/** The placeholder of one part of block `index`, which `processFnString` replaces. */
const placeholder = (part: 'body' | 'bodyEnd' | 'cannotWait' | 'settle' | 'failed', index: number) => `/*fragcache:${part}:${index}*/`;

// What Eta generates at the end of every template function, in an asynchronous or a synchronous render.
const ASYNCHRONOUS_LAYOUT = '\n  __eta.res = await includeAsync (__eta.layout';
const SYNCHRONOUS_LAYOUT = '\n  __eta.res = include (__eta.layout';
const RETURN = '\nreturn __eta.res;\n';

const SYNCHRONOUS_RENDER = new NoWaiting(
  'this render is synchronous: render with eta.renderAsync() or eta.renderStringAsync(), and include partials with await includeAsync()',
);
const INSIDE_FUNCTION = new NoWaiting(
  "the block is inside a function of the template's own (a callback given to forEach or map, async or not, block() or blockAsync()), " +
    'which runs beside the rest of the template, so a block that waited there could print out of order or be lost: ' +
    'loop with for…of instead, or give the block a cache that answers at once (using="…")',
);
const ETA_ADVICE = {
  overlapping: 'loop with for…of instead of callbacks',
  unfinished: 'loop with for…of instead of callbacks',
};
const LAYOUT_IN_BODY =
  'layout() inside a cache block would choose the layout only when the block renders, not on a hit: call it outside the block';
/** What a body's own function returns when it reaches its end (see `capturedBody`). */
const FINISHED = Symbol('fragcache: the body reached its end');
const RETURN_IN_BODY =
  "return inside a cache block's body would leave only the body, not the function around the block, and on a hit the body does not run: test before the block instead";
const MISNESTED =
  "the cache block and the template's own { … } overlap: open and close the block inside the same braces, around whole statements";
const LEAVING_LOOP =
  "continue or break inside a cache block's body cannot reach a loop outside the block, because the body renders on its own (and not at all on a hit): test before the block instead";

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * The line of every `cache`/`endcache` tag, in order. Eta's parse tree has no positions, so they are
 * read from the source before parsing; the n-th tag found here is the n-th in the tree.
 */
function tagLines(source: string, [opening, closing]: readonly [string, string]): number[] {
  const tag = new RegExp(`${escapeRegExp(opening)}[-_]?\\s*(?:end)?cache(?=\\s|[-_]?${escapeRegExp(closing)})`, 'g');
  const lines: number[] = [];
  let line = 1;
  let counted = 0;
  for (const match of source.matchAll(tag)) {
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

/** A block's tag, split into the JavaScript expressions it passes (TIMEOUT, VARY…, keywords) and its literal NAME. */
interface BlockArguments {
  readonly name: string;
  readonly timeout: string;
  readonly vary: readonly string[];
  /** `using=` and `stale=`, by name, as expressions. */
  readonly keywords: ReadonlyMap<string, string>;
}

/** The keyword a `name=expression` argument gives, if it is one of the tag's. */
function keywordOf(argument: string): string | undefined {
  const equals = argument.indexOf('=');
  if (equals <= 0 || argument[equals + 1] === '=') return undefined;
  const name = argument.slice(0, equals);
  return KEYWORDS.includes(name) ? name : undefined;
}

function blockArguments(argumentText: string, line: number | undefined): BlockArguments {
  const args = splitArguments(argumentText);
  if (args.length < 2) throw new TemplateSyntaxError(TOO_FEW_ARGUMENTS, { line });
  const [timeout, name, ...rest] = args as [string, string, ...string[]];
  const vary: string[] = [];
  const keywords = new Map<string, string>();
  for (const argument of rest) {
    const keyword = keywordOf(argument);
    if (keyword === undefined) {
      if (keywords.size > 0) throw new TemplateSyntaxError(KEYWORDS_NOT_LAST, { line });
      vary.push(argument);
    } else {
      keywords.set(keyword, argument.slice(keyword.length + 1));
    }
  }
  return { name: unquoted(name), timeout, vary, keywords };
}

/** The code that opens block `index`; the matching `endcache` closes the body and the call. */
function openingCode(args: BlockArguments, index: number, line: number | undefined): string {
  const options =
    args.keywords.size === 0
      ? `${PLUGIN_VARIABLE}.noOptions`
      : `{${[...args.keywords].map(([keyword, expression]) => `${keyword}: (${expression})`).join(', ')}}`;
  const vary = args.vary.map((expression) => `(${expression})`).join(', ');
  return (
    `{${WATCH_VARIABLE}.blockStarted(${line ?? 'undefined'});let ${HTML_VARIABLE};` +
    `try {${HTML_VARIABLE}=${PLUGIN_VARIABLE}.render(${JSON.stringify(args.name)}, (${args.timeout}), ${options}, [${vary}], () => ${placeholder('body', index)}`
  );
}

function closingCode(index: number, line: number | undefined): string {
  const lineCode = line ?? 'undefined';
  return (
    `${placeholder('bodyEnd', index)}, ${lineCode}, options, ${WATCH_VARIABLE}, ${placeholder('cannotWait', index)});${placeholder('settle', index)}} ` +
    `catch (error) { ${placeholder('failed', index)} }` +
    `if (${HTML_VARIABLE} !== undefined) { __eta.res+=${HTML_VARIABLE};${WATCH_VARIABLE}.blockFinished(); }}`
  );
}

/** The code written before a body, and after it. */
type Wrapper = readonly [start: string, end: string];

/** How one block is written once the render mode is known. */
interface BlockCode {
  /** The code of why the block cannot wait (a NoWaiting), or `undefined` when it may. */
  readonly cannotWait: string;
  /** The statement that awaits the block's HTML before it is added to the output, if it may wait. */
  readonly settle: string;
  /** What the block does with its error. */
  readonly failed: string;
  /** How the body is captured. */
  readonly body: Wrapper;
}

/**
 * A body captured as the function the runtime calls on a miss, which fails before anything is stored
 * if the template's code in it did what a hit could not repeat. That code runs in a function of its own,
 * which must reach its end: a `return` there would leave only the body, not the function around the
 * block as it does without the cache. And it must not choose the page's layout.
 */
function capturedBody(asynchronous: boolean, line: number | undefined): Wrapper {
  const lineCode = line ?? 'undefined';
  const finished = `${PLUGIN_VARIABLE}.finished`;
  const start = `const ${LAYOUT_VARIABLE}=__eta.layout;if (${asynchronous ? 'await (async' : '('} () => {`;
  const end =
    `\nreturn ${finished};})() !== ${finished}) throw ${PLUGIN_VARIABLE}.returnInBody(${lineCode}, options);` +
    `if (__eta.layout !== ${LAYOUT_VARIABLE}) throw ${PLUGIN_VARIABLE}.layoutInBody(${lineCode}, options);})`;
  return asynchronous ? [`captureAsync(async () => {${start}`, end] : [`capture(() => {${start}`, end];
}

/** A block throws its error: the render stops, and no block around it stores anything. */
const THROWS = `throw ${WATCH_VARIABLE}.blockFailed(error);`;
/**
 * A block inside one of the template's own functions keeps its error for the end of the render and
 * leaves its output out: thrown there, it could reject a promise nobody handles (an `async` callback
 * given to forEach), which stops Node.
 */
const KEEPS = `${WATCH_VARIABLE}.blockFailed(error);`;

/** A block of the template's real code, but for its body: how it waits, and what it does with its error. */
type BlockKind = Omit<BlockCode, 'body'>;

const SYNCHRONOUS_BLOCK: BlockKind = { cannotWait: `${PLUGIN_VARIABLE}.synchronousRender`, settle: '', failed: THROWS };
/** A block that may wait: it awaits a Promise, and only a Promise. */
const WAITING_BLOCK: BlockKind = {
  cannotWait: 'undefined',
  settle: `if (typeof ${HTML_VARIABLE} !== 'string') ${HTML_VARIABLE} = await ${HTML_VARIABLE};`,
  failed: THROWS,
};
const INSIDE_FUNCTION_BLOCK: BlockKind = { cannotWait: `${PLUGIN_VARIABLE}.insideFunction`, settle: '', failed: KEEPS };

/**
 * Probes compile a body as a plain function; or as a statement block in the block's place; or with the
 * tags' own code closed before the body and opened after it, which leaves the body's code as it is
 * without the tags, nested with the code around it however it may be.
 */
const PROBED_BODY: Wrapper = ['captureAsync(async () => {', '})'];
const INLINE_BODY: Wrapper = ["'');{", "}void(''"];
const TRANSPARENT_BODY: Wrapper = ['0)}catch(error){}}', '{try{void(0'];

/**
 * The probe of where a block stands, with `yield 0`, which compiles only directly in a generator
 * (elsewhere `yield` is a plain name, and `yield 0` two expressions in a row): the template and the
 * bodies of the blocks are compiled as generators, so the probe compiles unless one of the template's
 * own functions encloses the block.
 */
function topLevelProbe(asynchronous: boolean, probed: boolean): BlockCode {
  return { cannotWait: 'undefined', settle: probed ? 'yield 0;' : '', failed: THROWS, body: [asynchronous ? 'captureAsync(async function* () {' : 'capture(function* () {', '})'] };
}

/** Writes every block of `code` as `blockCode` says, innermost first (each body then holds its final code). */
function writeBlocks(code: string, closingOrder: readonly number[], blockCode: (index: number, body: string) => BlockCode): string {
  for (const index of closingOrder) {
    const { cannotWait, settle, failed, body } = blockCode(index, code.slice(code.indexOf(placeholder('body', index)), code.indexOf(placeholder('bodyEnd', index))));
    code = code
      .replace(placeholder('body', index), body[0])
      .replace(placeholder('bodyEnd', index), body[1])
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
function compiles(constructor: FunctionConstructor, code: string, varName: string): boolean {
  try {
    new constructor(varName, 'options', code);
    return true;
  } catch (error) {
    if (error instanceof SyntaxError) return false;
    throw error;
  }
}

/** What a template's parse found, for `processFnString`. */
interface ParsedBlocks {
  readonly lines: ReadonlyArray<number | undefined>;
  /** The block whose body holds each block, if any; a block's enclosing block comes first. */
  readonly parents: ReadonlyArray<number | undefined>;
  readonly closingOrder: readonly number[];
  readonly args: readonly BlockArguments[];
}

/** The Eta plugin; create it with `cachePlugin()`. Compiled templates call its `render` method. */
export class EtaCachePlugin {
  readonly noOptions = NO_OPTIONS;
  readonly synchronousRender = SYNCHRONOUS_RENDER;
  readonly insideFunction = INSIDE_FUNCTION;
  readonly finished = FINISHED;
  private readonly runtime: FragmentRuntime;
  // What the parse of the template being compiled found, for processFnString (Eta compiles synchronously).
  private tagLineNumbers: number[] = [];
  private parsed: ParsedBlocks = { lines: [], parents: [], closingOrder: [], args: [] };

  constructor(caches?: CacheRegistry) {
    this.runtime = new FragmentRuntime(caches);
  }

  // Eta always passes its config; the signatures say optional because Eta's plugin type does.
  processTemplate(source: string, config?: EtaConfig): string {
    this.tagLineNumbers = tagLines(source, config?.tags ?? ['<%', '%>']);
    return source;
  }

  /** Replaces the tags with code; a malformed block makes the whole template throw when rendered. */
  processAST(buffer: AstItem[]): AstItem[] {
    let tagIndex = 0;
    const open: number[] = [];
    const lines: Array<number | undefined> = [];
    const parents: Array<number | undefined> = [];
    const closingOrder: number[] = [];
    const args: BlockArguments[] = [];
    const result: AstItem[] = [];
    this.parsed = { lines, parents, closingOrder, args };
    try {
      for (const item of buffer) {
        if (typeof item === 'string' || item.t !== 'e') {
          result.push(item);
          continue;
        }
        const code = item.val.trim();
        if (OPENING.test(code)) {
          const line = this.tagLineNumbers[tagIndex++];
          const index = lines.push(line) - 1;
          parents.push(open.at(-1));
          open.push(index);
          args.push(blockArguments(code.slice('cache'.length), line));
          result.push({ ...item, val: openingCode(args[index]!, index, line) });
        } else if (code === CLOSING) {
          const line = this.tagLineNumbers[tagIndex++];
          const index = open.pop();
          if (index === undefined) throw new TemplateSyntaxError(`Invalid block tag on line ${line ?? '?'}: 'endcache'.`, { line });
          closingOrder.push(index);
          result.push({ ...item, val: closingCode(index, lines[index]) });
        } else {
          result.push(item);
        }
      }
      if (open.length > 0) {
        const line = lines[open.pop()!];
        throw new TemplateSyntaxError(unclosedTag(line), { line });
      }
    } catch (error) {
      if (!(error instanceof TemplateSyntaxError)) throw error;
      this.parsed = { lines: [], parents: [], closingOrder: [], args: [] };
      // The line lets Eta's debug mode show the template around the block.
      return [{ t: 'e', val: throwing(error.reason, error.line), lineNo: error.line }];
    }
    return result;
  }

  /** Fills in what depends on the render mode (see the module's comment). */
  processFnString(code: string, config?: EtaConfig): string {
    if (!code.includes(PLUGIN_VARIABLE)) return code;
    const index = config?.plugins.indexOf(this) ?? -1;
    if (config === undefined || index === -1) throw new Error('fragcache: the Eta cache plugin must be listed in the Eta config it compiles with');
    const end = code.lastIndexOf(RETURN);
    const asynchronous = code.includes(ASYNCHRONOUS_LAYOUT);
    if (end === -1 || (!asynchronous && !code.includes(SYNCHRONOUS_LAYOUT))) {
      throw new Error('fragcache: this version of Eta compiles templates in a way the cache plugin does not know; it needs Eta 4.6 or later');
    }
    const header = `const ${PLUGIN_VARIABLE} = this.config.plugins[${index}];\n`;
    const watched =
      `${header}const ${WATCH_VARIABLE} = ${PLUGIN_VARIABLE}.watch(options);\n` +
      `${code.slice(0, end)}\nif (${WATCH_VARIABLE}.open || ${WATCH_VARIABLE}.failed) throw ${WATCH_VARIABLE}.unfinished();${code.slice(end)}`;
    const constructor = asynchronous ? AsyncFunction : Function;
    const { lines, closingOrder } = this.parsed;
    const topLevel = this.blocksAtTopLevel(watched, config.varName, asynchronous);
    if (topLevel === undefined) {
      const bad = this.badArgument(config.varName) ?? this.misplacedBody(watched, constructor, config.varName);
      if (bad !== undefined) return header + bad;
      // Otherwise the error is the template's own, which Eta reports on the code as it would run (every
      // block written as if at the top level).
    }
    return writeBlocks(watched, closingOrder, (block, body) => {
      const line = lines[block];
      if (topLevel?.[block] === false) {
        // A body that awaits must be captured asynchronously to compile; the runtime then refuses it on a miss.
        const awaits = /\bawait\b/.test(body) && this.bodyAwaits(watched, block, constructor, config.varName);
        return { ...INSIDE_FUNCTION_BLOCK, body: capturedBody(awaits, line) };
      }
      if (!asynchronous) return { ...SYNCHRONOUS_BLOCK, body: capturedBody(false, line) };
      // A body that may await is captured asynchronously; one that surely does not stays synchronous.
      return { ...WAITING_BLOCK, body: capturedBody(/\bawait\b/.test(body), line) };
    });
  }

  /**
   * Which blocks no function of the template's own encloses (see `topLevelProbe`): once for all blocks
   * when they all are, else block by block. Undefined when the template's code does not compile at all.
   */
  private blocksAtTopLevel(code: string, varName: string, asynchronous: boolean): boolean[] | undefined {
    const generator = asynchronous ? AsyncGeneratorFunction : GeneratorFunction;
    const { parents, closingOrder } = this.parsed;
    const probe = (probed: (block: number) => boolean) => compiles(generator, writeBlocks(code, closingOrder, (block) => topLevelProbe(asynchronous, probed(block))), varName);
    if (probe(() => true)) return parents.map(() => true);
    if (!probe(() => false)) return undefined;
    const topLevel: boolean[] = [];
    for (let block = 0; block < parents.length; block++) {
      const parent = parents[block];
      topLevel.push((parent === undefined || topLevel[parent]!) && probe((other) => other === block));
    }
    return topLevel;
  }

  /** Whether block `block`'s body has an `await` of the template's own: it does not compile when captured synchronously. */
  private bodyAwaits(code: string, block: number, constructor: FunctionConstructor, varName: string): boolean {
    const written = writeBlocks(code, this.parsed.closingOrder, (other) => ({ ...INSIDE_FUNCTION_BLOCK, body: other === block ? ['capture(() => {', '})'] : PROBED_BODY }));
    return !compiles(constructor, written, varName);
  }

  /**
   * For a template whose code does not compile, but would without the cache tags: the code that throws a
   * TemplateSyntaxError for the block at fault. Either a block's tags stand at different levels of the
   * template's own `{ … }`, or its body would `continue` or `break` a loop outside it, which a body of its
   * own cannot (the template compiles with that body written as a statement block in its place).
   */
  private misplacedBody(code: string, constructor: FunctionConstructor, varName: string): string | undefined {
    const { closingOrder, lines } = this.parsed;
    const written = (body: Wrapper, odd: number | undefined, oddBody: Wrapper) =>
      writeBlocks(code, closingOrder, (block) => ({ cannotWait: 'undefined', settle: '', failed: '', body: block === odd ? oddBody : body }));
    const firstFailing = (body: Wrapper, oddBody: Wrapper) => closingOrder.find((block) => !compiles(constructor, written(body, block, oddBody), varName));
    if (!compiles(constructor, written(TRANSPARENT_BODY, undefined, TRANSPARENT_BODY), varName)) return undefined;
    if (!compiles(constructor, written(INLINE_BODY, undefined, INLINE_BODY), varName)) {
      const misnested = firstFailing(TRANSPARENT_BODY, INLINE_BODY);
      return misnested === undefined ? undefined : throwing(MISNESTED, lines[misnested]);
    }
    const leaving = firstFailing(INLINE_BODY, PROBED_BODY);
    return leaving === undefined ? undefined : throwing(LEAVING_LOOP, lines[leaving]);
  }

  /**
   * For a template whose code does not compile: the code that throws a TemplateSyntaxError for the
   * first argument of a tag that is not an expression (usually one with spaces not put in parentheses,
   * split into pieces), if there is one; otherwise Eta reports the error itself.
   */
  private badArgument(varName: string): string | undefined {
    const { args, lines } = this.parsed;
    for (const [block, { timeout, vary, keywords }] of args.entries()) {
      for (const expression of [timeout, ...vary, ...keywords.values()]) {
        if (!compiles(AsyncFunction, `return (${expression});`, varName)) {
          return throwing(
            `'cache' tag argument ${displayValue(expression)} is not a JavaScript expression: put an expression with spaces in parentheses, such as (it.page + 1)`,
            lines[block],
          );
        }
      }
    }
    return undefined;
  }

  /** Called by compiled templates for every cache block. */
  render(
    name: string,
    timeout: unknown,
    blockOptions: BlockOptions,
    vary: unknown[],
    body: RenderBody,
    line: number | undefined,
    options: RenderOptions,
    watch: RenderWatch,
    cannotWait: NoWaiting | undefined,
  ): Awaitable<string> {
    return this.runtime.render(name, timeout, blockOptions, vary, body, options.filepath, line, watch, cannotWait);
  }

  /** Called by compiled templates once per render. */
  watch(options: RenderOptions): RenderWatch {
    return new RenderWatch(ETA_ADVICE, options.filepath);
  }

  /** The error a malformed cache block throws when its template is rendered. */
  located(reason: string, line: number | undefined, options: RenderOptions): TemplateSyntaxError {
    return new TemplateSyntaxError(reason, { template: options.filepath, line });
  }

  /** The error of a block whose body called layout(). */
  layoutInBody(line: number | undefined, options: RenderOptions): TemplateSyntaxError {
    return this.located(LAYOUT_IN_BODY, line, options);
  }

  /** The error of a block whose body returned before its end. */
  returnInBody(line: number | undefined, options: RenderOptions): TemplateSyntaxError {
    return this.located(RETURN_IN_BODY, line, options);
  }
}

/** Code that throws a syntax error when the template is rendered: Eta parses without knowing the template's name. */
function throwing(reason: string, line: number | undefined): string {
  return `throw ${PLUGIN_VARIABLE}.located(${JSON.stringify(reason)}, ${line ?? 'undefined'}, options);`;
}

export interface CachePluginOptions {
  /** The registry whose caches the tag uses; default: the process-wide `caches`. */
  caches?: CacheRegistry;
}

/** The Eta plugin: `new Eta({ views, plugins: [cachePlugin({ caches })] })`. */
export function cachePlugin(options: CachePluginOptions = {}): EtaCachePlugin {
  return new EtaCachePlugin(options.caches);
}
