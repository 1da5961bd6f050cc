/**
 * `npm run demo`: on the UCI handwritten digits, train a teacher on every labelled training row, then
 * small students that see only a few labels: from scratch, distilled from the teacher with kdfuse's
 * fused loss (the teacher also scores the unlabelled rest), and distilled with the
 * explanation-aligned term as well, over several seeds; print mean ± sd of each, how long the loss
 * takes fused vs composed from tfjs ops; explain teacher and students with integrated gradients (or
 * KernelSHAP or LIME: --explainer) and write out/report.html. Numbers are reported as measured.
 */
import { Command, InvalidArgumentError } from 'commander';
import { nonNegative, positive, positiveInt, unit } from './cli-args.js';
import { checkDemoExplainer, runDemo, type DemoOptions } from './run.js';

/** commander shows an InvalidArgumentError with the option's name; the message says what to do instead (Grad-CAM: demo:conv). */
const explainer = (v: string): string => {
  try {
    return checkDemoExplainer(v);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message.replace(/^explainer must be/, 'expected'));
  }
};

const program = new Command('kdfuse-demo')
  .description('Distil a small dense student from a wide dense teacher on the UCI handwritten digits')
  .option('--epochs <n>', 'epochs of the distilled students over all training rows', positiveInt, 40)
  .option('--scratch-epochs <n>', 'epochs of the scratch student over its few labelled rows', positiveInt, 150)
  .option('--teacher-epochs <n>', 'teacher training epochs', positiveInt, 12)
  .option('--labelled <n>', 'training rows whose labels the students see (the same number per class); the rest are the unlabelled transfer set', positiveInt, 100)
  .option('--seeds <n>', 'students trained per kind (seeds --seed, --seed + 1, ...) for the mean and standard deviation', positiveInt, 5)
  .option('--aligned-seeds <n>', 'of those seeds, how many also train the explanation-aligned student (it costs three plain ones)', positiveInt, 1)
  .option('--temperature <T>', 'distillation temperature', positive, 4)
  .option('--alpha <a>', 'weight of the soft (distillation) term; Keras puts its alpha on the hard term', unit, 0.7)
  .option('--align-weight <w>', 'weight of the explanation-aligned term (input-gradient cosine distance; 0: that student is plain KD)', nonNegative, 1)
  .option('--explain-rows <n>', 'test digits explained for the agreement and faithfulness tables', positiveInt, 100)
  .option('--explainer <method>', "attribution method of the heatmaps, agreement and faithfulness tables: 'ig' (integrated gradients), 'kernelshap' or 'lime' (2x2-pixel superpixels); 'gradcam' is for conv models: npm run demo:conv", explainer, 'ig')
  .option('--explain-steps <n>', 'integrated-gradients steps (Gauss-Legendre)', positiveInt, 16)
  .option('--explain-samples <n>', 'KernelSHAP coalitions or LIME samples per digit', positiveInt, 512)
  .option('--background-rows <n>', "KernelSHAP's background: this many training digits", positiveInt, 8)
  .option('--pictures <n>', 'test digits drawn as heatmaps in the report', positiveInt, 12)
  .option('--seed <n>', 'seed of the data split, and the first students\' seed', positiveInt, 1)
  .option('--out <dir>', 'output folder (saved student, results.json, report.html, heatmaps)', 'out')
  .option('--quiet', 'no progress bars')
  .parse();

const opts = program.opts<DemoOptions>();

runDemo(opts).catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
