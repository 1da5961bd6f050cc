/**
 * The reference backend: every kernel in plain TypeScript, computed in float64 and written out as
 * float32. It is the contract of docs/design.md in code — short and literal, materialising p, q and r —
 * and serves as the test oracle and as the fallback when the addon is unavailable.
 */
import { findBadValue, labelRangeError, type DistillArgs, type SoftmaxArgs } from './validate.js';
import type { DistillationLossResult } from './types.js';

/** log(sum(exp(z))) of z[0..n), stably; -Infinity when every z is -Infinity. */
function logSumExp(z: Float64Array): number {
  let m = -Infinity;
  for (const v of z) m = Math.max(m, v);
  if (m === -Infinity) return -Infinity;
  let s = 0;
  for (const v of z) s += Math.exp(v - m);
  return m + Math.log(s);
}

function rowScaled(x: Float32Array, r: number, cols: number, invT: number): Float64Array {
  const z = new Float64Array(cols);
  for (let c = 0; c < cols; c++) z[c] = x[r * cols + c]! * invT;
  return z;
}

function noFinite(name: string, r: number): RangeError {
  return new RangeError(`${name} row ${r} must have at least one finite logit, got all -Infinity`);
}

/**
 * Whether row r's finite maximum leaves float32 when divided by the temperature, computed as the
 * native kernels do (the float32 product max * float32(1/T)): they would turn the row into NaN, so
 * every backend rejects it.
 */
function overflowsAtTemperature(x: Float32Array, r: number, cols: number, temperature: number): boolean {
  let m = -Infinity;
  for (let c = 0; c < cols; c++) m = Math.max(m, x[r * cols + c]!);
  return Number.isFinite(m) && !Number.isFinite(Math.fround(m * Math.fround(1 / temperature)));
}

function overflow(name: string, r: number, temperature: number): RangeError {
  return new RangeError(
    `temperature must be large enough that ${name === 'logits' ? name : `${name} logits`} / temperature stay within float32, ` +
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
    const lseS = logSumExp(zs), lseT = logSumExp(zt);
    const lq = zs.map((z) => z - lseS), lp = zt.map((z) => z - lseT);
    const q = lq.map(Math.exp), p = lp.map(Math.exp);

    // The divergence, and its gradients with respect to s/T and t/T (times T: d/ds = (d/dz) / T).
    const dS = new Float64Array(cols), dT = new Float64Array(cols);
    let div: number;
    if (a.divergence === 'kl') {
      div = 0;
      for (let c = 0; c < cols; c++) div += weighted(p[c]!, lp[c]! - lq[c]!);
      const k = Number.isFinite(div) ? div : 0;  // an infinite divergence leaves the partial gradient
      for (let c = 0; c < cols; c++) {
        dS[c] = q[c]! - p[c]!;
        dT[c] = weighted(p[c]!, lp[c]! - lq[c]!) - k * p[c]!;
      }
    } else if (a.divergence === 'reverse-kl') {
      div = 0;
      for (let c = 0; c < cols; c++) div += weighted(q[c]!, lq[c]! - lp[c]!);
      const k = Number.isFinite(div) ? div : 0;
      for (let c = 0; c < cols; c++) {
        dS[c] = weighted(q[c]!, lq[c]! - lp[c]!) - k * q[c]!;
        dT[c] = p[c]! - q[c]!;
      }
    } else {
      const lm = p.map((pc, c) => Math.log(beta * pc + (1 - beta) * q[c]!));
      let kpm = 0, kqm = 0;
      for (let c = 0; c < cols; c++) {
        kpm += weighted(p[c]!, lp[c]! - lm[c]!);
        kqm += weighted(q[c]!, lq[c]! - lm[c]!);
      }
      div = (beta > 0 ? beta * kpm : 0) + (beta < 1 ? (1 - beta) * kqm : 0);
      const kp = Number.isFinite(kpm) ? kpm : 0, kq = Number.isFinite(kqm) ? kqm : 0;
      for (let c = 0; c < cols; c++) {
        dS[c] = beta < 1 ? (1 - beta) * (weighted(q[c]!, lq[c]! - lm[c]!) - kq * q[c]!) : 0;
        dT[c] = beta > 0 ? beta * (weighted(p[c]!, lp[c]! - lm[c]!) - kp * p[c]!) : 0;
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
    const loss = w * div + (hard ? (1 - alpha) * ce : 0);
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
