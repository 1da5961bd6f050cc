/**
 * The same kernels as a plain-JS loop over Float32Arrays: what one writes without kdfuse or tfjs.
 * Per row: the maxima, the three exponentials kept in scratch rows, the sums, then loss and gradient.
 */
import type { Output } from '../measure.js';
import { LOSS, type Data } from '../workload.js';
import { inProcessPeer, type Peer } from './peer.js';

function lossAndGrad(d: Data, withGrad: boolean): Output {
  const { student: s, teacher: t, rows, cols, labels } = d;
  const T = LOSS.temperature, alpha = LOSS.alpha, invT = 1 / T;
  const q = new Float64Array(cols), p = new Float64Array(cols), r = new Float64Array(cols);
  const grad = withGrad ? new Float32Array(rows * cols) : undefined;
  let total = 0;
  for (let row = 0; row < rows; row++) {
    const o = row * cols, y = labels[row]!;
    let ms = -Infinity, mt = -Infinity, mr = -Infinity;
    for (let c = 0; c < cols; c++) {
      const sv = s[o + c]!, tv = t[o + c]!;
      if (sv * invT > ms) ms = sv * invT;
      if (tv * invT > mt) mt = tv * invT;
      if (sv > mr) mr = sv;
    }
    let zq = 0, zp = 0, zr = 0;
    for (let c = 0; c < cols; c++) {
      const sv = s[o + c]!;
      zq += (q[c] = Math.exp(sv * invT - ms));
      zp += (p[c] = Math.exp(t[o + c]! * invT - mt));
      zr += (r[c] = Math.exp(sv - mr));
    }
    const lzq = Math.log(zq), lzp = Math.log(zp);
    let kl = 0;
    for (let c = 0; c < cols; c++) {
      kl += (p[c]! / zp) * ((t[o + c]! * invT - mt - lzp) - (s[o + c]! * invT - ms - lzq));
    }
    const ce = -(s[o + y]! - mr - Math.log(zr));
    total += alpha * T * T * kl + (1 - alpha) * ce;
    if (grad) {
      const a = (alpha * T) / rows, b = (1 - alpha) / rows;
      for (let c = 0; c < cols; c++) grad[o + c] = a * (q[c]! / zq - p[c]! / zp) + b * (r[c]! / zr);
      grad[o + y] = grad[o + y]! - b;
    }
  }
  return grad ? { loss: total / rows, values: grad } : { loss: total / rows };
}

function softmax(d: Data): Output {
  const { student: x, rows, cols } = d;
  const invT = 1 / LOSS.temperature;
  const y = new Float32Array(rows * cols);
  for (let row = 0; row < rows; row++) {
    const o = row * cols;
    let m = -Infinity;
    for (let c = 0; c < cols; c++) if (x[o + c]! * invT > m) m = x[o + c]! * invT;
    let z = 0;
    for (let c = 0; c < cols; c++) z += (y[o + c] = Math.exp(x[o + c]! * invT - m));
    const inv = 1 / z;
    for (let c = 0; c < cols; c++) y[o + c] = y[o + c]! * inv;
  }
  return { values: y };
}

export const plainJs: Peer = inProcessPeer('plain-js', 'plain JS loop', (suite, d) => suite === 'topk' ? 'n/a: no top-k teacher loss' : ({
  run: suite === 'softmax' ? () => softmax(d) : () => lossAndGrad(d, suite === 'loss'),
  async: false,
}));
