/** The static scanner: endpoints, network call sites and secrets in source trees. */
export { scanDirectory, type ScanOptions, type ScanProgress } from './engine.js';
export {
  scanSource,
  collectHits,
  groupHits,
  languageFor,
  type ScanSourceOptions,
} from './source.js';
export {
  walk,
  SKIP_DIRS,
  SKIP_EXTENSIONS,
  MAX_FILE_SIZE,
  type WalkEntry,
  type WalkOptions,
} from './walk.js';
export { compileExcludes, compileGlob, type ExcludeMatcher } from './glob.js';
export { parseDestination, isFalsePositive, isBenignUrl, isBenignLiteral } from './endpoint.js';
export { universalHits, trimUrl } from './patterns.js';
export { tokenizeR, type RToken } from './analyzers/rtokens.js';
export { RULES, type RuleInfo } from './rules.js';
export { judgeFinding, describeVerdict } from './verdict.js';
export { formatText, scanHeader } from './format/text.js';
export { toSarif } from './format/sarif.js';
export * from './types.js';
