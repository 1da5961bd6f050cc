import { defineConfig } from 'tsup';

// `npm run demo`'s build: the demo alone, ESM, no declarations (they took most of the build's time),
// into its own folder so it never cleans or overwrites the package's dist/.
export default defineConfig({
  entry: { demo: 'src/demo/main.ts', 'demo-conv': 'src/demo/conv.ts' },
  format: ['esm'],
  outDir: 'dist-demo',
  dts: false,
  external: [/^@tensorflow\//],
  clean: true,
  sourcemap: true,
  target: 'node20',
});
