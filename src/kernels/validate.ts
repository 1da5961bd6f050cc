/**
 * Argument checks for every kernel entry point, with the same messages as the addon's
 * (native/addon/args.cpp and native/core/checks.h): wrong types throw TypeError, wrong values,
 * lengths and ranges throw RangeError, and each message names the argument, what was expected and
 * what came. Checks that must look at every element (NaN, +Infinity) are made by the backend
 * that reads the data anyway.
 */
import type { Divergence, Reduction } from './types.js';
import { DISTILL_ARG_NAMES } from './native.js';

export function describe(v: unknown): string {
  if (v === undefined) return 'undefined';
  if (v === null) return 'null';
  if (typeof v === 'number') return `number ${String(v)}`;
  if (typeof v === 'string') return `string '${v}'`;
  if (typeof v === 'boolean') return `boolean ${String(v)}`;
  if (typeof v === 'function') return 'function';
  if (Array.isArray(v)) return 'Array';
  if (ArrayBuffer.isView(v)) return (v as object).constructor.name;
  if (v instanceof ArrayBuffer) return 'ArrayBuffer';
  if (typeof v === 'object') return 'object';
  return typeof v;
}

export function requireObject(v: unknown, name: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || ArrayBuffer.isView(v)) {
    throw new TypeError(`${name} must be an object, got ${describe(v)}`);
  }
  return v as Record<string, unknown>;
}

/** The second argument of the async kernel functions (AsyncCallOptions), checked; undefined is { borrowInputs: false }. */
export function checkAsyncCallOptions(v: unknown, where: string): { borrowInputs: boolean } {
  if (v === undefined) return { borrowInputs: false };
  const o = requireObject(v, `${where}: call options`);
  checkKnownKeys(o, ['borrowInputs'], where);
  return { borrowInputs: optionalBool(o, 'borrowInputs', false) };
}

export function isDetached(a: ArrayBufferView): boolean {
  const buf = a.buffer as ArrayBuffer & { detached?: boolean };
  // `detached` exists from Node 22; before that a detached buffer reports byteLength 0
  if (typeof buf.detached === 'boolean') return buf.detached;
  return a.byteLength === 0 && isZeroLengthDetached(buf);
}

function isZeroLengthDetached(buf: ArrayBuffer): boolean {
  try {
    // slicing a detached buffer throws; a genuine empty buffer slices fine
    buf.slice(0, 0);
    return false;
  } catch {
    return true;
  }
}

export function requireF32(v: unknown, name: string): Float32Array {
  if (!(v instanceof Float32Array)) throw new TypeError(`${name} must be a Float32Array, got ${describe(v)}`);
  if (isDetached(v)) {
    throw new TypeError(`${name} must be a usable Float32Array, got one whose buffer was detached (transferred)`);
  }
  return v;
}

export function optionalF32(v: unknown, name: string): Float32Array | undefined {
  return v === undefined || v === null ? undefined : requireF32(v, name);
}

