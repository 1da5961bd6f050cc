import { defineConfig } from 'tsup';

// ESM and CJS builds of the public surface, with their type declarations. `shims` gives the CJS
// build an import.meta.url, which the addon loader uses to find the package root.
export default defineConfig({
  entry: { index: 'src/index.ts', tfjs: 'src/tfjs/index.ts', train: 'src/train/index.ts', explain: 'src/explain/index.ts', demo: 'src/demo/main.ts', 'demo-conv': 'src/demo/conv.ts' },
  format: ['esm', 'cjs'],
  dts: true,
  shims: true,
  // one copy of the kernel layer shared by both entries, in CJS as in ESM (one addon load, one warning)
  splitting: true,
  // tfjs is the user's (a peer) or the demo's dev dependency: never bundled, so one tfjs instance exists
  external: [/^@tensorflow\//],
  clean: true,
  sourcemap: true,
  target: 'node20',
});
