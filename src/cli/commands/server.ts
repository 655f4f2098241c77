import type { Command } from 'commander';
import { TrustRunError, createLogger, dataPaths } from '../../core/index.js';
import { startApiServer, type ApiServer } from '../../api/index.js';
import { openStore, type Store } from '../../store/index.js';
import { addDataDirOption, dataDirFrom, intOption, printJson } from '../common.js';

export interface ServerCommandOptions {
  port: number;
  dataDir?: string;
  json?: boolean;
}

export interface RunningServer {
  api: ApiServer;
  store: Store;
  dataDir: string;
  tokenFile: string;
  stop(): Promise<void>;
}

/** Opens the store and serves the API and web UI on 127.0.0.1. */
export async function startServer(opts: ServerCommandOptions): Promise<RunningServer> {
  const dataDir = dataDirFrom(opts);
  const logger = createLogger();
  const store = await openStore({ dataDir, logger });
  let api: ApiServer;
  try {
    api = await startApiServer({ store, dataDir, port: opts.port, logger });
  } catch (err) {
    await store.close();
    throw err;
  }
  return {
    api,
    store,
    dataDir,
    tokenFile: dataPaths(dataDir).apiToken,
    async stop() {
      await api.close();
      await store.close();
    },
  };
}

/** The earlier tool's TRUSTRUN_WEB_PORT, else 8470. */
function defaultPort(env: NodeJS.ProcessEnv = process.env): number {
  const text = env.TRUSTRUN_WEB_PORT?.trim();
  if (!text) return 8470;
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) {
    throw new TrustRunError('TR_USAGE', `TRUSTRUN_WEB_PORT=${text}: not a port (0-65535)`);
  }
  return Number(text);
}

export function register(program: Command): void {
  const cmd = program
    .command('server')
    .summary('serve the local REST API and web UI')
    .description(
      'Serve the REST API and the web UI on 127.0.0.1, for the records in the data directory.\n' +
        'Open the one-time link it prints (valid 15 minutes, once); scripts use the bearer token\n' +
        'in <data dir>/api-token. Runs beside `trustrun proxy`: new records appear live.',
    )
    .option(
      '--port <port>',
      'port to listen on (0 = any free port; default: $TRUSTRUN_WEB_PORT, else 8470)',
      intOption('--port', 0, 65535),
    );
  addDataDirOption(cmd)
    .option('--json', 'print {url, oneTimeUrl, tokenFile} as JSON on stdout')
    .action(async (opts: Omit<ServerCommandOptions, 'port'> & { port?: number }) => {
      const s = await startServer({ ...opts, port: opts.port ?? defaultPort() });
      if (opts.json) {
        printJson({
          url: s.api.url,
          oneTimeUrl: s.api.oneTimeUrl,
          tokenFile: s.tokenFile,
          dataDir: s.dataDir,
        });
      }
      process.stderr.write(
        `TrustRun API and web UI on ${s.api.url}\n` +
          `  open in a browser (one use, 15 minutes): ${s.api.oneTimeUrl}\n` +
          `  API token for scripts: ${s.tokenFile}\n` +
          `  data directory: ${s.dataDir}\n`,
      );
      await new Promise<void>((resolve) => {
        process.once('SIGINT', () => resolve());
        process.once('SIGTERM', () => resolve());
      });
      process.stderr.write('stopping…\n');
      await s.stop();
    });
}
