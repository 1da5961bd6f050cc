#!/usr/bin/env python3
"""Writes the top-k teacher fixture files under test/fixtures/topk/ with pyarrow.

The files are committed: the tests only read them (CI has no pyarrow). They are written the way
Python distillation pipelines write top-k teacher files, so kdfuse's loader is tested against the
reference implementation of both formats rather than against its own writer.

    pip install pyarrow numpy
    python3 scripts/make-topk-fixtures.py            # the small fixtures (test/fixtures/topk/)
    python3 scripts/make-topk-fixtures.py --bench D  # 100k rows x k=64 files in D for load timings

expected.json holds every row's ids and log-probabilities as written (float16 values after
rounding to float16), which the tests compare against.
"""
import argparse
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

OUT = os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'topk')
VOCAB = 40
K = 5
META = {'teacher': 'tiny-teacher-v1', 'vocab_size': str(VOCAB), 'k': str(K), 'temperature': '1.0'}


def np_dtype(value_type):
    return {pa.float16(): np.float16, pa.float32(): np.float32}[value_type]


def log_softmax(z):
    z = z - z.max()
    return z - np.log(np.exp(z).sum())


def topk_row(rng, k, vocab=VOCAB):
    """The k most likely (id, logprob) of a random teacher row, most likely first."""
    lp = log_softmax(rng.normal(0, 3, vocab))
    ids = np.argsort(-lp, kind='stable')[:k]
    return [int(i) for i in ids], [float(lp[i]) for i in ids]


def student_rows(rng):
    """12 rows: full rows, one padded with -1 ids, one shorter list, one null list."""
    rows = []
    for r in range(12):
        ids, lps = topk_row(rng, K)
        if r == 3:  # padded in place, as fixed-width writers do: -1 ids, their values ignored
            ids = ids[:2] + [-1] * (K - 2)
            lps = lps[:2] + [float('-inf')] * (K - 2)
        elif r == 7:  # a shorter list: the loader pads it to k
            ids, lps = ids[:3], lps[:3]
        elif r == 10:  # no entries at all (null), as the first position of a vLLM dump
            ids, lps = None, None
        rows.append((ids, lps))
    return rows


def as_f16(lps):
    return None if lps is None else [float(np.float16(x)) for x in lps]


def rows_table(rows, value_type, ids_name='topk_ids', lp_name='topk_logprobs', meta=META):
    ids = pa.array([r[0] for r in rows], type=pa.list_(pa.int32()))
    vals = [r[1] for r in rows]
    lps = pa.array([None if v is None else np.array(v, dtype=np_dtype(value_type)) for v in vals],
                   type=pa.list_(value_type))
    return pa.table({'row_id': pa.array(range(len(rows)), pa.int64()), ids_name: ids, lp_name: lps},
                    metadata=meta)


def sequences(rng):
    """3 sequences of 4, 1 and 6 positions; position 0 of the first is null (no teacher entries)."""
    seqs = []
    for n in (4, 1, 6):
        seq = [topk_row(rng, K) for _ in range(n)]
        seqs.append(seq)
    seqs[0][0] = (None, None)
    seqs[2][4] = (seqs[2][4][0][:2], seqs[2][4][1][:2])  # a shorter list inside a sequence
    return seqs


def sequences_table(seqs, value_type):
    ids = [[p[0] for p in s] for s in seqs]
    lps = [[None if p[1] is None else np.array(p[1], dtype=np_dtype(value_type)).tolist() for p in s] for s in seqs]
    return pa.table({
        'input_ids': pa.array([[7] * len(s) for s in seqs], pa.list_(pa.int64())),
        'target_token_ids': pa.array(ids, pa.list_(pa.list_(pa.int32()))),
        'target_logprobs': pa.array(lps, pa.list_(pa.list_(value_type))),
    }, metadata=META)


