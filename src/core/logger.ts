import pino, { type Logger, type DestinationStream } from 'pino';

export type { Logger };

/**
 * Paths pino masks in every log line. Logs never carry URLs' paths, headers or bodies in the
 * first place; this is the second line of defence for anything secret-bearing that slips in.
 */
export const LOG_REDACT_PATHS = [
  'headers.authorization',
  'headers["proxy-authorization"]',
  'headers.cookie',
  'headers["set-cookie"]',
  'headers["x-api-key"]',
  'headers["api-key"]',
  'req.headers',
  'res.headers',
  'url',
  'path',
  'body',
  'token',
  'key',
  'passphrase',
];

export interface LoggerOptions {
  level?: string;
  /** Where JSON lines go; defaults to stderr. */
  destination?: DestinationStream;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? process.env.TRUSTRUN_LOG_LEVEL ?? 'warn';
  return pino(
    {
      level,
      base: { pid: process.pid },
      redact: { paths: LOG_REDACT_PATHS, censor: '[REDACTED]' },
    },
    options.destination ?? pino.destination({ fd: 2, sync: false }),
  );
}

/** A logger that drops everything, for tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
