import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TrustRunError, ensurePrivateDir, type DataPaths } from '../core/index.js';
import { writeFileAtomic } from './files.js';

/** Templates shipped with the package (top-level shims/), from src/ca or dist/ca alike. */
export const TEMPLATE_DIR = fileURLToPath(new URL('../../shims/', import.meta.url));

const R_MARKER = 'TrustRun R start-up shim';
const WGET_MARKER = 'TrustRun wgetrc';

export interface ShimFiles {
  rProfile: string;
  wgetrc: string;
}

/** An R string literal's content (between double quotes). */
function rString(s: string): string {
  return s.replace(/[\\"\x00-\x1f\x7f]/g, (c) =>
    c === '\\' || c === '"' ? '\\' + c : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

async function readIfExists(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch {
    return null;
  }
}

async function render(name: string, values: Record<string, string>): Promise<string> {
  const file = join(TEMPLATE_DIR, name);
  const template = await readIfExists(file);
  if (template === null) {
    throw new TrustRunError(
      'TR_INTERNAL',
      `shim template ${file} is missing from the installation`,
    );
  }
  // One pass, so substituted text is never scanned for placeholders again.
  return template.replace(/@@([A-Z_]+)@@/g, (m, key: string) => values[key] ?? m);
}

async function writeIfChanged(file: string, content: string): Promise<void> {
  if ((await readIfExists(file)) === content) return;
  await writeFileAtomic(file, content, 0o600);
}

/**
 * Writes the R start-up shim and the wgetrc into the data directory's shims/ (0700, files 0600)
 * and returns their paths. `env` is the environment the variables will be added to: a
 * R_PROFILE or WGETRC already set there (and not one of ours) is chained / folded in.
 */
export async function writeShims(paths: DataPaths, env: NodeJS.ProcessEnv): Promise<ShimFiles> {
  ensurePrivateDir(paths.shimsDir);
  const files: ShimFiles = {
    rProfile: join(paths.shimsDir, 'Rprofile.R'),
    wgetrc: join(paths.shimsDir, 'wgetrc'),
  };

  let site = '';
  const priorR = env.R_PROFILE;
  if (priorR && priorR !== files.rProfile) {
    const text = await readIfExists(priorR);
    if (text !== null && !text.includes(R_MARKER)) site = priorR;
  }
  await writeIfChanged(
    files.rProfile,
    await render('Rprofile.R', { BUNDLE: rString(paths.caBundle), SITE_PROFILE: rString(site) }),
  );

  if (/[\r\n]/.test(paths.caBundle)) {
    throw new TrustRunError(
      'TR_CONFIG',
      `the data directory path cannot contain a line break: ${JSON.stringify(paths.root)}`,
    );
  }
  const home = join(env.HOME || homedir(), '.wgetrc');
  let userFile = home;
  let user: string | null = null;
  for (const candidate of [env.WGETRC, home]) {
    if (!candidate || candidate === files.wgetrc) continue;
    const text = await readIfExists(candidate);
    if (text === null || text.includes(WGET_MARKER)) continue;
    [userFile, user] = [candidate, text];
    break;
  }
  const folded =
    user === null
      ? `# (no ${userFile} to copy)`
      : `# --- copied from ${userFile} ---\n${user.trimEnd()}\n# --- end of ${userFile} ---`;
  await writeIfChanged(
    files.wgetrc,
    await render('wgetrc', { USER_WGETRC: folded, BUNDLE: paths.caBundle }),
  );
  return files;
}
