/**
 * The reference backend: every kernel in plain TypeScript, computed in float64 and written out as
 * float32. It is the contract of docs/design.md in code — short and literal, materialising p, q and r —
 * and serves as the test oracle and as the fallback when the addon is unavailable.
 */
import { findBadValue, labelRangeError, type DistillArgs, type SoftmaxArgs } from './validate.js';
import type { DistillationLossResult } from './types.js';

/**
 * log(sum(exp(z))) of z[0..n), stably; -Infinity when every z is -Infinity. Written as
 * max + log1p(sum of the other terms): near one-hot rows, where the other terms are below 2^-52,
 * log(1 + rest) would lose them and, with them, every log-probability's difference.
 */
export function logSumExp(z: Float64Array): number {
  const [m, l] = maxAndLog1pRest(z);
  return m + l;
}

/** The row maximum m and log1p(sum of exp(z - m) over every other entry); m = -Infinity if none. */
function maxAndLog1pRest(z: Float64Array): [number, number] {
  let m = -Infinity, at = -1;
  for (let i = 0; i < z.length; i++) if (z[i]! > m) { m = z[i]!; at = i; }
  if (m === -Infinity) return [m, 0];
  let rest = 0;
  for (let i = 0; i < z.length; i++) if (i !== at) rest += Math.exp(z[i]! - m);
  return [m, Math.log1p(rest)];
}

/** log-softmax as (z - max) - log1p(rest): the maximum's entry is exactly -log1p(rest), however small. */
function logSoftmax(z: Float64Array): Float64Array {
  const [m, l] = maxAndLog1pRest(z);
  return z.map((v) => (v - m) - l);
}

/**
 * a f(x) with f(x) = 1 + e^x (x - 1) >= 0 and b = a e^x: by its series where the two terms of f
 * cancel (|x| < 1/2), else as a + b (x - 1), which stays finite when a underflowed to 0.
 */
function weightedF(a: number, b: number, x: number): number {
  if (x === -Infinity) return a;  // f(-inf) = 1
  if (Math.abs(x) >= 0.5) return a + (b > 0 ? b * (x - 1) : 0);
  let term = x, sum = 0;  // sum over n >= 2 of (n - 1) x^n / n!
  for (let n = 2; n < 26; n++) {
    term *= x / n;
    sum += (n - 1) * term;
  }
  return a * sum;
}

/**
 * One term of KL(b || a) as a f(x), x = log b - log a: the sum over a row equals sum b x (both sum
 * to 1) but keeps its precision when a ~ b, where the terms of sum b x cancel. The rules of the
 * contract: 0 where a and b are both 0, and Infinity where b > 0 and a = 0, decided by the
 * log-probabilities (b may have underflowed).
 */
function klTermF(a: number, b: number, la: number, lb: number): number {
  if (lb === -Infinity) return a;
  if (la === -Infinity) return Infinity;
  return weightedF(a, b, lb - la);
}

export function rowScaled(x: Float32Array, r: number, cols: number, invT: number): Float64Array {
  const z = new Float64Array(cols);
  for (let c = 0; c < cols; c++) z[c] = x[r * cols + c]! * invT;
  return z;
}

export function noFinite(name: string, r: number): RangeError {
  return new RangeError(`${name} row ${r} must have at least one finite logit, got all -Infinity`);
}

/**
 * The range rule of every backend: each finite logit / T (the float32 product x * float32(1/T), as
 * the native kernels form it) must be below 2^127 in magnitude, half of float32's range, so that
 * z - max z stays finite too. Beyond float32 at the row maximum the row would be NaN; elsewhere a
 * finite log-probability became -Infinity and a finite loss Infinity (fuzzing findings F9, F12).
 */
export const HALF_RANGE = 2 ** 127;

/** Whether a finite value of row r breaks the range rule at this temperature. */
export function overflowsAtTemperature(x: Float32Array, r: number, cols: number, temperature: number): boolean {
  return scaledOverflow(x, r * cols, (r + 1) * cols, temperature);
}

/** Whether some finite x[i], i in [from, to), breaks the range rule at this temperature. */
export function scaledOverflow(x: ArrayLike<number>, from: number, to: number, temperature: number): boolean {
  const invT = Math.fround(1 / temperature);
  for (let i = from; i < to; i++) {
    const v = x[i]!;
    if (Number.isFinite(v) && !(Math.abs(Math.fround(v * invT)) < HALF_RANGE)) return true;
  }
  return false;
}

export function overflow(name: string, r: number, temperature: number): RangeError {
  return new RangeError(
    `temperature must be large enough that ${name === 'logits' ? name : `${name} logits`} / temperature stay below 2^127 = ${String(HALF_RANGE)} in magnitude (half of float32's range), ` +
      `got ${String(temperature)} with ${name} row ${r}`,
  );
}

