import { defineConfig } from 'tsup';

// `npm run bench:ig`: compiles bench/ig.ts (and the kdfuse sources it imports) into dist-bench/ig.js,
// as bench/tsup.config.ts does for `npm run bench`; without `clean`, so the two can coexist.
export default defineConfig({
  entry: { ig: 'bench/ig.ts' },
  outDir: 'dist-bench',
  format: ['esm'],
  target: 'node20',
  platform: 'node',
  clean: false,
  splitting: false,
  sourcemap: true,
  external: [/^@tensorflow\//],
});
