/**
 * Reading top-k columns out of Apache Arrow record batches (what both the Arrow IPC reader and
 * parquet-wasm produce) into a TopKRowsBuilder. Two layouts:
 *   - one row per student row: `list<int>` ids and `list<float>` log-probabilities;
 *   - one row per sequence: `list<list<int>>` and `list<list<float>>`, flattened in order.
 * Any integer width is accepted for ids (pyarrow writes Python ints as int64) and float16, float32
 * or float64 for log-probabilities. apache-arrow and parquet-wasm are optional peer dependencies,
 * loaded on first use (docs/served-teacher.md says why).
 */
import type * as Arrow from 'apache-arrow';
import type * as ParquetWasm from 'parquet-wasm';
import type { TopKRowsBuilder, Where } from './topk-rows.js';

export type ArrowModule = typeof Arrow;
export type ParquetWasmModule = typeof ParquetWasm;

export async function optionalImport<T>(name: string, load: () => Promise<T>, purpose: string): Promise<T> {
  try {
    return await load();
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new Error(`${purpose} needs the optional package '${name}', which is not installed: run npm install ${name}`);
    }
    throw e;
  }
}

export function importArrow(purpose: string): Promise<ArrowModule> {
  return optionalImport('apache-arrow', () => import('apache-arrow'), purpose);
}

export function importParquetWasm(purpose: string): Promise<ParquetWasmModule> {
  return optionalImport('parquet-wasm', () => import('parquet-wasm'), purpose);
}

/** The start and end of list i of a List or FixedSizeList Data, and its element Data. */
interface Lists {
  start(i: number): number;
  end(i: number): number;
  valid(i: number): boolean;
  child: Arrow.Data;
}

function listsOf(arrow: ArrowModule, data: Arrow.Data, what: () => string): Lists {
  const t = data.type;
  if (arrow.DataType.isList(t)) {
    const off = data.valueOffsets as Int32Array; // already sliced to this Data by apache-arrow
    return { start: (i) => off[i]!, end: (i) => off[i + 1]!, valid: (i) => data.getValid(i), child: data.children[0]! };
  }
  if (arrow.DataType.isFixedSizeList(t)) {
    const size = (t as Arrow.FixedSizeList).listSize;
    return { start: (i) => i * size, end: (i) => (i + 1) * size, valid: (i) => data.getValid(i), child: data.children[0]! };
  }
  throw new TypeError(`${what()} must be a list column, got ${String(t)}`);
}

/** The element values of an integer or float Data as numbers (bigints and float16 converted). */
function numbersOf(arrow: ArrowModule, data: Arrow.Data, kind: 'int' | 'float', what: () => string): ArrayLike<number> {
  const t = data.type;
  const ok = kind === 'int' ? arrow.DataType.isInt(t) : arrow.DataType.isFloat(t);
  if (!ok) {
    const want = kind === 'int' ? 'integers (int8..int64)' : 'floats (float16, float32 or float64)';
    throw new TypeError(`${what()} must hold ${want}, got ${String(t)}`);
  }
  const values = data.values as ArrayLike<number> | BigInt64Array | BigUint64Array | Uint16Array;
  if (values instanceof BigInt64Array || values instanceof BigUint64Array) {
    const out = new Float64Array(values.length);
    for (let i = 0; i < values.length; i++) out[i] = Number(values[i]!);
    return out;
  }
  if (kind === 'float' && (t as Arrow.Float).precision === arrow.Precision.HALF) {
    const half = values as Uint16Array, out = new Float32Array(half.length), table = halfTable(arrow);
    for (let i = 0; i < half.length; i++) out[i] = table[half[i]!]!;
    return out;
  }
  return values as ArrayLike<number>;
}

let halfValues: Float32Array | undefined;
/** Every float16 bit pattern's value (256 KiB, made once): a lookup is faster than decoding each. */
function halfTable(arrow: ArrowModule): Float32Array {
  if (!halfValues) {
    halfValues = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfValues[h] = arrow.util.uint16ToFloat64(h);
  }
  return halfValues;
}

/** Element validity, or undefined when the Data has no nulls (the common case, checked once). */
function validity(data: Arrow.Data): ((i: number) => boolean) | undefined {
  return data.nullCount > 0 ? (i) => data.getValid(i) : undefined;
}

export interface ColumnNames {
  ids: string;
  logprobs: string;
}

