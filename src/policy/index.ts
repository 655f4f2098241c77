/**
 * Policy engine: the policy file formats (version 2 and legacy), the loader with presets and
 * inheritance, and the compiled evaluator. Pure: no sockets, no database.
 *
 * Importing this module does not load the YAML parser or the schema library: the loader comes
 * in on the first loadPolicy/parsePolicy, and loadPolicyInWorker (for long-running processes)
 * keeps them out of the calling thread altogether.
 */
import type { CompiledPolicy, LoadOptions } from './types.js';

/** Reads a policy file (with everything it inherits) and compiles the evaluator. */
export async function loadPolicy(file: string, opts?: LoadOptions): Promise<CompiledPolicy> {
  return (await import('./loader.js')).loadPolicy(file, opts);
}

/** Parses policy text; `file` names it in messages and anchors relative `inherit` paths. */
export async function parsePolicy(
  text: string,
  file: string,
  opts?: LoadOptions,
): Promise<CompiledPolicy> {
  return (await import('./loader.js')).parsePolicy(text, file, opts);
}

export { loadPolicyInWorker } from './isolated.js';
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
  type LearnedRefusal,
  type LearnedRule,
  type ObservedDestination,
  type RefusedDestination,
} from './learn.js';
export { formatIpv4, parseIp, type Ip } from './ip.js';
