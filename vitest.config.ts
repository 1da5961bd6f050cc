import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (p: string) => fileURLToPath(new URL(p, import.meta.url));

export default defineConfig({
  resolve: {
    // examples/ import the package by name, as users do; in tests that name is the source
    alias: {
      'kdfuse/tfjs': src('./src/tfjs/index.ts'),
      'kdfuse/train': src('./src/train/index.ts'),
      'kdfuse/explain': src('./src/explain/index.ts'),
      'kdfuse/datasets': src('./src/datasets/index.ts'),
      kdfuse: src('./src/index.ts'),
    },
  },
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/setup-tfjs.ts'],
    pool: 'forks',
    // the async tests put the garbage collector under pressure with global.gc()
    execArgv: ['--expose-gc'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
