import { createHash } from 'node:crypto';
import { basename, extname } from 'node:path';
import { newId } from '../core/index.js';
import { analyzeJavaScript, grammarForExtension } from './analyzers/javascript.js';
import { analyzePython } from './analyzers/python.js';
import { analyzeR } from './analyzers/r.js';
import type { AnalyzerResult } from './analyzers/common.js';
import { parseDestination } from './endpoint.js';
import { universalHits } from './patterns.js';
import { RULES } from './rules.js';
import { LineIndex, applyMasks, contextLine, maskSecret } from './text.js';
import { judgeFinding } from './verdict.js';
import { maxSeverity, type Finding, type Hit, type Language, type PolicyAdapter } from './types.js';

/** Which analyzer reads a file, by its extension (any case) or, for R profiles, its name. */
export function languageFor(fileName: string): Language {
  const ext = extname(fileName).toLowerCase();
  if (ext === '.py' || ext === '.pyw' || ext === '.pyi') return 'python';
  if (['.js', '.jsx', '.mjs', '.cjs'].includes(ext)) return 'javascript';
  if (['.ts', '.tsx', '.mts', '.cts'].includes(ext)) return 'typescript';
  if (ext === '.r' || basename(fileName) === '.Rprofile') return 'r';
  return '';
}

async function analyze(
  language: Language,
  text: string,
  fileName: string,
  probes: readonly number[],
): Promise<AnalyzerResult> {
  switch (language) {
    case 'python':
      return analyzePython(text, probes);
    case 'javascript':
    case 'typescript':
      return analyzeJavaScript(text, grammarForExtension(extname(fileName).toLowerCase()), probes);
    case 'r':
      return analyzeR(text, probes);
    default:
      return { hits: [], commented: new Set() };
  }
}

/** True when a hit carries a credential: such hits are kept even inside comments. */
function carriesSecret(h: Hit): boolean {
  return RULES[h.pattern].secret || (h.masks !== undefined && h.masks.length > 0);
}

/**
 * All hits in one file's text: the language analyzer's, plus the universal patterns' (whose
 * endpoint hits inside comments are dropped for languages whose comments are known).
 * An analyzer that fails (it should not: the parsers recover from syntax errors) leaves
 * the universal patterns to do the work.
 */
export async function collectHits(
  text: string,
  fileName: string,
): Promise<{ language: Language; hits: Hit[] }> {
  const language = languageFor(fileName);
  const universal = universalHits(text);
  const probes =
    language === '' ? [] : universal.filter((h) => !carriesSecret(h)).map((h) => h.start);
  let result: AnalyzerResult;
  try {
    result = await analyze(language, text, fileName, probes);
  } catch {
    result = { hits: [], commented: new Set() };
  }
  const kept = universal.filter((h) => carriesSecret(h) || !result.commented.has(h.start));
  return { language, hits: [...result.hits, ...kept] };
}

/** Groups hits whose spans overlap: the same literal is one finding. */
export function groupHits(hits: Hit[]): Hit[][] {
  const sorted = [...hits].sort((a, b) => a.start - b.start || b.end - a.end);
  const groups: Hit[][] = [];
  let current: Hit[] = [];
  let end = -1;
  for (const h of sorted) {
    if (current.length > 0 && h.start < end) {
      current.push(h);
      end = Math.max(end, h.end);
    } else {
      if (current.length > 0) groups.push(current);
      current = [h];
      end = h.end;
    }
  }
  if (current.length > 0) groups.push(current);
  return groups;
}

/**
 * Masks the secrets in a string taken from around a hit: by offset when the string is found
 * in the source within the hit, else by replacing each secret's text.
 */
function masker(source: string, masks: Array<[number, number]>) {
  const secrets = [...new Set(masks.map(([s, e]) => source.slice(s, e)))]
    .filter((s) => s.length > 0)
    .sort((a, b) => b.length - a.length);
  return (h: Hit, shown: string): string => {
    if (masks.length === 0) return shown;
    const at = source.indexOf(shown, h.start);
    if (at !== -1 && at + shown.length <= h.end)
      return applyMasks(source, at, at + shown.length, masks);
    let out = shown;
    for (const secret of secrets) {
      if (out.includes(secret)) out = out.split(secret).join(maskSecret(secret));
    }
    return out;
  };
}

export interface ScanSourceOptions {
  /** The path shown in findings (relative to the scanned directory); defaults to fileName. */
  file?: string;
  policy?: PolicyAdapter | null;
}

/**
 * Scans one file's text. `fileName` decides the analyzer (by extension). Findings come in
 * source order, one per literal or call site, secrets masked.
 */
export async function scanSource(
  text: string,
  fileName: string,
  options: ScanSourceOptions = {},
): Promise<Finding[]> {
  const source = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const { language, hits } = await collectHits(source, fileName);
  if (hits.length === 0) return [];
  const file = options.file ?? fileName;
  const index = new LineIndex(source);
  const masks = hits.flatMap((h) => h.masks ?? []);
  const mask = masker(source, masks);
  const occurrences = new Map<string, number>();
  const findings: Finding[] = [];
  for (const group of groupHits(hits)) {
    const ordered = [...group].sort(
      (a, b) => RULES[a.pattern].rank - RULES[b.pattern].rank || a.start - b.start,
    );
    const primary = ordered[0] as Hit;
    const withEndpoint = ordered.find((h) => h.endpoint !== null);
    const port = ordered.find((h) => h.port !== undefined)?.port;
    const endpoint = withEndpoint?.endpoint ?? null;
    const severity = ordered.reduce((s, h) => maxSeverity(s, h.severity), primary.severity);
    const startPos = index.position(primary.start);
    const endPos = index.position(primary.end);
    const key = `${primary.pattern}\0${primary.text}`;
    const occurrence = (occurrences.get(key) ?? 0) + 1;
    occurrences.set(key, occurrence);
    const finding: Finding = {
      id: newId(),
      file,
      line: startPos.line,
      column: startPos.column,
      endLine: endPos.line,
      endColumn: endPos.column,
      kind: primary.pattern,
      patterns: [...new Set(ordered.map((h) => h.pattern))],
      matches: ordered.map((h) => ({
        pattern: h.pattern,
        severity: h.severity,
        ...index.position(h.start),
        text: mask(h, h.text),
      })),
      severity,
      baseSeverity: severity,
      text: mask(primary, primary.text),
      context: contextLine(source, index, startPos.line - 1, primary.start, masks),
      endpoint: withEndpoint && endpoint !== null ? mask(withEndpoint, endpoint) : null,
      destination: endpoint === null ? null : parseDestination(endpoint, port),
      language,
      fingerprint: createHash('sha256')
        .update(`${file}\0${primary.pattern}\0${primary.text}\0${occurrence}`)
        .digest('hex')
        .slice(0, 32),
      verdict: null,
    };
    if (options.policy) judgeFinding(finding, options.policy);
    findings.push(finding);
  }
  return findings.sort((a, b) => a.line - b.line || a.column - b.column);
}
