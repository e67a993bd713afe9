/**
 * Errors that fragcache raises. Each is a class, so callers can tell them apart with `instanceof`
 * (or by `name`, where a template engine has re-wrapped the error).
 */

/** A cache configuration or backend cannot be used: unknown alias, missing `default`, unloadable backend. */
export class InvalidCacheBackendError extends Error {
  override name = 'InvalidCacheBackendError';
}

/** A key the backend cannot store (the memcached backend raises this where others only warn). */
export class InvalidCacheKeyError extends Error {
  override name = 'InvalidCacheKeyError';
}

/**
 * `incr`, `decr`, `incrVersion` or `decrVersion` of a key that holds nothing. The message is Django's:
 * `Key '<key>' not found`, with the caller's key.
 */
export class KeyNotFoundError extends Error {
  override name = 'KeyNotFoundError';
  readonly key: string;

  constructor(key: string) {
    super(`Key '${key}' not found`);
    this.key = key;
  }
}

/**
 * A vary value that cannot tell fragments apart: one whose only text is `[object Object]` or that has no
 * text at all. Raised by `makeTemplateFragmentKey` and, with the template and line, by the cache tag.
 */
export class InvalidVaryValueError extends TypeError {
  override name = 'InvalidVaryValueError';
}

/**
 * Emitted through `process.emitWarning` for keys that memcached would refuse, so that code developed
 * against the in-memory cache does not break when deployed on memcached.
 */
export class CacheKeyWarning extends Error {
  override name = 'CacheKeyWarning';
}

/**
 * A `cache` tag that cannot be rendered. `reason` is the bare text (the same in every engine);
 * `message` adds the template and line where it happened.
 */
export class CacheTagError extends Error {
  override name = 'CacheTagError';
  readonly reason: string;
  /** The template's name or path, once known (Nunjucks tells it only after the error is thrown). */
  template: string | undefined;
  readonly line: number | undefined;

  constructor(reason: string, where: { template?: string | undefined; line?: number | undefined } = {}, options?: ErrorOptions) {
    super(reason, options);
    this.reason = reason;
    this.template = where.template;
    this.line = where.line;
    this.message = this.describe();
  }

  /** Records the template the error happened in, if it was not known when the error was thrown. */
  locate(template: string): void {
    if (this.template !== undefined) return;
    this.template = template;
    this.message = this.describe();
  }

  private describe(): string {
    const place = this.line === undefined ? this.template : `${this.template ?? '<string>'}:${this.line}`;
    return place === undefined ? this.reason : `${place}: ${this.reason}`;
  }
}

/**
 * A `cache` tag whose arguments are wrong: too few, `using=` not last, a non-integer timeout, an unknown
 * cache alias. Django raises its TemplateSyntaxError for the same cases, some of them at render time.
 */
export class TemplateSyntaxError extends CacheTagError {
  override name = 'TemplateSyntaxError';
}
