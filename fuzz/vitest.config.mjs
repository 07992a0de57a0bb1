// Vitest configuration for the long-running fuzz target only (`npm run fuzz`); CI's `npm test`
// uses ../vitest.config.ts and never picks up *.fuzz.ts files.
import { defineConfig } from 'vitest/config';

const seconds = Number(process.env.FUZZ_SECONDS ?? 600);

export default defineConfig({
  root: new URL('..', import.meta.url).pathname,
  test: {
    include: ['test/fuzz/**/*.fuzz.ts'],
    pool: 'forks',
    maxWorkers: 1,
    // Heap checks need a real GC.
    execArgv: ['--expose-gc'],
    testTimeout: (seconds + 300) * 1000,
  },
});
