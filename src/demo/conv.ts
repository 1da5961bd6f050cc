/**
 * `npm run demo:conv`: a conv teacher and two conv students on the 8×8 digits (plain KD, and KD
 * with Grad-CAM alignment), their evaluation numbers and Grad-CAM maps side by side in
 * out/conv-report.html. See conv-run.ts.
 */
import { Command } from 'commander';
import { nonNegative, positive, positiveInt, unit } from './cli-args.js';
import { runConvDemo, type ConvDemoOptions } from './conv-run.js';

const program = new Command('kdfuse-demo-conv')
  .description('Grad-CAM of a conv teacher and its distilled conv students on the UCI handwritten digits')
  .option('--epochs <n>', 'student epochs', positiveInt, 20)
  .option('--teacher-epochs <n>', 'teacher epochs', positiveInt, 15)
  .option('--temperature <T>', 'distillation temperature', positive, 4)
  .option('--alpha <a>', 'weight of the soft term', unit, 0.7)
  .option('--grad-cam-weight <w>', 'weight of the Grad-CAM alignment term for the second student', nonNegative, 1)
  .option('--explain-rows <n>', 'test digits for the Grad-CAM agreement table', positiveInt, 100)
  .option('--pictures <n>', 'test digits drawn', positiveInt, 8)
  .option('--seed <n>', 'seed of the split, initialisers and shuffles', positiveInt, 1)
  .option('--train-rows <n>', 'use only this many training digits (a quick run)', positiveInt)
  .option('--out <dir>', 'output folder', 'out')
  .option('--quiet', 'no progress output')
  .parse();

runConvDemo(program.opts<ConvDemoOptions>()).catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
