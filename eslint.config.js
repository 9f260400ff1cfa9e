// Lint: typescript-eslint's recommended rules over src/, test/ and bench/. test/fixtures/release-*
// are vendored builds of earlier releases (cross-version tests): compiled output, not our source.
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'bench/results/**', 'coverage/**', 'test/fixtures/release-*/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'error',
    },
  },
  { files: ['bin/**', 'bench/**', 'test/**', 'scripts/**'], rules: { 'no-console': 'off' } },
)
