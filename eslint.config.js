// One linter for the whole tree. The import-boundary rules below encode the dependency
// direction of the architecture: core <- {ca, policy, store, monitor, scan} <- {proxy, api} <- cli.
import tseslint from 'typescript-eslint';

const modules = ['core', 'ca', 'policy', 'store', 'monitor', 'scan', 'proxy', 'api', 'cli'];
const allowed = {
  core: [],
  ca: ['core'],
  policy: ['core'],
  store: ['core'],
  monitor: ['core', 'policy'],
  scan: ['core', 'policy'],
  proxy: ['core', 'ca', 'policy', 'store'],
  api: ['core', 'store', 'policy'],
  cli: modules.filter((m) => m !== 'cli'),
};

function boundaryRule(mod) {
  const forbidden = modules.filter((m) => m !== mod && !allowed[mod].includes(m));
  return {
    'no-restricted-imports': [
      'error',
      {
        patterns: [
          ...forbidden.map((m) => ({
            group: [`../${m}`, `../${m}/**`, `../../${m}`, `../../${m}/**`],
            message: `src/${mod} may not import from src/${m} (see the module boundaries in docs/architecture.md).`,
          })),
        ],
      },
    ],
  };
}

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'node_modules/**',
      'test/fixtures/**',
      'coverage/**',
      'test-results/**',
      'bench/results/**',
    ],
  },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': 'off',
    },
  },
  ...modules.map((mod) => ({ files: [`src/${mod}/**/*.ts`], rules: boundaryRule(mod) })),
  // Files at a module's top level reach other modules through their index.js only.
  ...modules.map((mod) => ({
    files: [`src/${mod}/*.ts`],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            ...boundaryRule(mod)['no-restricted-imports'][1].patterns,
            {
              group: ['../*/*', '!../*/index.js'],
              message: 'Import another module through its index.js (its public surface).',
            },
          ],
        },
      ],
    },
  })),
  {
    files: ['shims/**/*.cjs', 'bin/**/*.js'],
    languageOptions: {
      sourceType: 'commonjs',
      globals: { require: 'readonly', process: 'readonly', module: 'writable' },
    },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
