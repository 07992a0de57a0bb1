import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // dist/ built once for the tests that run synfin from it (test/global-setup.ts).
    globalSetup: ['test/global-setup.ts'],
    // Tests that create TUN devices and network namespaces each use unique names,
    // but they share two cores: keep file-level parallelism modest.
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
