/**
 * API errors: one type for HTTP failures, and the one place where TrustRunError codes become
 * HTTP statuses.
 */
import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { isTrustRunError, type ErrorCode, type Logger } from '../core/index.js';

/** One zod issue as the API reports it: where (a field path) and what. */
export interface ApiIssue {
  path: string;
  message: string;
  line?: number;
  col?: number;
}

export class ApiError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly issues?: ApiIssue[],
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

const STATUS_BY_CODE: Partial<Record<ErrorCode, ContentfulStatusCode>> = {
  TR_USAGE: 400,
  TR_BAD_REQUEST: 400,
  TR_CONFIG: 400,
  TR_POLICY_INVALID: 400,
  TR_POLICY_CYCLE: 400,
  TR_NOT_FOUND: 404,
  TR_SEAL_OPEN: 410,
  TR_STORE_UNAVAILABLE: 503,
};

export function notFound(what: string): ApiError {
  return new ApiError(404, 'TR_NOT_FOUND', `${what} not found`);
}

/** Turns any thrown value into a JSON error response; internal details stay in the log. */
export function errorResponse(err: unknown, c: Context, logger: Logger): Response {
  if (err instanceof ApiError) {
    const body = { error: { code: err.code, message: err.message, issues: err.issues } };
    return c.json(body, err.status);
  }
  if (isTrustRunError(err)) {
    const status = STATUS_BY_CODE[err.code] ?? 500;
    if (status === 500) logger.error({ code: err.code, err: err.message }, 'api request failed');
    const message = status === 500 ? 'internal error' : err.message;
    return c.json({ error: { code: err.code, message } }, status);
  }
  logger.error({ err: err instanceof Error ? err.message : String(err) }, 'api request failed');
  return c.json({ error: { code: 'TR_INTERNAL', message: 'internal error' } }, 500);
}
