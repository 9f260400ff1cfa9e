import { defineConfig } from 'vitest/config'

// `npm run test:slow`: load, soak and fault runs that take minutes; they print their figures.
export default defineConfig({
  test: {
    include: ['test/slow/**/*.test.ts'],
    testTimeout: 900_000,
    hookTimeout: 120_000,
    pool: 'forks',
    fileParallelism: false,
  },
})