export function requireDim(v: unknown, name: string): number {
  if (typeof v !== 'number') throw new TypeError(`${name} must be a number, got ${describe(v)}`);
  if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${name} must be an integer >= 1, got ${String(v)}`);
  return v;
}

export function checkLength(name: string, have: number, want: number, atLeast: boolean, what = 'rows * cols'): void {
  if (atLeast ? have < want : have !== want) {
    throw new RangeError(`${name} must have ${atLeast ? 'at least ' : ''}${what} = ${want} elements, got ${have}`);
  }
}

export function optionalNumber(o: Record<string, unknown>, name: string, fallback: number): number {
  const v = o[name];
  if (v === undefined) return fallback;
  if (typeof v !== 'number') throw new TypeError(`${name} must be a number, got ${describe(v)}`);
  return v;
}

export function optionalBool(o: Record<string, unknown>, name: string, fallback: boolean): boolean {
  const v = o[name];
  if (v === undefined) return fallback;
  if (typeof v !== 'boolean') throw new TypeError(`${name} must be a boolean, got ${describe(v)}`);
  return v;
}

export function optionalChoice<T extends string>(o: Record<string, unknown>, name: string, choices: readonly T[], fallback: T): T {
  const v = o[name];
  if (v === undefined) return fallback;
  const list = choices.map((c) => `'${c}'`).join(', ');
  if (typeof v !== 'string') throw new TypeError(`${name} must be one of ${list}, got ${describe(v)}`);
  if (!(choices as readonly string[]).includes(v)) throw new RangeError(`${name} must be one of ${list}, got '${v}'`);
  return v as T;
}

/** float32's smallest normal number and its largest finite one. */
export const FLOAT32_MIN_NORMAL = 2 ** -126, FLOAT32_MAX = (2 - 2 ** -23) * 2 ** 127;
/** The smallest temperature: float32's smallest normal number, so that 1/T is finite in float32. */
export const MIN_TEMPERATURE = FLOAT32_MIN_NORMAL;
/** The largest temperature (2^126), so that 1/T is a normal float32 rather than 0. */
export const MAX_TEMPERATURE = 2 ** 126;

export function checkTemperature(t: number): void {
  if (!Number.isFinite(t) || t <= 0) throw new RangeError(`temperature must be a finite number > 0, got ${String(t)}`);
  // below it the kernels' float32 1/T is Infinity, and a row whose maximum is 0 became NaN
  // (0 * Infinity) instead of an error (fuzzing finding F3, docs/reliability.md)
  if (t < MIN_TEMPERATURE) {
    throw new RangeError(`temperature must be at least ${String(MIN_TEMPERATURE)} (float32's smallest normal number, so that 1/temperature is finite in float32), got ${String(t)}`);
  }
  // above it float32's 1/T underflows (to 0 beyond about 1e45), and a row of -Infinity logits
  // passed as 0 * -Infinity = NaN instead of an error (fuzzing finding F13, docs/reliability.md)
  if (t > MAX_TEMPERATURE) {
    throw new RangeError(`temperature must be at most ${String(MAX_TEMPERATURE)} (so that 1/temperature is a normal float32), got ${String(t)}`);
  }
}

/** The distillation losses' stated accuracy holds up to this temperature (docs/accuracy.md). */
export const MAX_LOSS_TEMPERATURE = 1e4;

export function checkLossTemperature(t: number): void {
  // the loss's own bound first: it is the one a caller meets, below the general 2^126
  if (Number.isFinite(t) && t > MAX_LOSS_TEMPERATURE) {
    throw new RangeError(`temperature must be at most 10000 for the distillation loss (its stated accuracy holds in (0, 10000]), got ${String(t)}`);
  }
  checkTemperature(t);
}

export function checkUnit(name: string, x: number, openRight = false): void {
  const ok = Number.isFinite(x) && x >= 0 && (openRight ? x < 1 : x <= 1);
  if (!ok) throw new RangeError(`${name} must be in [0, 1${openRight ? ')' : ']'}, got ${String(x)}`);
}

export function requireInt32(o: Record<string, unknown>, name: string, fallback: number): number {
  const v = optionalNumber(o, name, fallback);
  if (!Number.isInteger(v) || v < -2147483648 || v > 2147483647) {
    throw new RangeError(`${name} must be a 32-bit integer, got ${String(v)}`);
  }
  return v;
}

/** Labels as an Int32Array (copied from other array-likes after checking each is an integer). */
export function normalizeLabels(v: unknown, rows: number): Int32Array | undefined {
  if (v === undefined || v === null) return undefined;
  let labels: Int32Array;
  if (v instanceof Int32Array) {
    if (isDetached(v)) throw new TypeError('labels must be a usable Int32Array, got one whose buffer was detached (transferred)');
    labels = v;
  } else if (Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView))) {
    const a = v as ArrayLike<unknown>;
    labels = new Int32Array(a.length);
    for (let i = 0; i < a.length; i++) {
      const x = a[i];
      if (typeof x !== 'number' && typeof x !== 'bigint') throw new TypeError(`labels[${i}] must be a number, got ${describe(x)}`);
      const n = Number(x);
      if (!Number.isInteger(n)) throw new RangeError(`labels[${i}] must be an integer, got ${String(n)}`);
      labels[i] = n;
      if (labels[i] !== n) throw new RangeError(`labels[${i}] must be a 32-bit integer, got ${String(n)}`);
    }
  } else {
    throw new TypeError(`labels must be an Int32Array or an array of integers, got ${describe(v)}`);
  }
  checkLength('labels', labels.length, rows, false, 'rows');
  // Each label's range is checked by the backend, as the per-element data checks are: the addon
  // does it anyway (it can be called directly), and a second pass here cost half a microsecond of
  // a 256-row call. The reference backend calls labelRangeError.
  return labels;
}

