import { defineConfig } from 'tsup';

// `npm run bench` compiles the benchmark (and the kdfuse sources it imports) into dist-bench/ and
// runs it with plain node: no TypeScript loader needed. The tfjs peers run in child processes
// (tfjs-child.js beside main.js), so that a peer that aborts or runs out of memory is reported
// and the run goes on.
export default defineConfig({
  entry: { main: 'bench/main.ts', 'tfjs-child': 'bench/peers/tfjs-child.ts' },
  outDir: 'dist-bench',
  format: ['esm'],
  target: 'node20',
  platform: 'node',
  clean: true,
  splitting: false,
  sourcemap: true,
  external: ['benchmark', /^@tensorflow\//],
});
