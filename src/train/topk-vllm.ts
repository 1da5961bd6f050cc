/**
 * vLLM `prompt_logprobs` dumps to top-k teacher files. The input is JSON lines, one sequence per
 * line: `{"prompt_logprobs": [null, {"<token id>": {"logprob": x, "rank": r, "decoded_token": "…"},
 * …}, …]}`; each position becomes a student row, and a null position (vLLM returns null for the
 * first token, which has no context) becomes a row padded with -1. `npx kdfuse topk-convert` calls
 * convertVllmPromptLogprobs. docs/served-teacher.md, "From vLLM".
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { checkKnownKeys, describe, requireDim, requireObject } from '../kernels/validate.js';
import { writeTopKFile, type SaveTopKOptions } from './topk-files.js';
import { TopKRowsBuilder } from './topk-rows.js';
import type { TopKTeacher } from './topk-teacher.js';

export interface VllmPromptLogprobsOptions {
  /** keep the k most likely entries of each position (default: the most any position has) */
  k?: number;
  /** the vocabulary size; without it ids are only checked to be >= 0 and the file has no 'vocab_size' */
  vocabSize?: number;
  /** the teacher's name, kept in the metadata */
  teacher?: string;
}

export interface ConvertVllmOptions extends VllmPromptLogprobsOptions, SaveTopKOptions {}

const READ_KEYS = ['k', 'vocabSize', 'teacher'] as const;
const CONVERT_KEYS = [...READ_KEYS, 'format', 'logprobsType', 'rowGroupSize'] as const;

interface Position {
  ids: number[];
  lps: number[];
}

/** One position's entries, most likely first, at most k of them. */
function parsePosition(v: unknown, where: string, k: number | undefined): Position | null {
  if (v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) throw new RangeError(`${where}: must be null or an object of token ids, got ${describe(v)}`);
  const entries: [number, number][] = [];
  for (const [key, e] of Object.entries(v as Record<string, unknown>)) {
    if (!/^\d+$/.test(key)) throw new RangeError(`${where}: key '${key}' is not a token id`);
    const lp = (e as { logprob?: unknown } | null)?.logprob;
    if (typeof lp !== 'number' || Number.isNaN(lp) || lp > 0) throw new RangeError(`${where}, token ${key}: logprob must be a number <= 0, got ${describe(lp)}`);
    entries.push([Number(key), lp]);
  }
  // vLLM adds the prompt's own token when it is outside the top k, so a position may hold k + 1
  entries.sort((a, b) => b[1] - a[1] || a[0] - b[0]);
  const kept = k === undefined ? entries : entries.slice(0, k);
  return { ids: kept.map((e) => e[0]), lps: kept.map((e) => e[1]) };
}

/** Python's json.dumps writes -inf as -Infinity, which JSON.parse refuses; -1e999 parses to it. */
function parseJsonLine(line: string): unknown {
  return JSON.parse(line.replace(/(:\s*)-Infinity\b/g, '$1-1e999'));
}

/**
 * Reads a vLLM prompt_logprobs JSON-lines dump into the in-memory top-k form, every position of
 * every line in order. Also returns `vocabKnown`: whether cols came from vocabSize (else it is the
 * largest id + 1, a lower bound).
 */
export async function readVllmPromptLogprobs(input: string, options: VllmPromptLogprobsOptions = {}): Promise<TopKTeacher & { vocabKnown: boolean; sequences: number }> {
  const fn = 'readVllmPromptLogprobs';
  if (typeof input !== 'string' || input.length === 0) throw new TypeError(`${fn}: input must be a non-empty path, got ${describe(input)}`);
  const o = requireObject(options, 'options');
  checkKnownKeys(o, READ_KEYS, fn);
  const k = o.k === undefined ? undefined : requireDim(o.k, 'k');
  const vocabSize = o.vocabSize === undefined ? undefined : requireDim(o.vocabSize, 'vocabSize');
  if (o.teacher !== undefined && typeof o.teacher !== 'string') throw new TypeError(`teacher must be a string, got ${describe(o.teacher)}`);

  // parsed first, checked second: without vocabSize the id range is known only at the end
  const positions: (Position | null)[] = [];
  const lineOf: number[] = [], indexOf: number[] = []; // each position's line and index, for errors
  let line = 0, sequences = 0, maxId = -1, width = 0;
  const lines = createInterface({ input: createReadStream(input), crlfDelay: Infinity });
  for await (const text of lines) {
    line++;
    if (text.trim() === '') continue;
    let obj: unknown;
    try {
      obj = parseJsonLine(text);
    } catch (e) {
      throw new RangeError(`${input} line ${line}: not JSON (${(e as Error).message})`);
    }
    const seq = (obj as { prompt_logprobs?: unknown } | null)?.prompt_logprobs;
    if (!Array.isArray(seq)) throw new RangeError(`${input} line ${line}: 'prompt_logprobs' must be an array, got ${describe(seq)}`);
    sequences++;
    seq.forEach((p, i) => {
      const at = `${input} line ${line}, position ${i}`;
      const pos = parsePosition(p, at, k);
      if (pos) {
        for (const id of pos.ids) maxId = Math.max(maxId, id);
        width = Math.max(width, pos.ids.length);
      }
      positions.push(pos);
      lineOf.push(line);
      indexOf.push(i);
    });
  }
  const cols = vocabSize ?? maxId + 1;
  if (cols < 1) throw new RangeError(`${input} holds no token ids (${sequences} sequences, ${positions.length} positions); pass vocabSize`);
  const builder = new TopKRowsBuilder(cols, k ?? Math.max(width, 1), positions.length);
  positions.forEach((p, r) => {
    if (!p) builder.addEmptyRow();
    else builder.addRow(p.ids, 0, p.lps, 0, p.ids.length, (_, entry) => `${input} line ${lineOf[r]}, position ${indexOf[r]} (student row ${r})${entry === undefined ? '' : `, entry ${entry}`}`);
  });
  const t = builder.finish();
  const meta = { ...(o.teacher === undefined ? {} : { teacher: o.teacher as string }), ...(vocabSize === undefined ? {} : { vocab_size: cols }), k: t.k, temperature: 1 };
  return { ...t, meta, vocabKnown: vocabSize !== undefined, sequences };
}

/**
 * Converts a vLLM prompt_logprobs dump to a top-k teacher file (Parquet or Arrow, from the output's
 * extension) that loadTopKTeacher reads. Returns what was written.
 */
export async function convertVllmPromptLogprobs(input: string, output: string, options: ConvertVllmOptions = {}): Promise<{ sequences: number; rows: number; k: number; cols: number; vocabKnown: boolean }> {
  const o = requireObject(options, 'options');
  checkKnownKeys(o, CONVERT_KEYS, 'convertVllmPromptLogprobs');
  const { format, logprobsType, rowGroupSize, ...read } = o as ConvertVllmOptions;
  const t = await readVllmPromptLogprobs(input, read);
  const save: SaveTopKOptions = {};
  if (format !== undefined) save.format = format;
  if (logprobsType !== undefined) save.logprobsType = logprobsType;
  if (rowGroupSize !== undefined) save.rowGroupSize = rowGroupSize;
  const { vocabKnown, sequences, ...teacher } = t;
  await writeTopKFile(output, teacher, save, 'convertVllmPromptLogprobs', vocabKnown);
  return { sequences, rows: t.rows, k: t.k, cols: t.cols, vocabKnown };
}
