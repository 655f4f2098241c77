/**
 * Policy engine: the policy file formats (version 2 and legacy), the loader with presets and
 * inheritance, and the compiled evaluator. Pure: no sockets, no database.
 */
export { loadPolicy, parsePolicy } from './loader.js';
export { auditVerdict } from './verdict.js';
export { PRESETS, type Preset, type PresetRule } from './presets.js';
export type { CompiledPolicy, FlatRule, LoadOptions, PolicyFormat } from './types.js';
export {
  DEFAULT_LEARNED_NAME,
  destinationPattern,
  learnPolicy,
  type LearnDefaultAction,
  type LearnOptions,
  type LearnedPolicy,
  type LearnedRule,
  type ObservedDestination,
} from './learn.js';
