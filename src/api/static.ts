/** The web UI's files (src/api/ui, copied to dist/api/ui by the build), served from disk. */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Hono } from 'hono';

export const UI_DIR = fileURLToPath(new URL('./ui/', import.meta.url));

const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
};
/** Only plain names below ui/: no dots, no `..`, no absolute paths. */
const SAFE = /^(?:[a-z0-9-]+\/)*[a-z0-9-]+\.(html|js|css|svg)$/;

async function file(rel: string): Promise<{ body: string; type: string } | null> {
  const m = SAFE.exec(rel);
  if (!m) return null;
  try {
    return { body: await readFile(UI_DIR + rel, 'utf8'), type: TYPES[m[1]!]! };
  } catch {
    return null;
  }
}

export function mountUi(app: Hono): void {
  app.get('/', async (c) => {
    const f = await file('index.html');
    if (!f) {
      return c.text(`the web UI files are missing from ${UI_DIR} (run npm run build)`, 500);
    }
    return c.body(f.body, 200, { 'Content-Type': f.type });
  });
  app.get('/ui/*', async (c) => {
    const rel = new URL(c.req.url).pathname.slice('/ui/'.length);
    const f = await file(rel);
    if (!f) return c.json({ error: { code: 'TR_NOT_FOUND', message: 'not found' } }, 404);
    return c.body(f.body, 200, { 'Content-Type': f.type });
  });
}
