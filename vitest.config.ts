import { defineConfig } from 'vitest/config'

// `npm test`: unit + integration tests on loopback. Slow soak/load runs live in test/slow
// (`npm run test:slow`) and are excluded here.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/slow/**', 'node_modules/**', 'dist/**'],
    testTimeout: 60_000,
    hookTimeout: 30_000,
    pool: 'forks',
  },
})