/** The first label outside [0, cols) that is not ignoreIndex, described as the addon does; undefined if none. */
export function labelRangeError(labels: Int32Array, rows: number, cols: number, ignoreIndex: number): string | undefined {
  for (let r = 0; r < rows; r++) {
    const y = labels[r]!;
    if (y !== ignoreIndex && (y < 0 || y >= cols)) return `labels[${r}] must be an integer in [0, ${cols}) or ignoreIndex (${ignoreIndex}), got ${y}`;
  }
  return undefined;
}

export function checkApart(outName: string, out: ArrayBufferView, inName: string, input: ArrayBufferView): void {
  if (out.buffer !== input.buffer) return;
  const o0 = out.byteOffset, o1 = o0 + out.byteLength, i0 = input.byteOffset, i1 = i0 + input.byteLength;
  if (o0 < i1 && i0 < o1) throw new RangeError(`${outName} must not share memory with ${inName}`);
}

/**
 * Every output the call writes must be apart from every input it reads (the kernels read labels and
 * per-row gradOutput after writing gradients) and from the other outputs. `outs` lists only the
 * outputs that will be written; absent entries are skipped.
 */
export function checkAllApart(outs: [string, ArrayBufferView | undefined][], ins: [string, ArrayBufferView | undefined][]): void {
  for (let i = 0; i < outs.length; i++) {
    const [oname, o] = outs[i]!;
    if (!o) continue;
    for (const [iname, x] of ins) if (x) checkApart(oname, o, iname, x);
    for (let j = 0; j < i; j++) {
      const [pname, prev] = outs[j]!;
      if (prev) checkApart(oname, o, pname, prev);
    }
  }
}

export const REDUCTIONS = ['mean', 'sum', 'none'] as const;
export const DIVERGENCES = ['kl', 'reverse-kl', 'jsd'] as const;

/** Fully checked, defaulted distillation-loss arguments. */
export interface DistillArgs extends LossOptions {
  student: Float32Array;
  teacher: Float32Array;
  rows: number;
  cols: number;
  labels: Int32Array | undefined;
  gradOutput: number;
  gradOutputRows: Float32Array | undefined;
  computeStudentGrad: boolean;
  computeTeacherGrad: boolean;
  out: { gradStudent?: Float32Array; gradTeacher?: Float32Array; losses?: Float32Array };
}

/** A loss's `out` option: an object of output arrays (not an array or typed array itself). */
export function requireOutObject(v: unknown): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || ArrayBuffer.isView(v)) {
    throw new TypeError(`out must be an object such as { gradStudent: Float32Array }, got ${describe(v)}`);
  }
  return v as Record<string, unknown>;
}