def write_small():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(17)
    rows = student_rows(rng)
    seqs = sequences(rng)
    # per student row, float32 and float16, in row groups of 5 rows so the loader streams 3 groups
    pq.write_table(rows_table(rows, pa.float32()), f'{OUT}/rows-f32.parquet', row_group_size=5)
    pq.write_table(rows_table(rows, pa.float16()), f'{OUT}/rows-f16.parquet', row_group_size=5)
    # Arrow IPC file format (.arrow) and uncompressed Feather v2 (the same format, another extension)
    t32 = rows_table(rows, pa.float32())
    with ipc.new_file(f'{OUT}/rows-f32.arrow', t32.schema) as w:
        for b in t32.to_batches(max_chunksize=5):
            w.write_batch(b)
    feather.write_feather(rows_table(rows, pa.float16()), f'{OUT}/rows-f16.feather', compression='uncompressed')
    # int64 ids and float64 values (what pyarrow infers from Python lists), Zstandard-compressed
    t64 = pa.table({'topk_ids': pa.array([r[0] for r in rows], pa.list_(pa.int64())),
                    'topk_logprobs': pa.array([r[1] for r in rows], pa.list_(pa.float64()))}, metadata=META)
    pq.write_table(t64, f'{OUT}/rows-i64-f64-zstd.parquet', compression='zstd')
    # fixed-size lists (every row k wide: the short row padded with -1) in an Arrow IPC file
    def pad(v, fill):
        return None if v is None else v + [fill] * (K - len(v))
    tfix = pa.table({'topk_ids': pa.array([pad(r[0], -1) for r in rows], pa.list_(pa.int32(), K)),
                     'topk_logprobs': pa.array([pad(r[1], float('-inf')) for r in rows], pa.list_(pa.float32(), K))}, metadata=META)
    with ipc.new_file(f'{OUT}/rows-fixed-size.arrow', tfix.schema) as w:
        w.write_table(tfix)
    # per sequence (lists of lists), other column names
    pq.write_table(sequences_table(seqs, pa.float16()), f'{OUT}/sequences-f16.parquet', row_group_size=2)
    ts = sequences_table(seqs, pa.float32())
    with ipc.new_stream(f'{OUT}/sequences-f32.stream.arrow', ts.schema) as w:  # IPC stream format
        for b in ts.to_batches(max_chunksize=2):
            w.write_batch(b)
    # no metadata: the vocabulary size must come from the cols option
    pq.write_table(rows_table(rows, pa.float32(), meta=None), f'{OUT}/no-meta.parquet')

    # files that must be refused, each with one defect
    def one_bad(name, edit):
        bad = [(None if i is None else list(i), None if l is None else list(l)) for i, l in rows]
        edit(bad)
        pq.write_table(rows_table(bad, pa.float32()), f'{OUT}/{name}.parquet')
    one_bad('bad-id-range', lambda b: b[4][0].__setitem__(1, VOCAB))          # id == vocab in row 4
    one_bad('bad-duplicate', lambda b: b[2][0].__setitem__(3, b[2][0][0]))    # a repeated id in row 2
    one_bad('bad-lengths', lambda b: b[1][1].pop())                          # 5 ids, 4 logprobs in row 1
    one_bad('bad-nan', lambda b: b[6][1].__setitem__(0, float('nan')))       # NaN logprob in row 6
    one_bad('bad-too-long', lambda b: (b[5][0].append(39 if 39 not in b[5][0] else 38), b[5][1].append(-20.0)))  # 6 > k
    t = rows_table(rows, pa.float32())
    t = t.set_column(1, 'topk_ids', pa.array([None if r[0] is None else [float(x) for x in r[0]] for r in rows],
                                             pa.list_(pa.float32())))
    pq.write_table(t, f'{OUT}/bad-id-type.parquet')                                # ids stored as floats
    feather.write_feather(rows_table(rows, pa.float32()), f'{OUT}/compressed-lz4.feather', compression='lz4')

    def jl(lps):
        return None if lps is None else [None if not np.isfinite(x) else x for x in lps]
    expected = {
        'vocab_size': VOCAB, 'k': K, 'meta': META,
        'rows': {'ids': [r[0] for r in rows], 'logprobs_f32': [jl(None if r[1] is None else [float(np.float32(x)) for x in r[1]]) for r in rows],
                 'logprobs_f16': [jl(as_f16(r[1])) for r in rows]},
        'sequences': {'ids': [[p[0] for p in s] for s in seqs],
                      'logprobs_f32': [[jl(None if p[1] is None else [float(np.float32(x)) for x in p[1]]) for p in s] for s in seqs],
                      'logprobs_f16': [[jl(as_f16(p[1])) for p in s] for s in seqs]},
    }
    with open(f'{OUT}/expected.json', 'w') as f:
        json.dump(expected, f, indent=1)
        f.write('\n')
    write_vllm(np.random.default_rng(18))


