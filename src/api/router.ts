/**
 * A thin layer over hono: each route is declared once with its zod schemas, which both validate
 * the input and feed the OpenAPI document.
 */
import type { Context, Hono } from 'hono';
import { z } from 'zod';
import { ApiError, type ApiIssue } from './errors.js';

export type Method = 'get' | 'post' | 'put' | 'delete';

export interface RouteInput<P, Q, B> {
  params: P;
  query: Q;
  body: B;
}

export interface RouteSpec<P = unknown, Q = unknown, B = unknown> {
  method: Method;
  /** hono path, e.g. `/api/sessions/:id`. */
  path: string;
  summary: string;
  description?: string;
  tag: string;
  params?: z.ZodType<P>;
  query?: z.ZodType<Q>;
  body?: z.ZodType<B>;
  /** The JSON response schema; omitted for non-JSON responses (`produces` says which). */
  response?: z.ZodType;
  produces?: string;
  /** Returns a Response, or a value sent as JSON with status 200. */
  handler: (c: Context, input: RouteInput<P, Q, B>) => unknown;
}

export function issuesOf(error: z.ZodError, prefix: string): ApiIssue[] {
  return error.issues.map((i) => ({
    path: [prefix, ...i.path.map(String)].filter((s) => s !== '').join('.'),
    message: i.message,
  }));
}

function parse<T>(schema: z.ZodType<T> | undefined, value: unknown, where: string): T {
  if (!schema) return undefined as T;
  const r = schema.safeParse(value);
  if (!r.success) {
    throw new ApiError(400, 'TR_BAD_REQUEST', `invalid ${where}`, issuesOf(r.error, where));
  }
  return r.data;
}

async function readJson(c: Context): Promise<unknown> {
  const text = await c.req.text();
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ApiError(400, 'TR_BAD_REQUEST', 'the request body is not valid JSON');
  }
}

const NO_QUERY = z.strictObject({});

export class Router {
  readonly specs: RouteSpec<never, never, never>[] = [];

  constructor(private readonly app: Hono) {}

  add<P, Q, B>(spec: RouteSpec<P, Q, B>): void {
    this.specs.push(spec as unknown as RouteSpec<never, never, never>);
    this.app.on(spec.method.toUpperCase(), spec.path, async (c) => {
      const params = parse(spec.params, c.req.param(), 'params');
      // A route without a query schema takes no query parameters: any is refused, like an
      // unknown one where there is a schema (its schemas are strict).
      const query = spec.query
        ? parse(spec.query, c.req.query(), 'query')
        : (parse(NO_QUERY, c.req.query(), 'query') as Q);
      const body = spec.body ? parse(spec.body, await readJson(c), 'body') : (undefined as B);
      const out = await spec.handler(c, { params, query, body });
      return out instanceof Response ? out : c.json(out as object);
    });
  }
}