/** The upstream gradient: a finite number, or with reduction 'none' a Float32Array of one finite value per row. */
export function checkGradOutput(g: unknown, reduction: Reduction, rows: number): { gradOutput: number; gradOutputRows: Float32Array | undefined } {
  let gradOutput = 1;
  let gradOutputRows: Float32Array | undefined;
  if (reduction === 'none' && g !== undefined && typeof g !== 'number') {
    gradOutputRows = requireF32(g, 'gradOutput');
    checkLength('gradOutput', gradOutputRows.length, rows, false, 'rows');
    for (let r = 0; r < rows; r++) {
      if (!Number.isFinite(gradOutputRows[r])) {
        throw new RangeError(`gradOutput[${r}] must be a finite number, got ${String(gradOutputRows[r])}`);
      }
    }
  } else if (g !== undefined) {
    if (typeof g !== 'number') {
      throw new TypeError(`gradOutput must be a number (or a Float32Array of rows elements with reduction 'none'), got ${describe(g)}`);
    }
    gradOutput = g;
  }
  if (!Number.isFinite(gradOutput)) throw new RangeError(`gradOutput must be a finite number, got ${String(gradOutput)}`);
  // The kernels scale in float32: beyond its range a zero gradient became NaN (0 * Infinity), and
  // below its normal range an infinite one became 0 (fuzzing findings F7, F8, docs/reliability.md).
  const size = Math.abs(gradOutput);
  if (size !== 0 && (size < FLOAT32_MIN_NORMAL || size > FLOAT32_MAX)) {
    throw new RangeError(`gradOutput must be 0 or of a magnitude in [${String(FLOAT32_MIN_NORMAL)}, ${String(FLOAT32_MAX)}] (a normal float32), got ${String(gradOutput)}`);
  }
  return { gradOutput, gradOutputRows };
}

/** The scalar options every distillation loss shares (dense, top-k, fused head), defaulted. */
export interface LossOptions {
  temperature: number;
  alpha: number;
  scaleByTemperatureSquared: boolean;
  labelSmoothing: number;
  ignoreIndex: number;
  reduction: Reduction;
  divergence: Divergence;
  beta: number;
}

/** Reads and type-checks the shared loss options (their ranges: checkLossOptionRanges). */
export function readLossOptions(o: Record<string, unknown>): LossOptions {
  return {
    temperature: optionalNumber(o, 'temperature', 1),
    alpha: optionalNumber(o, 'alpha', 0.5),
    scaleByTemperatureSquared: optionalBool(o, 'scaleByTemperatureSquared', true),
    labelSmoothing: optionalNumber(o, 'labelSmoothing', 0),
    ignoreIndex: requireInt32(o, 'ignoreIndex', -100),
    reduction: optionalChoice(o, 'reduction', REDUCTIONS, 'mean'),
    divergence: optionalChoice(o, 'divergence', DIVERGENCES, 'kl'),
    beta: optionalNumber(o, 'beta', 0.5),
  };
}

/** The ranges of the shared loss options (after every option's type was checked). */
export function checkLossOptionRanges(l: LossOptions): void {
  checkLossTemperature(l.temperature);
  checkUnit('alpha', l.alpha);
  checkUnit('labelSmoothing', l.labelSmoothing, true);
  checkUnit('beta', l.beta);
}

/** `where` names the public function in the unknown-option error. */
export function checkDistillArgs(options: unknown, where = 'distillationLoss'): DistillArgs {
  const o = requireObject(options, 'options');
  checkKnownKeys(o, DISTILL_ARG_NAMES, where);
  const rows = requireDim(o.rows, 'rows');
  const cols = requireDim(o.cols, 'cols');
  const student = requireF32(o.student, 'student');
  const teacher = requireF32(o.teacher, 'teacher');
  checkLength('student', student.length, rows * cols, false);
  checkLength('teacher', teacher.length, rows * cols, false);
  const loss = readLossOptions(o);
  const { reduction } = loss;
  const computeStudentGrad = optionalBool(o, 'computeStudentGrad', true);
  const computeTeacherGrad = optionalBool(o, 'computeTeacherGrad', false);
  checkLossOptionRanges(loss);
  const labels = normalizeLabels(o.labels, rows);
  const { gradOutput, gradOutputRows } = checkGradOutput(o.gradOutput, reduction, rows);

  const out: DistillArgs['out'] = {};
  if (o.out !== undefined) {
    const ob = requireOutObject(o.out);
    const gs = optionalF32(ob.gradStudent, 'out.gradStudent');
    const gt = optionalF32(ob.gradTeacher, 'out.gradTeacher');
    const ls = optionalF32(ob.losses, 'out.losses');
    if (gs) checkLength('out.gradStudent', gs.length, rows * cols, true);
    if (gt) checkLength('out.gradTeacher', gt.length, rows * cols, true);
    if (ls) checkLength('out.losses', ls.length, rows, true, 'rows');
    checkAllApart(
      [['out.gradStudent', computeStudentGrad ? gs : undefined], ['out.gradTeacher', computeTeacherGrad ? gt : undefined],
        ['out.losses', reduction === 'none' ? ls : undefined]],
      [['student', student], ['teacher', teacher], ['labels', labels], ['gradOutput', gradOutputRows]]);
    if (gs) out.gradStudent = gs;
    if (gt) out.gradTeacher = gt;
    if (ls) out.losses = ls;
  }
  return { student, teacher, rows, cols, labels, ...loss, gradOutput, gradOutputRows, computeStudentGrad, computeTeacherGrad, out };
}

