/**
 * Saved policies: `<dataDir>/policies/NAME.yaml` (directory 0700, files 0600). Text is validated
 * with the policy loader before it is saved.
 */
import { randomBytes } from 'node:crypto';
import { readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ensurePrivateDir, isTrustRunError } from '../core/index.js';
import { parsePolicy } from '../policy/index.js';
import { POLICY_NAME_PATTERN } from './schemas.js';

export interface PolicyProblem {
  file: string | null;
  line: number | null;
  col: number | null;
  message: string;
}

export interface PolicyValidation {
  valid: boolean;
  errors: PolicyProblem[];
  warnings: string[];
  summary: {
    name: string | null;
    format: 'v2' | 'legacy';
    captureLevel: 'metadata' | 'headers' | 'full' | null;
    defaultAction: 'allow' | 'alert' | 'block' | 'kill';
    rules: number;
    files: string[];
  } | null;
}

export interface PolicyFile {
  name: string;
  file: string;
  size: number;
  modifiedAt: number;
}

const POSITION = /^(.*?):(\d+):(\d+): ([\s\S]*)$/;

export function policiesDir(dataDir: string): string {
  return join(dataDir, 'policies');
}

function fileOf(dir: string, name: string): string {
  if (!POLICY_NAME_PATTERN.test(name)) throw new Error(`bad policy name ${name}`);
  return join(dir, `${name}.yaml`);
}

/** Parses the text as if it were `<dir>/NAME.yaml` (relative inherit paths resolve there). */
export async function validatePolicyText(
  dir: string,
  name: string,
  yaml: string,
): Promise<PolicyValidation> {
  const file = fileOf(dir, name);
  const warnings: string[] = [];
  try {
    const p = await parsePolicy(yaml, file, {
      warn: (m) => warnings.push(m),
      inheritWithin: dir,
    });
    return {
      valid: true,
      errors: [],
      warnings,
      summary: {
        name: p.name,
        format: p.format,
        captureLevel: p.captureLevel,
        defaultAction: p.defaultAction,
        rules: p.rules.length,
        files: p.files,
      },
    };
  } catch (err) {
    if (!isTrustRunError(err)) throw err;
    const errors = err.message.split('\n').map((line): PolicyProblem => {
      const m = POSITION.exec(line);
      if (!m) return { file: null, line: null, col: null, message: line };
      const own = m[1] === file;
      return {
        file: own ? null : (m[1] ?? null),
        line: Number(m[2]),
        col: Number(m[3]),
        message: m[4] ?? line,
      };
    });
    return { valid: false, errors, warnings, summary: null };
  }
}

export async function listPolicies(dir: string): Promise<PolicyFile[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: PolicyFile[] = [];
  for (const f of names.sort()) {
    if (!f.endsWith('.yaml')) continue;
    const name = f.slice(0, -'.yaml'.length);
    if (!POLICY_NAME_PATTERN.test(name)) continue;
    const st = await stat(join(dir, f)).catch(() => null);
    if (!st?.isFile()) continue;
    out.push({ name, file: join(dir, f), size: st.size, modifiedAt: st.mtimeMs });
  }
  return out;
}

export async function readPolicy(
  dir: string,
  name: string,
): Promise<(PolicyFile & { yaml: string }) | null> {
  const file = fileOf(dir, name);
  try {
    const [yaml, st] = await Promise.all([readFile(file, 'utf8'), stat(file)]);
    return { name, file, size: st.size, modifiedAt: st.mtimeMs, yaml };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** Writes atomically (temp file + rename), owner-only. */
export async function writePolicy(dir: string, name: string, yaml: string): Promise<PolicyFile> {
  ensurePrivateDir(dir);
  const file = fileOf(dir, name);
  const tmp = join(dir, `.${name}.${randomBytes(6).toString('hex')}.tmp`);
  await writeFile(tmp, yaml, { mode: 0o600, flag: 'wx' });
  await rename(tmp, file);
  const st = await stat(file);
  return { name, file, size: st.size, modifiedAt: st.mtimeMs };
}

export async function deletePolicy(dir: string, name: string): Promise<boolean> {
  try {
    await unlink(fileOf(dir, name));
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
