/** The OpenAPI 3.1 document, generated from the routes' zod schemas. */
import { z } from 'zod';
import type { RouteSpec } from './router.js';
import { errorSchema } from './schemas.js';

type JsonSchema = Record<string, unknown>;

function schemaOf(t: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const s = z.toJSONSchema(t, { io, unrepresentable: 'any' }) as JsonSchema;
  delete s.$schema;
  return s;
}

function parametersOf(t: z.ZodType | undefined, where: 'query' | 'path') {
  if (!t) return [];
  const s = schemaOf(t, 'input');
  const props = (s.properties ?? {}) as Record<string, JsonSchema>;
  const required = new Set((s.required ?? []) as string[]);
  return Object.entries(props).map(([name, schema]) => {
    const { description, ...rest } = schema;
    return {
      name,
      in: where,
      required: where === 'path' || required.has(name),
      ...(description !== undefined ? { description } : {}),
      schema: rest,
    };
  });
}

const errorResponse = (description: string) => ({
  description,
  content: { 'application/json': { schema: schemaOf(errorSchema, 'output') } },
});

export function openApiDocument(
  specs: readonly RouteSpec<never, never, never>[],
  version: string,
): JsonSchema {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const s of specs) {
    const path = s.path.replace(/:([A-Za-z_]+)/g, '{$1}');
    const ok = s.response
      ? {
          description: 'OK',
          content: { 'application/json': { schema: schemaOf(s.response, 'output') } },
        }
      : { description: 'OK', content: { [s.produces ?? 'application/json']: {} } };
    (paths[path] ??= {})[s.method] = {
      tags: [s.tag],
      summary: s.summary,
      ...(s.description ? { description: s.description } : {}),
      parameters: [...parametersOf(s.params, 'path'), ...parametersOf(s.query, 'query')],
      ...(s.body
        ? {
            requestBody: {
              required: true,
              content: { 'application/json': { schema: schemaOf(s.body, 'input') } },
            },
          }
        : {}),
      responses: {
        200: ok,
        400: errorResponse('invalid input: `error.issues` lists each problem'),
        401: errorResponse('missing or invalid token'),
        403: errorResponse('foreign Host or Origin'),
        ...(s.path.includes(':') ? { 404: errorResponse('not found') } : {}),
        ...(s.body ? { 415: errorResponse('the body is not application/json') } : {}),
      },
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'TrustRun local API',
      version,
      description:
        'Redacted access to the TrustRun audit log. Listens on 127.0.0.1 only. Authenticate ' +
        'with `Authorization: Bearer <token>` (the token is in `<dataDir>/api-token`) or the ' +
        'browser cookie given for a one-time link.',
    },
    servers: [{ url: '/' }],
    security: [{ bearer: [] }, { cookie: [] }],
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer' },
        cookie: { type: 'apiKey', in: 'cookie', name: 'trustrun_session_PORT' },
      },
    },
    paths,
  };
}
