import { z } from 'zod';
import type { ApiDeps } from '../deps.js';
import { ApiError, notFound } from '../errors.js';
import {
  deletePolicy,
  listPolicies,
  readPolicy,
  validatePolicyText,
  writePolicy,
} from '../policies.js';
import type { Router } from '../router.js';
import {
  policyBody,
  policyDetailSchema,
  policyFileSchema,
  policyNameParam,
  validationSchema,
} from '../schemas.js';

export function policyRoutes(r: Router, { policiesDir }: ApiDeps): void {
  r.add({
    method: 'get',
    path: '/api/policies',
    tag: 'policies',
    summary: 'List saved policies (<dataDir>/policies/NAME.yaml)',
    response: z.object({ dir: z.string(), items: z.array(policyFileSchema) }),
    handler: async () => ({ dir: policiesDir, items: await listPolicies(policiesDir) }),
  });

  r.add({
    method: 'get',
    path: '/api/policies/:name',
    tag: 'policies',
    summary: 'One saved policy: its YAML text and its validation',
    params: policyNameParam,
    response: policyDetailSchema,
    handler: async (_c, { params }) => {
      const p = await readPolicy(policiesDir, params.name);
      if (!p) throw notFound(`policy ${params.name}`);
      return { ...p, validation: await validatePolicyText(policiesDir, params.name, p.yaml) };
    },
  });

  r.add({
    method: 'post',
    path: '/api/policies/validate',
    tag: 'policies',
    summary: 'Validate policy text without saving it',
    description: 'Always 200; `valid` says the outcome and `errors` give line and column.',
    body: policyBody.extend({ name: policyNameParam.shape.name.optional() }),
    response: validationSchema,
    handler: (_c, { body }) => validatePolicyText(policiesDir, body.name ?? 'policy', body.yaml),
  });

  r.add({
    method: 'put',
    path: '/api/policies/:name',
    tag: 'policies',
    summary: 'Save (create or replace) a policy; it is validated first',
    description: '400 with `issues` (line, col, message) when the text is not a valid policy.',
    params: policyNameParam,
    body: policyBody,
    response: policyDetailSchema,
    handler: async (_c, { params, body }) => {
      const validation = await validatePolicyText(policiesDir, params.name, body.yaml);
      if (!validation.valid) {
        throw new ApiError(
          400,
          'TR_POLICY_INVALID',
          `policy ${params.name} is not valid; nothing was saved`,
          validation.errors.map((e) => ({
            path: 'body.yaml',
            message: e.file ? `${e.file}: ${e.message}` : e.message,
            ...(e.line !== null ? { line: e.line } : {}),
            ...(e.col !== null ? { col: e.col } : {}),
          })),
        );
      }
      const saved = await writePolicy(policiesDir, params.name, body.yaml);
      return { ...saved, yaml: body.yaml, validation };
    },
  });

  r.add({
    method: 'delete',
    path: '/api/policies/:name',
    tag: 'policies',
    summary: 'Delete a saved policy',
    params: policyNameParam,
    response: z.object({ deleted: z.literal(true) }),
    handler: async (_c, { params }) => {
      if (!(await deletePolicy(policiesDir, params.name))) throw notFound(`policy ${params.name}`);
      return { deleted: true as const };
    },
  });
}