export interface SoftmaxArgs {
  x: Float32Array;
  dy: Float32Array | undefined;
  rows: number;
  cols: number;
  temperature: number;
  out: Float32Array | undefined;
}

const SOFTMAX_KEYS = ['logits', 'rows', 'cols', 'temperature', 'out'] as const;
const SOFTMAX_BACKWARD_KEYS = ['output', 'gradOutput', 'rows', 'cols', 'temperature', 'out'] as const;

/**
 * Checks softmax forward (`backward = false`: logits) or backward (output, gradOutput) arguments;
 * `where` names the public function in the unknown-option error.
 */
export function checkSoftmaxArgs(options: unknown, backward: boolean, where = backward ? 'softmaxWithTemperatureBackward' : 'softmaxWithTemperature'): SoftmaxArgs {
  const o = requireObject(options, 'options');
  checkKnownKeys(o, backward ? SOFTMAX_BACKWARD_KEYS : SOFTMAX_KEYS, where);
  const rows = requireDim(o.rows, 'rows');
  const cols = requireDim(o.cols, 'cols');
  const xName = backward ? 'output' : 'logits';
  const x = requireF32(o[xName], xName);
  checkLength(xName, x.length, rows * cols, false);
  let dy: Float32Array | undefined;
  if (backward) {
    dy = requireF32(o.gradOutput, 'gradOutput');
    checkLength('gradOutput', dy.length, rows * cols, false);
  }
  const temperature = optionalNumber(o, 'temperature', 1);
  checkTemperature(temperature);
  const out = optionalF32(o.out, 'out');
  if (out) {
    checkLength('out', out.length, rows * cols, true);
    checkApart('out', out, xName, x);
    if (dy) checkApart('out', out, 'gradOutput', dy);
  }
  return { x, dy, rows, cols, temperature, out };
}

/** The first NaN or +Infinity of `x`, described as the addon does; undefined if none. */
export function findBadValue(name: string, x: Float32Array, cols: number, n = x.length): string | undefined {
  for (let i = 0; i < n; i++) {
    const v = x[i]!;
    if (Number.isNaN(v) || v === Infinity) {
      const what = Number.isNaN(v) ? 'NaN' : '+Infinity';
      return `${name} must not contain ${what}, got ${Number.isNaN(v) ? 'NaN' : 'Infinity'} at index ${i} (row ${Math.floor(i / cols)}, column ${i % cols})`;
    }
  }
  return undefined;
}

/** Edit distance between two short strings (option names): insertions, deletions, substitutions. */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/**
 * Refuses option keys a function does not know, so a misspelt option (`temprature`) is a TypeError
 * instead of being ignored. The message names the closest known key when one is near enough
 * (edit distance at most a third of its length, and at least 2) to be a likely typo.
 */
export function checkKnownKeys(o: Record<string, unknown>, known: readonly string[], where: string): void {
  for (const key of Object.keys(o)) {
    // a key set to undefined is an absent option (as from spreading optional fields), whatever its name
    if (known.includes(key) || o[key] === undefined) continue;
    let best = '';
    let bestD = Infinity;
    for (const k of known) {
      const d = editDistance(key.toLowerCase(), k.toLowerCase());
      if (d < bestD) { bestD = d; best = k; }
    }
    const hint = bestD <= Math.max(2, Math.floor(best.length / 3)) ? `; did you mean '${best}'?` : '';
    throw new TypeError(`${where}: unknown option '${key}'${hint} (known options: ${known.join(', ')})`);
  }
}
