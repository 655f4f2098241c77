/**
 * Loads a policy file with everything it inherits (presets and other files, relative to the
 * including file's directory), flattens the rules (own rules first, each inherited file once)
 * and compiles the evaluator. `defaults` and `capture_level` come from the top file only.
 */
import { readFile, realpath } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { TrustRunError } from '../core/index.js';
import { compilePolicy, type PolicyParts } from './compile.js';
import { PRESETS } from './presets.js';
import type { PolicyDoc } from './schema.js';
import {
  policyError,
  positionOf,
  readYaml,
  type PathSegment,
  type PolicySource,
} from './source.js';
import type { CompiledPolicy, FlatRule, LoadOptions } from './types.js';
import { validatePolicy } from './validate.js';

const MAX_DEPTH = 32;

interface LoadedFile {
  /** Identity: real path, or `preset:NAME`. */
  id: string;
  /** As shown in messages and in rule sources. */
  display: string;
  /** Directory relative inherit paths resolve against; null for presets. */
  dir: string | null;
  src: PolicySource;
  doc: PolicyDoc;
}

type Draft = Omit<FlatRule, 'index'>;

function reasonOf(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES') return 'permission denied';
  if (code === 'EISDIR') return 'it is a directory';
  return err instanceof Error ? err.message : String(err);
}

function defaultWarn(msg: string): void {
  process.stderr.write(`trustrun: warning: ${msg}\n`);
}

async function identity(abs: string): Promise<string> {
  try {
    return await realpath(abs);
  } catch {
    return abs;
  }
}

function parseFile(text: string, display: string, id: string, dir: string | null): LoadedFile {
  const src = readYaml(text, display);
  return { id, display, dir, src, doc: validatePolicy(src) };
}

class Loader {
  /** The real path of the directory inherited files must lie in (links followed), or null. */
  private readonly root: Promise<string> | null;

  constructor(private readonly within: string | null) {
    this.root = within === null ? null : identity(within);
  }

  private readonly cache = new Map<string, LoadedFile>();
  private readonly seen = new Set<string>();
  readonly order: LoadedFile[] = [];
  readonly drafts: Draft[] = [];

  /** Where inherit entry `i` of `file` sits, and its path for messages. */
  private inheritPlace(file: LoadedFile, i: number) {
    const listed = Array.isArray((file.src.value as Record<string, unknown>).inherit);
    const path: PathSegment[] = listed ? ['inherit', i] : ['inherit'];
    return { pos: positionOf(file.src, path), path };
  }

  private async resolveRef(parent: LoadedFile, ref: string, i: number): Promise<LoadedFile> {
    const place = this.inheritPlace(parent, i);
    if (ref.startsWith('preset:')) {
      const key = ref.slice('preset:'.length);
      const preset = Object.hasOwn(PRESETS, key) ? PRESETS[key] : undefined;
      if (!preset) {
        const known = Object.values(PRESETS)
          .map((p) => p.ref)
          .join(', ');
        throw policyError(
          parent.display,
          place.pos,
          `unknown preset "${ref}"; available: ${known}`,
          place.path,
        );
      }
      const cached = this.cache.get(preset.ref);
      if (cached) return cached;
      const loaded = parseFile(preset.text, preset.ref, preset.ref, null);
      this.cache.set(preset.ref, loaded);
      return loaded;
    }
    if (parent.dir === null) {
      throw policyError(parent.display, place.pos, `a preset cannot inherit a file`, place.path);
    }
    const abs = resolve(parent.dir, ref);
    const display = isAbsolute(ref) ? ref : join(dirname(parent.display), ref);
    const id = await identity(abs);
    if (this.root !== null) {
      const root = await this.root;
      if (!id.startsWith(root.endsWith(sep) ? root : root + sep)) {
        throw policyError(
          parent.display,
          place.pos,
          `inherit "${ref}" is outside ${this.within}: a policy saved here may inherit presets and other saved policies only`,
          place.path,
        );
      }
    }
    const cached = this.cache.get(id);
    if (cached) return cached;
    let text: string;
    try {
      text = await readFile(id, 'utf8'); // the path checked above, links followed
    } catch (err) {
      throw policyError(
        parent.display,
        place.pos,
        `cannot read inherited policy "${ref}": ${reasonOf(err)} (${abs})`,
        place.path,
      );
    }
    const loaded = parseFile(text, display, id, dirname(abs));
    this.cache.set(id, loaded);
    return loaded;
  }

