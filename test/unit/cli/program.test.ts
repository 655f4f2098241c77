import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { buildProgram, commandsFor } from '../../../src/cli/program.js';

const argv = (...args: string[]) => ['node', 'trustrun', ...args];

describe('loading commands on demand', () => {
  it('loads only the command named on the command line', async () => {
    expect(commandsFor(argv('proxy', '--level', 'headers'))).toEqual(['proxy']);
    expect(commandsFor(argv('run', '--', 'Rscript', 'scan'))).toEqual(['run']);
    const program = await buildProgram(argv('requests', '--json'));
    expect(program.commands.map((c) => c.name())).toEqual(['requests']);
  });

  it('loads every command for help, no command or an unknown one, and none for --version', async () => {
    const all = (await buildProgram()).commands.map((c) => c.name());
    expect(all).toContain('proxy');
    expect(all.length).toBeGreaterThanOrEqual(11);
    expect(commandsFor(argv())).toEqual(all);
    expect(commandsFor(argv('--help'))).toEqual(all);
    expect(commandsFor(argv('prox'))).toEqual(all);
    expect(commandsFor(argv('help', 'proxy'))).toEqual(all);
    expect(commandsFor(argv('--help', 'proxy'))).toEqual(all);
    expect(commandsFor(argv('proxy', '--help'))).toEqual(['proxy']);
    expect(commandsFor(argv('--version'))).toEqual([]);
  });

  it("keeps the PKCS#12, Public Suffix List and API code, and undici's web APIs, out of a proxy process", () => {
    const script = `
      import { createRequire } from 'node:module';
      await import('./dist/cli/commands/proxy.js');
      const loaded = Object.keys(createRequire(import.meta.url).cache);
      console.log(JSON.stringify(loaded.filter((f) => /node_modules\\/(node-forge|tldts|@hono)\\//.test(f))));
      console.log(JSON.stringify(loaded.filter((f) => /node_modules\\/undici\\//.test(f)).length));
      console.log(JSON.stringify(loaded.filter((f) => /node_modules\\/undici\\/(index\\.js|lib\\/web\\/)/.test(f))));
    `;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: new URL('../../..', import.meta.url).pathname,
      encoding: 'utf8',
    })
      .trim()
      .split('\n');
    expect(JSON.parse(out[0]!)).toEqual([]);
    // The check sees CommonJS modules: undici (one) is there, as the proxy needs it…
    expect(JSON.parse(out[1]!)).toBeGreaterThan(0);
    // …but not its main entry with fetch, WebSocket and the rest of its web APIs.
    expect(JSON.parse(out[2]!)).toEqual([]);
  });
});