export function softmaxForward(a: SoftmaxArgs, log: boolean): Float32Array {
  const { x, rows, cols } = a;
  const bad = findBadValue('logits', x, cols);
  if (bad) throw new RangeError(bad);
  for (let r = 0; r < rows; r++) {  // every row is checked before anything is written
    if (overflowsAtTemperature(x, r, cols, a.temperature)) throw overflow('logits', r, a.temperature);
    if (logSumExp(rowScaled(x, r, cols, 1)) === -Infinity) throw noFinite('logits', r);
  }
  const y = a.out ?? new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const z = rowScaled(x, r, cols, 1 / a.temperature);
    const lse = logSumExp(z);
    for (let c = 0; c < cols; c++) y[r * cols + c] = log ? z[c]! - lse : Math.exp(z[c]! - lse);
  }
  return y;
}

export function softmaxBackward(a: SoftmaxArgs, log: boolean): Float32Array {
  const { x: y, rows, cols } = a;
  const dy = a.dy!;
  const bad = findBadValue('output', y, cols) ?? findBadValue('gradOutput', dy, cols);
  if (bad) throw new RangeError(bad);
  const dx = a.out ?? new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let acc = 0;  // softmax: sum(dy * y); log-softmax: sum(dy)
    for (let c = 0; c < cols; c++) acc += log ? dy[o + c]! : dy[o + c]! * y[o + c]!;
    for (let c = 0; c < cols; c++) {
      const g = log ? dy[o + c]! - Math.exp(y[o + c]!) * acc : y[o + c]! * (dy[o + c]! - acc);
      dx[o + c] = g / a.temperature;
    }
  }
  return dx;
}

function firstBadIndex(x: Float32Array): number {
  for (let i = 0; i < x.length; i++) if (Number.isNaN(x[i]) || x[i] === Infinity) return i;
  return -1;
}

/** p * v where p > 0, else 0 (so that 0 * log 0 = 0). */
const weighted = (p: number, v: number): number => (p > 0 ? p * v : 0);

