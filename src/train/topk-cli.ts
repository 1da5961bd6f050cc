/**
 * `npx kdfuse topk-convert in.jsonl out.parquet [--k K] [--vocab-size V] [--teacher NAME]`: the
 * command-line face of convertVllmPromptLogprobs. Its own tsup entry (dist/topk-cli.*), so the
 * command does not load tfjs, which the rest of kdfuse/train needs.
 */
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { convertVllmPromptLogprobs, type ConvertVllmOptions } from './topk-vllm.js';

function positiveInt(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('must be an integer >= 1');
  return n;
}

/** Runs the command on `argv` (the words after `topk-convert`); resolves to the exit status. */
export async function topkConvertCli(argv: string[], out: { log(s: string): void; error(s: string): void } = console): Promise<number> {
  const program = new Command('kdfuse topk-convert')
    .description('convert a vLLM prompt_logprobs dump (JSON lines) to a top-k teacher file (.parquet, .arrow or .feather)')
    .argument('<in>', 'JSON lines, one {"prompt_logprobs": [...]} per sequence')
    .argument('<out>', 'the file to write; its extension chooses Parquet or Arrow IPC')
    .option('--k <k>', 'keep the k most likely entries per position (default: the most any position has)', positiveInt)
    .option('--vocab-size <v>', 'the vocabulary size, stored in the metadata (without it, loading needs cols)', positiveInt)
    .option('--teacher <name>', "the teacher's name, stored in the metadata")
    .option('--float16', 'store log-probabilities as float16 (half the size)')
    .exitOverride()
    .configureOutput({ writeOut: (s) => out.log(s.trimEnd()), writeErr: (s) => out.error(s.trimEnd()) });
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2; // usage errors, already printed; --help is 0
    throw e;
  }
  const [input, output] = program.args as [string, string];
  const o = program.opts<{ k?: number; vocabSize?: number; teacher?: string; float16?: boolean }>();
  const options: ConvertVllmOptions = {};
  if (o.k !== undefined) options.k = o.k;
  if (o.vocabSize !== undefined) options.vocabSize = o.vocabSize;
  if (o.teacher !== undefined) options.teacher = o.teacher;
  if (o.float16) options.logprobsType = 'float16';
  try {
    const r = await convertVllmPromptLogprobs(input, output, options);
    const vocab = r.vocabKnown ? `vocab_size ${r.cols}` : `no vocab_size (largest id ${r.cols - 1}; pass cols when loading, or --vocab-size here)`;
    out.log(`${output}: ${r.rows} rows from ${r.sequences} sequences, k = ${r.k}, ${vocab}`);
    return 0;
  } catch (e) {
    out.error(`kdfuse topk-convert: ${(e as Error).message}`);
    return 1;
  }
}
