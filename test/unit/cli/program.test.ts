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

describe('the program', () => {
  const trustrun = (...args: string[]) => {
    try {
      const stdout = execFileSync(process.execPath, ['bin/trustrun.js', ...args], {
        cwd: new URL('../../..', import.meta.url).pathname,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, TRUSTRUN_LOG_LEVEL: '' },
      });
      return { code: 0, stdout, stderr: '' };
    } catch (err) {
      const e = err as { status: number; stdout: string; stderr: string };
      return { code: e.status, stdout: e.stdout, stderr: e.stderr };
    }
  };

  it('prints its version as the earlier tool did', () => {
    expect(trustrun('--version').stdout).toMatch(/^trustrun, version \d+\.\d+\.\d+\n$/);
  });

  it.each([
    [['history', '--limit', '0'], /--limit/],
    [['proxi'], /unknown command 'proxi'.*Did you mean proxy\?/],
    [['scan', '--bogus'], /unknown option '--bogus'/],
  ])('a usage error %j is one line on stderr, exit 2', (args, message) => {
    const r = trustrun(...args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^trustrun: .* \(see --help\)\n$/);
    expect(r.stderr.split('\n')).toHaveLength(2);
    expect(r.stderr).toMatch(message);
  });

  it('-v/--verbose logs at debug level', async () => {
    const { buildProgram: build } = await import('../../../src/cli/program.js');
    const before = process.env.TRUSTRUN_LOG_LEVEL;
    try {
      delete process.env.TRUSTRUN_LOG_LEVEL;
      const program = await build(argv('-v', 'history', '--help'));
      program.commands.find((c) => c.name() === 'history')!.action(() => {});
      await program.parseAsync(argv('-v', 'history'));
      expect(process.env.TRUSTRUN_LOG_LEVEL).toBe('debug');
    } finally {
      if (before === undefined) delete process.env.TRUSTRUN_LOG_LEVEL;
      else process.env.TRUSTRUN_LOG_LEVEL = before;
    }
  });
});