export function distillationLoss(a: DistillArgs): DistillationLossResult {
  const { student: s, teacher: t, rows, cols, labels, temperature: T } = a;
  const badLabel = labels ? labelRangeError(labels, rows, cols, a.ignoreIndex) : undefined;
  if (badLabel) throw new RangeError(badLabel);
  // Data checks, reported for the first offending row as the native kernels do.
  const badS = firstBadIndex(s), badT = firstBadIndex(t);
  const rowS = badS < 0 ? rows : Math.floor(badS / cols), rowT = badT < 0 ? rows : Math.floor(badT / cols);
  for (let r = 0; r < rows; r++) {
    if (r === rowS) throw new RangeError(findBadValue('student', s, cols)!);
    if (r === rowT) throw new RangeError(findBadValue('teacher', t, cols)!);
    if (labels && labels[r] === a.ignoreIndex) continue;
    if (overflowsAtTemperature(s, r, cols, T)) throw overflow('student', r, T);
    if (overflowsAtTemperature(t, r, cols, T)) throw overflow('teacher', r, T);
    if (logSumExp(rowScaled(s, r, cols, 1)) === -Infinity) throw noFinite('student', r);
    if (logSumExp(rowScaled(t, r, cols, 1)) === -Infinity) throw noFinite('teacher', r);
  }

  const alpha = labels ? a.alpha : 1;  // without labels the hard term is absent
  const w = alpha * (a.scaleByTemperatureSquared ? T * T : 1);
  const eps = labels ? a.labelSmoothing : 0;
  const beta = a.beta;
  let valid = rows;
  if (labels) valid = labels.reduce((n, y) => n + (y === a.ignoreIndex ? 0 : 1), 0);

  const gradS = a.computeStudentGrad ? a.out.gradStudent ?? new Float32Array(rows * cols) : undefined;
  const gradT = a.computeTeacherGrad ? a.out.gradTeacher ?? new Float32Array(rows * cols) : undefined;
  const losses = a.reduction === 'none' ? a.out.losses ?? new Float32Array(rows) : undefined;
  let total = 0;

  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const ignored = labels !== undefined && labels[r] === a.ignoreIndex;
    const hard = labels !== undefined && !ignored && alpha < 1;
    if (ignored) {
      gradS?.fill(0, o, o + cols);
      gradT?.fill(0, o, o + cols);
      if (losses) losses[r] = 0;
      continue;
    }
    const zs = rowScaled(s, r, cols, 1 / T), zt = rowScaled(t, r, cols, 1 / T);
    const lq = logSoftmax(zs), lp = logSoftmax(zt);
    const q = lq.map(Math.exp), p = lp.map(Math.exp);
    const d = lp.map((v, c) => v - lq[c]!);  // log p - log q

    // The divergence (each KL as sum a f(x), see klTermF), and its gradients with respect to s/T
    // and t/T (times T: d/ds = (d/dz) / T). q - p = -q expm1(log p - log q) keeps its precision
    // where q and p are close (both near 1 on near one-hot rows, both near 1/C at large T).
    const diff = (a: number, b: number, x: number): number => (Math.abs(x) < 0.5 ? -a * Math.expm1(x) : a - b);
    const dS = new Float64Array(cols), dT = new Float64Array(cols);
    let div: number;
    if (a.divergence === 'kl') {
      div = 0;
      for (let c = 0; c < cols; c++) div += klTermF(q[c]!, p[c]!, lq[c]!, lp[c]!);
      const k = Number.isFinite(div) ? div : 0;  // an infinite divergence leaves the partial gradient
      for (let c = 0; c < cols; c++) {
        dS[c] = diff(q[c]!, p[c]!, d[c]!);
        dT[c] = weighted(p[c]!, d[c]!) - k * p[c]!;
      }
    } else if (a.divergence === 'reverse-kl') {
      div = 0;
      for (let c = 0; c < cols; c++) div += klTermF(p[c]!, q[c]!, lp[c]!, lq[c]!);
      const k = Number.isFinite(div) ? div : 0;
      for (let c = 0; c < cols; c++) {
        dS[c] = weighted(q[c]!, -d[c]!) - k * q[c]!;
        dT[c] = diff(p[c]!, q[c]!, -d[c]!);
      }
    } else {
      // log p - log m and log q - log m from d: -log1p(w expm1(-|d|)) on the side whose weight w
      // multiplies the smaller probability (fixed at beta = 0 or 1, where that log-ratio is 0)
      const xpm = new Float64Array(cols), xqm = new Float64Array(cols), m = new Float64Array(cols);
      for (let c = 0; c < cols; c++) {
        const dc = d[c]!;
        const pos = beta >= 1 ? true : beta <= 0 ? false : dc > 0;
        const L = -Math.log1p((pos ? 1 - beta : beta) * Math.expm1(-Math.abs(dc)));
        xpm[c] = pos ? L : L + dc;
        xqm[c] = pos ? L - dc : L;
        m[c] = beta * p[c]! + (1 - beta) * q[c]!;
      }
      let kpm = 0, kqm = 0;
      for (let c = 0; c < cols; c++) {
        if (m[c]! === 0) continue;  // p = q = 0
        kpm += weightedF(m[c]!, p[c]!, xpm[c]!);
        kqm += weightedF(m[c]!, q[c]!, xqm[c]!);
      }
      div = (beta > 0 ? beta * kpm : 0) + (beta < 1 ? (1 - beta) * kqm : 0);
      const kp = Number.isFinite(kpm) ? kpm : 0, kq = Number.isFinite(kqm) ? kqm : 0;
      for (let c = 0; c < cols; c++) {
        dS[c] = beta < 1 ? (1 - beta) * (weighted(q[c]!, xqm[c]!) - kq * q[c]!) : 0;
        dT[c] = beta > 0 ? beta * (weighted(p[c]!, xpm[c]!) - kp * p[c]!) : 0;
      }
    }

    let ce = 0;
    let rProb: Float64Array | undefined;
    const y = labels ? labels[r]! : -1;
    if (hard) {
      const zr = rowScaled(s, r, cols, 1);
      const lseR = logSumExp(zr);
      rProb = zr.map((z) => Math.exp(z - lseR));
      ce = (1 - eps) * (lseR - zr[y]!);
      if (eps > 0) ce += eps * (lseR - zr.reduce((acc, z) => acc + z, 0) / cols);
    }
    // with alpha = 0 the soft term is absent, even where the divergence is infinite (0 * Infinity
    // was NaN: fuzzing finding F10, docs/reliability.md)
    const loss = (w > 0 ? w * div : 0) + (hard ? (1 - alpha) * ce : 0);
    total += loss;
    if (losses) losses[r] = loss;

    const g = a.reduction === 'mean' ? (valid > 0 ? a.gradOutput / valid : 0)
      : a.reduction === 'sum' ? a.gradOutput
      : (a.gradOutputRows ? a.gradOutputRows[r]! : 1);
    for (let c = 0; c < cols; c++) {
      if (gradS) {
        let v = (w / T) * dS[c]!;
        if (hard) v += (1 - alpha) * (rProb![c]! - (eps / cols + (c === y ? 1 - eps : 0)));
        gradS[o + c] = g * v;
      }
      if (gradT) gradT[o + c] = g * (w / T) * dT[c]!;
    }
  }

  const result: DistillationLossResult = {
    loss: a.reduction === 'mean' ? (valid > 0 ? total / valid : 0) : total,
  };
  if (losses) result.losses = losses;
  if (gradS) result.gradStudent = gradS;
  if (gradT) result.gradTeacher = gradT;
  return result;
}
