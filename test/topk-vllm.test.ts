/**
 * The vLLM prompt_logprobs converter. test/fixtures/topk/vllm-prompt-logprobs.jsonl mimics a vLLM
 * dump (k = 4, position 0 null, the prompt token added when outside the top 4, one -Infinity as
 * Python's json writes it); it and vllm-expected.json (each position's entries sorted by
 * log-probability, by Python) were written by scripts/make-topk-fixtures.py.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { convertVllmPromptLogprobs, loadTopKTeacher, readVllmPromptLogprobs, type TopKTeacher } from '../src/train/index.js';
import { topkConvertCli } from '../src/train/topk-cli.js';

const FIX = join(__dirname, 'fixtures', 'topk');
const DUMP = join(FIX, 'vllm-prompt-logprobs.jsonl');
const EXP = JSON.parse(readFileSync(join(FIX, 'vllm-expected.json'), 'utf8')) as { vocab_size: number; positions: ([number, number | null][] | null)[] };
const tmp = mkdtempSync(join(tmpdir(), 'kdfuse-vllm-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Every row against the JSON values: the first k entries by log-probability, then -1 padding. */
function expectPositions(t: TopKTeacher, k: number): void {
  expect(t.rows).toBe(EXP.positions.length);
  expect(t.k).toBe(k);
  EXP.positions.forEach((pos, r) => {
    for (let j = 0; j < k; j++) {
      const e = pos?.[j];
      expect(t.indices[r * k + j], `row ${r} entry ${j}`).toBe(e ? e[0] : -1);
      expect(t.logprobs[r * k + j], `row ${r} entry ${j}`).toBe(e ? (e[1] === null ? -Infinity : Math.fround(e[1])) : -Infinity);
    }
  });
}

describe('convertVllmPromptLogprobs', () => {
  it('converts the dump to Parquet that loads back with every JSON value; null positions are padded rows', async () => {
    const out = join(tmp, 'all.parquet');
    const r = await convertVllmPromptLogprobs(DUMP, out, { vocabSize: 40, teacher: 'served-teacher' });
    expect(r).toEqual({ sequences: 3, rows: 14, k: 6, cols: 40, vocabKnown: true });
    const t = await loadTopKTeacher(out);
    expect(t.meta).toEqual({ teacher: 'served-teacher', vocab_size: 40, k: 6, temperature: 1 });
    expectPositions(t, 6); // 6: four top entries, the prompt token, and the -Infinity one
    expect([0, 5, 7].map((r) => t.indices[r * 6])).toEqual([-1, -1, -1]); // each sequence's first position
  });

  it('keeps the k most likely with k, and writes Arrow IPC for .arrow', async () => {
    const out = join(tmp, 'k4.arrow');
    await convertVllmPromptLogprobs(DUMP, out, { vocabSize: 40, k: 4, logprobsType: 'float32' });
    expectPositions(await loadTopKTeacher(out), 4);
  });

  it('without vocabSize the file has no vocab_size, so loading asks for cols', async () => {
    const out = join(tmp, 'novocab.parquet');
    const r = await convertVllmPromptLogprobs(DUMP, out);
    expect(r.vocabKnown).toBe(false);
    expect(r.cols).toBe(Math.max(...EXP.positions.flatMap((p) => (p ?? []).map((e) => e[0]))) + 1);
    await expect(loadTopKTeacher(out)).rejects.toThrow(/no 'vocab_size'/);
    expectPositions(await loadTopKTeacher(out, { cols: 40 }), 6);
  });

  it('names the line and position of what it refuses', async () => {
    await expect(readVllmPromptLogprobs(DUMP, { vocabSize: 30 })).rejects.toThrow(/vllm-prompt-logprobs.jsonl line \d+, position \d+ \(student row \d+\), entry \d+: id \d+ is outside \[0, vocab_size = 30\)/);
    const bad = (name: string, text: string) => { const p = join(tmp, name); writeFileSync(p, text); return p; };
    await expect(readVllmPromptLogprobs(bad('a.jsonl', '{"prompt_logprobs": [null]}\n{oops\n'))).rejects.toThrow(/a.jsonl line 2: not JSON/);
    await expect(readVllmPromptLogprobs(bad('b.jsonl', '{"outputs": []}\n'))).rejects.toThrow(/b.jsonl line 1: 'prompt_logprobs' must be an array/);
    await expect(readVllmPromptLogprobs(bad('c.jsonl', '{"prompt_logprobs": [null, {"3": {"logprob": 0.5}}]}\n'))).rejects.toThrow(/c.jsonl line 1, position 1, token 3: logprob must be a number <= 0/);
    await expect(readVllmPromptLogprobs(bad('d.jsonl', '{"prompt_logprobs": [null, {"x": {"logprob": -1}}]}\n'))).rejects.toThrow(/key 'x' is not a token id/);
    await expect(readVllmPromptLogprobs(bad('e.jsonl', '{"prompt_logprobs": [null, null]}\n'))).rejects.toThrow(/holds no token ids .*pass vocabSize/);
    await expect(readVllmPromptLogprobs(DUMP, { vocab: 40 } as never)).rejects.toThrow(/unknown option 'vocab'/);
    await expect(convertVllmPromptLogprobs(DUMP, join(tmp, 'x.txt'), { vocabSize: 40 })).rejects.toThrow(/cannot tell the format/);
  });
});

describe('kdfuse topk-convert', () => {
  const io = () => { const lines: string[] = []; return { lines, out: { log: (s: string) => lines.push(s), error: (s: string) => lines.push(`E ${s}`) } }; };

  it('converts with --k, --vocab-size, --teacher and --float16', async () => {
    const out = join(tmp, 'cli.parquet');
    const { lines, out: o } = io();
    expect(await topkConvertCli([DUMP, out, '--k', '4', '--vocab-size', '40', '--teacher', 'qwen', '--float16'], o)).toBe(0);
    expect(lines.join('\n')).toMatch(/14 rows from 3 sequences, k = 4, vocab_size 40/);
    const t = await loadTopKTeacher(out);
    expect(t.meta?.teacher).toBe('qwen');
    EXP.positions.forEach((pos, r) => pos?.slice(0, 4).forEach(([id, lp], j) => {
      expect(t.indices[r * 4 + j]).toBe(id);
      expect(Math.abs(t.logprobs[r * 4 + j]! - lp!)).toBeLessThanOrEqual(Math.abs(lp!) * 2 ** -11); // float16 storage
    }));
  });

  it('reports usage errors and conversion errors with a non-zero status', async () => {
    const a = io();
    expect(await topkConvertCli([DUMP], a.out)).toBe(2);
    expect(a.lines.join('\n')).toMatch(/missing required argument 'out'/);
    const b = io();
    expect(await topkConvertCli([DUMP, join(tmp, 'y.parquet'), '--k', '0'], b.out)).toBe(2);
    expect(b.lines.join('\n')).toMatch(/--k.*must be an integer >= 1/);
    const c = io();
    expect(await topkConvertCli([join(tmp, 'absent.jsonl'), join(tmp, 'z.parquet')], c.out)).toBe(1);
    expect(c.lines.join('\n')).toMatch(/E kdfuse topk-convert: .*ENOENT/);
  });
});
