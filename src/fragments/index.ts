/**
 * `fragcache/fragments`: everything a template engine's `cache` tag is built from. The Nunjucks and
 * Eta tags use exactly this; a tag for another engine is its parser plus a call to
 * `FragmentRuntime.render` (docs/custom-engines.md).
 */
export { encodeVaryOn, makeTemplateFragmentKey } from './keys.js';
export {
  FragmentRuntime,
  KEYWORDS,
  KEYWORDS_NOT_LAST,
  NO_OPTIONS,
  NoWaiting,
  RenderWatch,
  TEMPLATE_FRAGMENTS_ALIAS,
  TOO_FEW_ARGUMENTS,
  displayValue,
  fragmentCache,
  invalidateFragment,
  unclosedTag,
} from './runtime.js';
export type { BlockOptions, BlockPlace, RenderBody, WaitAdvice } from './runtime.js';
