import { defineConfig } from 'tsup';

// ESM and CJS builds of the public surface, with their type declarations. `shims` gives the CJS
// build an import.meta.url, which the addon loader uses to find the package root.
export default defineConfig({
  entry: { index: 'src/index.ts', tfjs: 'src/tfjs/index.ts' },
  format: ['esm', 'cjs'],
  dts: true,
  shims: true,
  // one copy of the kernel layer shared by both entries, in CJS as in ESM (one addon load, one warning)
  splitting: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
});