  async visit(file: LoadedFile, stack: LoadedFile[]): Promise<void> {
    this.seen.add(file.id);
    this.order.push(file);
    file.doc.rules.forEach((rule, i) => {
      this.drafts.push({
        ...rule,
        source: file.display,
        line: positionOf(file.src, ['rules', i]).line,
        format: file.doc.format,
      });
    });
    const chain = [...stack, file];
    for (let i = 0; i < file.doc.inherit.length; i++) {
      const child = await this.resolveRef(file, file.doc.inherit[i] as string, i);
      const onStack = chain.findIndex((f) => f.id === child.id);
      if (onStack >= 0) {
        const place = this.inheritPlace(file, i);
        const names = [...chain.slice(onStack), child].map((f) => f.display).join(' -> ');
        throw policyError(
          file.display,
          place.pos,
          `Circular policy inheritance: ${names}`,
          place.path,
          'TR_POLICY_CYCLE',
        );
      }
      if (this.seen.has(child.id)) continue; // inherited twice, or through a diamond: once
      if (chain.length >= MAX_DEPTH) {
        const place = this.inheritPlace(file, i);
        throw policyError(
          file.display,
          place.pos,
          `inheritance is more than ${MAX_DEPTH} files deep`,
          place.path,
        );
      }
      await this.visit(child, chain);
    }
  }
}

/**
 * Parses policy text into the flattened rule list, as plain data (what a worker can send back);
 * `file` names it in messages and anchors relative `inherit` paths.
 */
export async function assemblePolicy(
  text: string,
  file: string,
  opts: LoadOptions = {},
): Promise<PolicyParts> {
  const abs = resolve(file);
  const top = parseFile(text, file, await identity(abs), dirname(abs));
  const loader = new Loader(opts.inheritWithin ?? null);
  await loader.visit(top, []);
  const legacy = loader.order.filter((f) => f.doc.format === 'legacy').map((f) => f.display);
  if (legacy.length > 0) {
    (opts.warn ?? defaultWarn)(
      `${legacy.join(', ')}: legacy policy file (no "version: 2"): a matched alert rule allows ` +
        'without a violation, and a connection no rule matches gets defaults.action and counts ' +
        'as a violation (docs/policy.md explains how to migrate)',
    );
  }
  return {
    name: top.doc.name,
    format: top.doc.format,
    captureLevel: top.doc.captureLevel,
    files: loader.order.map((f) => f.display),
    rules: loader.drafts.map((d, index) => ({ index, ...d })),
    defaultAction: top.doc.defaultAction,
  };
}

/** Reads a policy file and assembles it (see assemblePolicy). */
export async function readPolicyFile(file: string, opts: LoadOptions = {}): Promise<PolicyParts> {
  let text: string;
  try {
    text = await readFile(resolve(file), 'utf8');
  } catch (err) {
    throw new TrustRunError(
      'TR_POLICY_INVALID',
      `${file}: cannot read policy file: ${reasonOf(err)}`,
    );
  }
  return assemblePolicy(text, file, opts);
}

/** Parses policy text and compiles the evaluator. */
export async function parsePolicy(
  text: string,
  file: string,
  opts: LoadOptions = {},
): Promise<CompiledPolicy> {
  return compilePolicy(await assemblePolicy(text, file, opts));
}

/** Reads a policy file and compiles the evaluator. */
export async function loadPolicy(file: string, opts: LoadOptions = {}): Promise<CompiledPolicy> {
  return compilePolicy(await readPolicyFile(file, opts));
}
