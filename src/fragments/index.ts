/**
 * `fragcache/fragments`: everything a template engine's `cache` tag is built from. The Nunjucks and
 * Eta tags use exactly this; a tag for another engine is its parser plus a call to
 * `FragmentRuntime.render` (docs/custom-engines.md).
 */
export { encodeVaryOn, makeTemplateFragmentKey } from './keys.js';
export {
  FragmentRuntime,
  NO_ALIAS,
  NoWaiting,
  RenderWatch,
  TEMPLATE_FRAGMENTS_ALIAS,
  TOO_FEW_ARGUMENTS,
  USING_NOT_LAST,
  displayValue,
  fragmentCache,
  invalidateFragment,
  unclosedTag,
} from './runtime.js';
export type { BlockPlace, RenderBody, WaitAdvice } from './runtime.js';