def write_vllm(rng):
    """A dump shaped like vLLM's prompt_logprobs (k = 4): one sequence per line, position 0 null,
    the prompt's own token added with its rank when outside the top 4 (then 5 entries)."""
    words = ['\u2581the', '\u2581cat', 's', '\u2581on', '\u00e9t\u00e9', '\n', ',', '\u2581mat']
    lines, expected = [], []
    for n in (5, 2, 7):
        prompt = rng.integers(0, VOCAB, n)
        seq, exp = [None], [None]
        for p in range(1, n):
            lp = log_softmax(rng.normal(0, 3, VOCAB))
            order = np.argsort(-lp, kind='stable')
            top = [int(i) for i in order[:4]]
            tok = int(prompt[p])
            if tok not in top:
                top.append(tok)
            entry = {str(i): {'logprob': float(lp[i]), 'rank': int(np.where(order == i)[0][0]) + 1,
                              'decoded_token': words[i % len(words)]} for i in top}
            seq.append(entry)
            exp.append(sorted(((i, float(lp[i])) for i in top), key=lambda e: -e[1]))
        lines.append(seq)
        expected.append(exp)
    # Python's json writes -inf as -Infinity: one such entry, as a masked token would give
    lines[1][1]['39'] = {'logprob': float('-inf'), 'rank': VOCAB, 'decoded_token': '<pad>'}
    expected[1][1] = expected[1][1] + [(39, None)]
    with open(f'{OUT}/vllm-prompt-logprobs.jsonl', 'w', encoding='utf-8') as f:
        for seq in lines:
            f.write(json.dumps({'prompt_logprobs': seq}, ensure_ascii=False) + '\n')
    with open(f'{OUT}/vllm-expected.json', 'w') as f:
        json.dump({'vocab_size': VOCAB, 'positions': [p for s in expected for p in s]}, f, indent=1)
        f.write('\n')


def write_bench(out, rows=100_000, k=64, vocab=32000):
    """Realistic sizes for load timings: random ids (distinct per row) and sorted log-probabilities."""
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(1)
    ids = np.argsort(rng.random((rows, 4 * k)), axis=1)[:, :k].astype(np.int32) * (vocab // (4 * k))
    lps = -np.sort(rng.exponential(2.0, (rows, k)), axis=1).astype(np.float32) - 0.01
    offsets = pa.array(np.arange(0, rows * k + 1, k, dtype=np.int32))
    meta = {'teacher': 'bench', 'vocab_size': str(vocab), 'k': str(k), 'temperature': '1.0'}
    for name, vt in (('f32', pa.float32()), ('f16', pa.float16())):
        vals = lps.reshape(-1).astype(np_dtype(vt))
        t = pa.table({'topk_ids': pa.ListArray.from_arrays(offsets, pa.array(ids.reshape(-1))),
                      'topk_logprobs': pa.ListArray.from_arrays(offsets, pa.array(vals, vt))}, metadata=meta)
        pq.write_table(t, f'{out}/bench-{name}.parquet', row_group_size=10_000)  # pyarrow's other defaults (snappy)
        with ipc.new_file(f'{out}/bench-{name}.arrow', t.schema) as w:
            for b in t.to_batches(max_chunksize=10_000):
                w.write_batch(b)


if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--bench', help='write the 100k x 64 timing files to this folder instead')
    a = ap.parse_args()
    if a.bench:
        write_bench(a.bench)
    else:
        write_small()
