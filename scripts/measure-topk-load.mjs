// How docs/served-teacher.md chose its file libraries: the load time of a 100k-row x k=64 top-k file (pyarrow-written, vocab 32000, row groups / batches of 10k rows):
// from the file on disk to flat Int32Array ids + Float32Array logprobs. Median of 5 after one warm-up.
//   python3 scripts/make-topk-fixtures.py --bench /tmp/topk-bench   # needs pyarrow
//   npm install --no-save hyparquet@1.31.5                          # the candidate kdfuse did not keep
//   npx tsup && node scripts/measure-topk-load.mjs /tmp/topk-bench [hyparquet|parquet-wasm|apache-arrow|kdfuse]
// The candidates' rows are flattened the same way the loader needs them; 'kdfuse' is loadTopKTeacher
// itself (with its checks of every entry).
import { readFileSync } from 'node:fs';
const D = process.argv[2];
const which = process.argv[3];
const K = 64;
function h2f(h) { const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 31, m = h & 1023; return e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15); }
function flattenArrow(table) {
  const rows = table.numRows, ids = new Int32Array(rows * K), lps = new Float32Array(rows * K);
  let r0 = 0;
  for (const batch of table.batches) {
    const ic = batch.getChild('topk_ids').data[0], lc = batch.getChild('topk_logprobs').data[0];
    const io = ic.valueOffsets, iv = ic.children[0].values, lo = lc.valueOffsets, lv = lc.children[0].values;
    const half = lv instanceof Uint16Array;
    for (let r = 0; r < batch.numRows; r++) {
      const a = io[r], n = io[r + 1] - a, la = lo[r], o = (r0 + r) * K;
      ids.set(iv.subarray(a, a + n), o);
      if (half) for (let j = 0; j < n; j++) lps[o + j] = h2f(lv[la + j]); else lps.set(lv.subarray(la, la + n), o);
    }
    r0 += batch.numRows;
  }
  return { rows, ids };
}
const C = {
  async hyparquet(f) {
    const { parquetRead, parquetMetadata } = await import('hyparquet');
    const buf = readFileSync(f); const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
    const rows = Number(parquetMetadata(ab).num_rows), ids = new Int32Array(rows * K), lps = new Float32Array(rows * K);
    await parquetRead({ file: ab, columns: ['topk_ids', 'topk_logprobs'], onChunk({ columnName, columnData, rowStart }) {
      const out = columnName === 'topk_ids' ? ids : lps;
      for (let r = 0; r < columnData.length; r++) out.set(columnData[r], (rowStart + r) * K);
    } });
    return { rows, ids };
  },
  async 'parquet-wasm'(f) {
    const pw = await import('parquet-wasm'); const arrow = await import('apache-arrow');
    return flattenArrow(arrow.tableFromIPC(pw.readParquet(new Uint8Array(readFileSync(f))).intoIPCStream()));
  },
  async 'apache-arrow'(f) { const arrow = await import('apache-arrow'); return flattenArrow(arrow.tableFromIPC(readFileSync(f))); },
  async kdfuse(f) { const { loadTopKTeacher } = await import('../dist/train.js'); const t = await loadTopKTeacher(f, { verbose: 'quiet' }); return { rows: t.rows, ids: t.indices }; },
};
const ext = { hyparquet: ['parquet'], 'parquet-wasm': ['parquet'], 'apache-arrow': ['arrow'], kdfuse: ['parquet', 'arrow'] };
for (const [name, fn] of Object.entries(C)) {
  if (which && which !== name) continue;
  for (const e of ext[name]) for (const v of ['f32', 'f16']) {
    const f = `${D}/bench-${v}.${e}`;
    await fn(f);
    const ts = [];
    let res;
    for (let i = 0; i < 5; i++) { const t = performance.now(); res = await fn(f); ts.push(performance.now() - t); }
    ts.sort((a, b) => a - b);
    if (res.rows !== 100000 || res.ids[0] !== 11625) throw new Error('wrong result ' + name);
    console.log(`${name.padEnd(13)} ${`${v}.${e}`.padEnd(12)} median ${ts[2].toFixed(0).padStart(5)} ms  (min ${ts[0].toFixed(0)}, max ${ts[4].toFixed(0)})`);
  }
}