/** Whether the ids column holds lists of lists (one row per sequence). */
export function isSequenceLayout(arrow: ArrowModule, schema: Arrow.Schema, names: ColumnNames, file: string): boolean {
  const available = schema.fields.map((f) => `'${f.name}'`).join(', ');
  const fields = [names.ids, names.logprobs].map((n, i) => {
    const f = schema.fields.find((x) => x.name === n);
    if (!f) {
      const option = i === 0 ? 'idsColumn' : 'logprobsColumn';
      throw new RangeError(`${file} has no column '${n}' (the ${option} option); its columns are ${available}`);
    }
    return f;
  });
  const nested = fields.map((f) => {
    const inner = (arrow.DataType.isList(f.type) || arrow.DataType.isFixedSizeList(f.type)) ? (f.type as Arrow.List).children[0]!.type : undefined;
    if (!inner) throw new TypeError(`${file}: column '${f.name}' must be a list column, got ${String(f.type)}`);
    return arrow.DataType.isList(inner) || arrow.DataType.isFixedSizeList(inner);
  });
  if (nested[0] !== nested[1]) {
    throw new TypeError(`${file}: columns '${names.ids}' and '${names.logprobs}' must both be lists (one row per student row) or both lists of lists (one row per sequence), got ${String(fields[0]!.type)} and ${String(fields[1]!.type)}`);
  }
  return nested[0]!;
}

/**
 * Appends the rows of one record batch; `fileRow` is the index of its first row in the file.
 * Returns the number of file rows consumed.
 */
export function appendBatch(
  arrow: ArrowModule, batch: Arrow.RecordBatch, names: ColumnNames, sequences: boolean,
  fileRow: number, builder: TopKRowsBuilder, file: string,
): number {
  // a record batch's column is one contiguous Data
  const col = (name: string): Arrow.Data => {
    const v = batch.getChild(name);
    if (!v || v.data.length !== 1) throw new RangeError(`${file} has no column '${name}' in the batch at row ${fileRow}`);
    return v.data[0]!;
  };
  const colName = (c: 'ids' | 'logprobs'): string => `${file}: column '${c === 'ids' ? names.ids : names.logprobs}'`;
  // the location of the row being added, turned into words only for an error message
  let atRow = 0, atPos = -1, atStudent = 0;
  const where: Where = (c, entry) => {
    const at = atPos < 0 ? `row ${atRow}` : `row ${atRow} (a sequence), position ${atPos}`;
    const student = sequences && atPos < 0 ? '' : ` (student row ${atStudent})`;
    return `${colName(c)} ${at}${student}${entry === undefined ? '' : `, entry ${entry}`}`;
  };

  const idOuter = listsOf(arrow, col(names.ids), () => colName('ids'));
  const lpOuter = listsOf(arrow, col(names.logprobs), () => colName('logprobs'));
  // the lists whose elements are the numbers: the columns' own, or those inside each sequence
  const idLists = sequences ? listsOf(arrow, idOuter.child, () => colName('ids')) : idOuter;
  const lpLists = sequences ? listsOf(arrow, lpOuter.child, () => colName('logprobs')) : lpOuter;
  const idVals = numbersOf(arrow, idLists.child, 'int', () => colName('ids'));
  const lpVals = numbersOf(arrow, lpLists.child, 'float', () => colName('logprobs'));
  const idValid = validity(idLists.child), lpValid = validity(lpLists.child);

  // list i of ids and list j of log-probabilities: one student row
  const addRow = (i: number, j: number): void => {
    const iv = idLists.valid(i), lv = lpLists.valid(j);
    if (!iv || !lv) {
      if (iv !== lv) throw new RangeError(`${where(iv ? 'logprobs' : 'ids')}: null, while the other column is not`);
      builder.addEmptyRow();
      return;
    }
    const is = idLists.start(i), len = idLists.end(i) - is;
    const ls = lpLists.start(j), llen = lpLists.end(j) - ls;
    if (len !== llen) throw new RangeError(`${where('logprobs')}: ${llen} log-probabilities for ${len} ids`);
    builder.addRow(idVals, is, lpVals, ls, len, where, idValid, lpValid);
  };

  for (let r = 0; r < batch.numRows; r++) {
    atRow = fileRow + r;
    atPos = -1;
    atStudent = builder.rows;
    if (!sequences) {
      addRow(r, r);
      continue;
    }
    if (!idOuter.valid(r) || !lpOuter.valid(r)) throw new RangeError(`${where(idOuter.valid(r) ? 'logprobs' : 'ids')}: a null sequence`);
    const is = idOuter.start(r), n = idOuter.end(r) - is;
    const ls = lpOuter.start(r), ln = lpOuter.end(r) - ls;
    if (n !== ln) throw new RangeError(`${where('logprobs')}: ${ln} positions, while '${names.ids}' has ${n}`);
    for (let p = 0; p < n; p++) {
      atPos = p;
      atStudent = builder.rows;
      addRow(is + p, ls + p);
    }
  }
  return batch.numRows;
}
