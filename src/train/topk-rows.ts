/**
 * Gathers top-k rows (ids and log-probabilities of any length up to k) into the `[rows, k]`
 * arrays of a TopKTeacher, checking every entry as it goes: ids in [0, cols) or the padding -1,
 * no id twice in a row, no NaN or +Infinity log-probability. The file readers and the vLLM
 * converter feed it one row at a time; errors name the column and row through `where`.
 */
export type Where = (column: 'ids' | 'logprobs', entry?: number) => string;

export class TopKRowsBuilder {
  rows = 0;
  k: number;
  indices: Int32Array;
  logprobs: Float32Array;
  private readonly seen: Int32Array; // seen[id] = rows + 1 while the row being added holds id

  /**
   * `k` is the file's stated width (rows longer than it are refused) or undefined, when the width
   * becomes the longest row seen. `rowsHint` sizes the first allocation.
   */
  constructor(readonly cols: number, private readonly fixedK: number | undefined, rowsHint = 1024) {
    this.k = fixedK ?? 1;
    const cap = Math.max(1, rowsHint);
    // not filled: every row writes all k of its entries, padding included
    this.indices = new Int32Array(cap * this.k);
    this.logprobs = new Float32Array(cap * this.k);
    this.seen = new Int32Array(cols);
  }

  /** Makes room for rows of `len` entries (widening every row when k is not fixed). */
  ensureWidth(len: number, where: Where): void {
    if (len <= this.k) return;
    if (this.fixedK !== undefined) {
      throw new RangeError(`${where('ids')}: ${len} entries, more than k = ${this.fixedK} (the file's metadata 'k')`);
    }
    const cap = this.indices.length / this.k;
    const ids = new Int32Array(cap * len), lps = new Float32Array(cap * len);
    for (let r = 0; r < this.rows; r++) {
      ids.set(this.indices.subarray(r * this.k, (r + 1) * this.k), r * len);
      lps.set(this.logprobs.subarray(r * this.k, (r + 1) * this.k), r * len);
      ids.fill(-1, r * len + this.k, (r + 1) * len);
      lps.fill(-Infinity, r * len + this.k, (r + 1) * len);
    }
    this.indices = ids;
    this.logprobs = lps;
    this.k = len;
  }

  private grow(): void {
    const cap = this.indices.length / this.k;
    if (this.rows < cap) return;
    const ids = new Int32Array(cap * 2 * this.k), lps = new Float32Array(cap * 2 * this.k);
    ids.set(this.indices);
    lps.set(this.logprobs);
    this.indices = ids;
    this.logprobs = lps;
  }

  /** A row with no entries (a null list, or vLLM's first position): all padding. */
  addEmptyRow(): void {
    this.grow();
    const base = this.rows * this.k;
    this.indices.fill(-1, base, base + this.k);
    this.logprobs.fill(-Infinity, base, base + this.k);
    this.rows++;
  }

  /**
   * One row: `len` ids from `ids[idStart..]` and log-probabilities from `lps[lpStart..]`;
   * `idValid` / `lpValid` (when given) say whether an element is non-null.
   */
  addRow(
    ids: ArrayLike<number>, idStart: number, lps: ArrayLike<number>, lpStart: number, len: number, where: Where,
    idValid?: (i: number) => boolean, lpValid?: (i: number) => boolean,
  ): void {
    this.ensureWidth(len, where);
    this.grow();
    const base = this.rows * this.k, stamp = this.rows + 1, cols = this.cols;
    const seen = this.seen, outIds = this.indices, outLps = this.logprobs; // locals: this loop is the loader's hot path
    for (let j = 0; j < len; j++) {
      if (idValid && !idValid(idStart + j)) throw new RangeError(`${where('ids', j)}: a null id (use -1 for padding)`);
      const id = ids[idStart + j]!;
      if (id === -1) { // padding: its stored value is ignored, kept as -Infinity
        outIds[base + j] = -1;
        outLps[base + j] = -Infinity;
        continue;
      }
      if (!(id >= 0 && id < cols)) throw new RangeError(`${where('ids', j)}: id ${id} is outside [0, vocab_size = ${cols}) and is not the padding -1`);
      if (seen[id] === stamp) throw new RangeError(`${where('ids', j)}: id ${id} appears twice in the row`);
      seen[id] = stamp;
      if (lpValid && !lpValid(lpStart + j)) throw new RangeError(`${where('logprobs', j)}: a null log-probability for id ${id}`);
      const lp = lps[lpStart + j]!;
      if (Number.isNaN(lp) || lp === Infinity) throw new RangeError(`${where('logprobs', j)}: ${lp} is not a log-probability`);
      outIds[base + j] = id;
      outLps[base + j] = lp;
    }
    this.indices.fill(-1, base + len, base + this.k);
    this.logprobs.fill(-Infinity, base + len, base + this.k);
    this.rows++;
  }

  /** The rows gathered, trimmed to `[rows, k]` (copies, so the spare capacity is freed). */
  finish(): { indices: Int32Array; logprobs: Float32Array; rows: number; k: number; cols: number } {
    const n = this.rows * this.k;
    if (n === this.indices.length) return { indices: this.indices, logprobs: this.logprobs, rows: this.rows, k: this.k, cols: this.cols };
    return { indices: this.indices.slice(0, n), logprobs: this.logprobs.slice(0, n), rows: this.rows, k: this.k, cols: this.cols };
  }
}
