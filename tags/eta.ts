/**
 * The `cache` tag for Eta, as a plugin:
 *
 *     <% cache TIMEOUT NAME [VARY ...] [using="ALIAS"] %> ... <% endcache %>
 *
 * TIMEOUT, VARY and ALIAS are JavaScript expressions (parenthesised when they contain spaces); NAME is
 * literal. `render`/`renderString` work with caches that answer synchronously, `renderAsync`/
 * `renderStringAsync` with every cache.
 */
import type { EtaConfig } from 'eta';
import { TemplateSyntaxError, type Awaitable, type CacheRegistry } from '../src/index.js';
import { FragmentRuntime, NO_ALIAS, TOO_FEW_ARGUMENTS, USING_NOT_LAST, type RenderBody } from './fragment.js';

type AstItem = string | { t: string; val: string };

/** What compiled templates pass for the template being rendered (Eta's render options). */
interface RenderOptions {
  filepath?: string;
}

const SYNC_ADVICE = 'render the template with eta.renderAsync() or eta.renderStringAsync()';
const OPENING = /^cache(?:\s|$)/;
const CLOSING = 'endcache';
// The names compiled code uses, and placeholders for what depends on the render mode, which
// processFnString fills in.
const PLUGIN_VARIABLE = '__fragcache';
const HTML_VARIABLE = '__fragcacheHtml';
const ASYNC = '/*fragcache:async*/';
const CAPTURE = '/*fragcache:capture*/';
const SETTLED_HTML = '/*fragcache:html*/';

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

/** The code that opens a cache block; the matching `endcache` closes the body function and the call. */
function openingCode(argumentText: string, line: number | undefined): string {
  const args = splitArguments(argumentText);
  if (args.length < 2) throw new TemplateSyntaxError(TOO_FEW_ARGUMENTS, { line });
  const [timeout, name, ...rest] = args as [string, string, ...string[]];
  let alias = `${PLUGIN_VARIABLE}.noAlias`;
  const usingIndex = rest.findIndex((arg) => arg.startsWith('using='));
  if (usingIndex !== -1) {
    if (usingIndex !== rest.length - 1) throw new TemplateSyntaxError(USING_NOT_LAST, { line });
    alias = `(${rest.pop()!.slice('using='.length)})`;
  }
  const vary = rest.map((expression) => `(${expression})`).join(', ');
  return `{const ${HTML_VARIABLE}=${PLUGIN_VARIABLE}.render(${JSON.stringify(unquoted(name))}, (${timeout}), ${alias}, [${vary}], () => ${CAPTURE}(${ASYNC}() => {`;
}

function closingCode(line: number | undefined): string {
  return `}), ${line ?? 'undefined'}, options);__eta.res+=${SETTLED_HTML};}`;
}

/** The Eta plugin; create it with `cachePlugin()`. Its `render` method is called by compiled templates. */
export class EtaCachePlugin {
  readonly noAlias = NO_ALIAS;
  private readonly runtime: FragmentRuntime;
  private lines: number[] = [];

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
    const open: Array<number | undefined> = [];
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
          open.push(line);
          result.push({ t: 'e', val: openingCode(code.slice('cache'.length), line) });
        } else if (code === CLOSING) {
          const line = lines[tagIndex++];
          if (open.length === 0) throw new TemplateSyntaxError(`Invalid block tag on line ${line ?? '?'}: 'endcache'.`, { line });
          result.push({ t: 'e', val: closingCode(open.pop()) });
        } else {
          result.push(item);
        }
      }
      if (open.length > 0) {
        const line = open.pop();
        throw new TemplateSyntaxError(`Unclosed tag on line ${line ?? '?'}: 'cache'. Looking for one of: endcache.`, { line });
      }
    } catch (error) {
      if (!(error instanceof TemplateSyntaxError)) throw error;
      // Eta parses without knowing the template's name; throwing from the compiled code names it.
      return [{ t: 'e', val: `throw ${PLUGIN_VARIABLE}.located(${JSON.stringify(error.reason)}, ${error.line ?? 'undefined'}, options);` }];
    }
    return result;
  }

  /**
   * Fills in what depends on the render mode, which Eta tells plugins only through the code it
   * generates: an asynchronous template awaits its layout with `await includeAsync`.
   */
  processFnString(code: string, config?: EtaConfig): string {
    if (!code.includes(PLUGIN_VARIABLE)) return code;
    const isAsync = code.includes('await includeAsync (__eta.layout');
    const index = config?.plugins.findIndex((plugin) => plugin === this) ?? -1;
    if (index === -1) throw new Error('fragcache: the Eta cache plugin must be listed in the Eta config it compiles with');
    // A hit on a synchronous cache is a string even in an asynchronous render: awaiting only a
    // Promise spares it a turn of the microtask queue.
    const settledHtml = isAsync ? `(typeof ${HTML_VARIABLE} === 'string' ? ${HTML_VARIABLE} : await ${HTML_VARIABLE})` : HTML_VARIABLE;
    return `const ${PLUGIN_VARIABLE} = this.config.plugins[${index}];\n${code
      .replaceAll(SETTLED_HTML, settledHtml)
      .replaceAll(ASYNC, isAsync ? 'async ' : '')
      .replaceAll(CAPTURE, isAsync ? 'captureAsync' : 'capture')}`;
  }

  /** Called by compiled templates for every cache block. */
  render(name: string, timeout: unknown, alias: unknown, vary: unknown[], body: RenderBody, line: number | undefined, options: RenderOptions & { async?: boolean }): Awaitable<string> {
    return this.runtime.render(name, timeout, alias, vary, body, options.filepath, line, options.async ? undefined : SYNC_ADVICE);
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
