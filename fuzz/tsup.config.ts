import { defineConfig } from 'tsup';

// `npm run fuzz` and `npm run soak` compile these scripts (and the kdfuse sources they import) into
// dist-fuzz/ and run them with plain node, as `npm run bench` does. The children (fuzz-child.js,
// soak-worker.js) sit beside the parents, which start them as separate processes / worker threads.
export default defineConfig({
  entry: {
    fuzz: 'fuzz/main.ts',
    'fuzz-child': 'fuzz/child.ts',
    soak: 'fuzz/soak.ts',
    'soak-worker': 'fuzz/soak-worker.ts',
  },
  outDir: 'dist-fuzz',
  format: ['esm'],
  target: 'node20',
  platform: 'node',
  clean: true,
  splitting: false,
  sourcemap: true,
  external: [/^@tensorflow\//],
});
