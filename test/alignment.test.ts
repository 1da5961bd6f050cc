/**
 * Explanation-aligned distillation (src/train/alignment.ts): the input-gradient (e²KD-style) and
 * attention-transfer terms against hand-computed values and a float64 reference, the second-order
 * gradient support of tfjs 4.22 on the cpu and wasm backends, and the Distiller's behaviour with
 * the terms on and off.
 *
 * Gradient checks: the Distiller's gradient is read from one SGD step with learning rate 1 over
 * the whole batch (w0 − w1), and compared with central differences (h = 1e-6) of the total loss
 * computed independently in float64 in this file. The tolerance, 2e-4 · max|grad|, covers float32
 * rounding in the Distiller's forward and double-backward passes (relative ~1e-6 per op); the
 * difference quotient itself is accurate to ~1e-9 in float64. Each check also asserts that the
 * alignment term moves the gradient by far more than that tolerance, so a gradient that ignored
 * the second-order part (treating g_s as a constant) would fail.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import {
  ALIGNMENT_EPS, Distiller, NonFiniteLossError, SecondOrderGradientError, attentionMap, attentionTransferLoss,
  cacheTeacherLogits, classInputGradient, inputGradientLoss, rowCosine, seededPermutation,
} from '../src/train/index.js';
import { distillationLoss } from '../src/tfjs/index.js';
import { denseModel } from '../src/demo/models.js';
import { expectArrayClose, expectClose, maxAbs, randomLogits, rng } from './helpers.js';

// ---------- float64 references ----------

const softmax = (z: number[]): number[] => {
  const m = Math.max(...z), e = z.map((v) => Math.exp(v - m)), s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
};
const argmax = (v: ArrayLike<number>): number => { let b = 0; for (let i = 1; i < v.length; i++) if (v[i]! > v[b]!) b = i; return b; };
const norm = (v: number[]): number => Math.sqrt(v.reduce((a, b) => a + b * b, 0) + ALIGNMENT_EPS);
const cosine = (a: number[], b: number[]): number => a.reduce((s, v, i) => s + v * b[i]!, 0) / (norm(a) * norm(b));

/** alpha T² KL(p || q) + (1 − alpha) CE for one row, as in docs/design.md (no label smoothing). */
function kdRow(s: number[], t: number[], y: number, T: number, alpha: number): number {
  const p = softmax(t.map((v) => v / T)), q = softmax(s.map((v) => v / T)), r = softmax(s);
  const kl = p.reduce((acc, pc, c) => acc + (pc > 0 ? pc * (Math.log(pc) - Math.log(q[c]!)) : 0), 0);
  return alpha * T * T * kl - (1 - alpha) * Math.log(r[y]!);
}

/** A dense ReLU net [D -> H (relu) -> C] in float64: logits and the input gradient of class c, per row. */
function denseNet(p: Float64Array[], D: number, H: number, C: number) {
  const [W1, b1, W2, b2] = p as [Float64Array, Float64Array, Float64Array, Float64Array];
  return (x: number[]) => {
    const z = Array.from({ length: H }, (_, h) => b1[h]! + x.reduce((a, xd, d) => a + xd * W1[d * H + h]!, 0));
    const s = Array.from({ length: C }, (_, c) => b2[c]! + z.reduce((a, zh, h) => a + Math.max(zh, 0) * W2[h * C + c]!, 0));
    const grad = (c: number) => Array.from({ length: D }, (_, d) => z.reduce((a, zh, h) => a + (zh > 0 ? W1[d * H + h]! * W2[h * C + c]! : 0), 0));
    return { s, grad };
  };
}

/** conv2d (valid, stride 1, kernel [K, K, Ci, F]) + ReLU + flatten + dense, in float64, with the input gradient of class c. */
function convNet(p: Float64Array[], S: number, Ci: number, K: number, F: number, C: number) {
  const [Kw, kb, Wd, bd] = p as [Float64Array, Float64Array, Float64Array, Float64Array];
  const O = S - K + 1;
  return (x: number[]) => {  // x: [S, S, Ci] row-major
    const z = new Float64Array(O * O * F);
    for (let oy = 0; oy < O; oy++) for (let ox = 0; ox < O; ox++) for (let f = 0; f < F; f++) {
      let v = kb[f]!;
      for (let ky = 0; ky < K; ky++) for (let kx = 0; kx < K; kx++) for (let ci = 0; ci < Ci; ci++) {
        v += x[((oy + ky) * S + ox + kx) * Ci + ci]! * Kw[((ky * K + kx) * Ci + ci) * F + f]!;
      }
      z[(oy * O + ox) * F + f] = v;
    }
    const s = Array.from({ length: C }, (_, c) => z.reduce((a, zj, j) => a + Math.max(zj, 0) * Wd[j * C + c]!, bd[c]!));
    const grad = (c: number) => {
      const g = new Array<number>(S * S * Ci).fill(0);
      for (let oy = 0; oy < O; oy++) for (let ox = 0; ox < O; ox++) for (let f = 0; f < F; f++) {
        const j = (oy * O + ox) * F + f;
        if (!(z[j]! > 0)) continue;
        const up = Wd[j * C + c]!;
        for (let ky = 0; ky < K; ky++) for (let kx = 0; kx < K; kx++) for (let ci = 0; ci < Ci; ci++) {
          g[((oy + ky) * S + ox + kx) * Ci + ci]! += up * Kw[((ky * K + kx) * Ci + ci) * F + f]!;
        }
      }
      return g;
    };
    return { s, grad };
  };
}

type Net = (x: number[]) => { s: number[]; grad: (c: number) => number[] };

/** The Distiller's total loss with the input-gradient term, in float64. */
function totalLoss(student: Net, teacher: Net, xs: number[][], y: Int32Array, T: number, alpha: number, weight: number): number {
  let kd = 0, align = 0;
  xs.forEach((x, i) => {
    const t = teacher(x), s = student(x), c = argmax(t.s);
    kd += kdRow(s.s, t.s, y[i]!, T, alpha);
    align += 1 - cosine(s.grad(c), t.grad(c));
  });
  return kd / xs.length + weight * (align / xs.length);
}

/** Central differences of f over every parameter (float64). */
function finiteDifferences(f: (p: Float64Array[]) => number, params: Float64Array[], h = 1e-6): Float64Array[] {
  return params.map((w, k) => {
    const g = new Float64Array(w.length);
    for (let i = 0; i < w.length; i++) {
      const plus = params.map((q) => q.slice()), minus = params.map((q) => q.slice());
      plus[k]![i]! += h; minus[k]![i]! -= h;
      g[i] = (f(plus) - f(minus)) / (2 * h);
    }
    return g;
  });
}

const weightsOf = (m: tf.LayersModel): Float64Array[] => m.getWeights().map((w) => Float64Array.from(w.dataSync()));

/** The gradient the Distiller applies, read from one plain-SGD step (learning rate 1) over the whole batch. */
async function distillerGradient(make: (opt: tf.Optimizer) => Distiller, student: tf.LayersModel, x: tf.Tensor, y: Int32Array): Promise<Float64Array[]> {
  const before = weightsOf(student);
  await make(tf.train.sgd(1)).fit(x, y, { epochs: 1, batchSize: x.shape[0]!, shuffle: false, verbose: 'quiet' });
  return weightsOf(student).map((w, k) => w.map((v, i) => before[k]![i]! - v));
}

const dense = (units: number[], inputs: number, seed: number): tf.Sequential => {
  const m = tf.sequential();
  units.forEach((u, i) => m.add(tf.layers.dense({
    units: u, ...(i === 0 ? { inputShape: [inputs] } : {}), ...(i < units.length - 1 ? { activation: 'relu' as const } : {}),
    kernelInitializer: tf.initializers.glorotUniform({ seed: seed + i }), biasInitializer: tf.initializers.randomNormal({ stddev: 0.1, seed: seed + 50 + i }),
  })));
  return m;
};

const conv = (size: number, channels: number, filters: number, classes: number, seed: number, pool?: 'max' | 'avg', name = 'conv'): tf.Sequential => {
  const m = tf.sequential();
  m.add(tf.layers.conv2d({
    name, inputShape: [size, size, channels], filters, kernelSize: 3, activation: 'relu',
    kernelInitializer: tf.initializers.heNormal({ seed }), biasInitializer: tf.initializers.randomNormal({ stddev: 0.1, seed: seed + 1 }),
  }));
  if (pool === 'max') m.add(tf.layers.maxPooling2d({ poolSize: 2 }));
  if (pool === 'avg') m.add(tf.layers.averagePooling2d({ poolSize: 2 }));
  m.add(tf.layers.flatten());
  m.add(tf.layers.dense({ units: classes, kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 2 }) }));
  return m;
};

/** The second-order gradient of Σ (d s_0/dx)² w.r.t. the model's weights: what the input-gradient term needs of tfjs. */
function secondOrder(model: tf.LayersModel, x: tf.Tensor): void {
  const oneHot = tf.tidy(() => tf.oneHot(tf.zeros([x.shape[0]!], 'int32'), 3).toFloat() as tf.Tensor2D);
  try {
    const { value, grads } = tf.variableGrads(
      () => tf.sum(tf.square(classInputGradient((xx) => model.apply(xx) as tf.Tensor, x, oneHot))) as tf.Scalar,
      model.trainableWeights.map((w) => w.read() as tf.Variable),
    );
    tf.dispose([value, ...Object.values(grads)]);
  } finally {
    oneHot.dispose();
  }
}

function useBackend(name: 'cpu' | 'wasm'): void {
  let previous: string;
  beforeAll(async () => {
    await tf.ready();
    previous = tf.getBackend();
    await tf.setBackend(name);
    await tf.ready();
    expect(tf.getBackend()).toBe(name);
  });
  afterAll(async () => { await tf.setBackend(previous); });
}

// ---------- tests ----------

describe('alignment terms: values on hand-computed cases', () => {
  useBackend('cpu');

  it('input-gradient term of linear models: the gradient of class c is the weight column c', async () => {
    // student columns (1, 2, 0) and (0, 1, −1); teacher columns (1, 0, 2) and (1, 1, 0)
    const Ws = tf.tensor2d([[1, 0], [2, 1], [0, -1]]), Wt = tf.tensor2d([[1, 1], [0, 1], [2, 0]]);
    // row 0: t = (3, 1) -> class 0, cos((1,2,0), (1,0,2)) = 1/5; row 1: t = (0, 1) -> class 1, cos((0,1,−1), (1,1,0)) = 1/2
    const x = tf.tensor2d([[1, 0, 1], [0, 1, 0]]);
    const oneHot = tf.tensor2d([[1, 0], [0, 1]]);
    const gs = classInputGradient((v) => tf.matMul(v as tf.Tensor2D, Ws), x, oneHot);
    const gt = classInputGradient((v) => tf.matMul(v as tf.Tensor2D, Wt), x, oneHot);
    expectArrayClose(gs.dataSync(), [1, 2, 0, 0, 1, -1], 1e-7, 'g_s');
    expectArrayClose(rowCosine(gs, gt).dataSync(), [0.2, 0.5], 1e-6, 'cos');
    const term = inputGradientLoss(gs, gt);
    expectClose(term.dataSync()[0]!, (0.8 + 0.5) / 2, 1e-6, 'term');

    // the same through the Distiller: the logged alignment term is weight · 0.65 (logged before the update)
    const student = tf.sequential({ layers: [tf.layers.dense({ units: 2, inputShape: [3], useBias: false })] });
    student.setWeights([Ws]);
    const teacher = (v: tf.Tensor) => tf.matMul(v as tf.Tensor2D, Wt);
    const logged: number[] = [];
    const d = new Distiller({ teacher, student, explanationAlignment: { inputGradient: { weight: 3 } } });
    const h = await d.fit(x, [0, 1], { epochs: 1, batchSize: 2, verbose: 'quiet', callbacks: { onBatchEnd: (_b, l) => { logged.push(l.alignmentLoss!); } } });
    expectClose(logged[0]!, 3 * 0.65, 1e-6, 'logged alignmentLoss');
    expectClose(h.epochs[0]!.alignmentLoss!, 3 * 0.65, 1e-6, 'epoch alignmentLoss');
    // loss stays the total: the distillation loss at the starting weights plus the term
    const kd = tf.tidy(() => distillationLoss(tf.matMul(x, Ws), tf.matMul(x, Wt), [0, 1], { temperature: 4, alpha: 0.9 }).dataSync()[0]!);
    expectClose(h.epochs[0]!.loss, kd + 3 * 0.65, 1e-5, 'epoch loss = kd + alignment');
    // a zero gradient gives cos = 0 (term 1), not NaN, thanks to the ε under the norms
    expectClose(inputGradientLoss(tf.zeros([1, 3]), tf.ones([1, 3])).dataSync()[0]!, 1, 1e-6, 'zero gradient');
    tf.dispose([Ws, Wt, x, oneHot, gs, gt, term]);
    student.dispose();
  });

  it('attention maps and the attention-transfer term on a hand-made activation', () => {
    // A [1, 2, 2, 2]: positions (0,0): (1, 3), (0,1): (0, 2), (1,0): (−2, 0), (1,1): (1, 1)
    const A = tf.tensor4d([1, 3, 0, 2, -2, 0, 1, 1], [1, 2, 2, 2]);
    // p = 2: mean_c a² = (5, 2, 2, 1), norm √34; p = 1: mean_c |a| = (2, 1, 1, 1), norm √7
    expectArrayClose(attentionMap(A, 2).dataSync(), [5, 2, 2, 1].map((v) => v / Math.sqrt(34)), 1e-6, 'Q (p=2)');
    expectArrayClose(attentionMap(A, 1).dataSync(), [2, 1, 1, 1].map((v) => v / Math.sqrt(7)), 1e-6, 'Q (p=1)');
    // p = 0.5: mean_c √|a| = ((1 + √3)/2, √2/2, √2/2, 1)
    const half = [(1 + Math.sqrt(3)) / 2, Math.SQRT2 / 2, Math.SQRT2 / 2, 1], hn = Math.hypot(...half);
    expectArrayClose(attentionMap(A, 0.5).dataSync(), half.map((v) => v / hn), 1e-6, 'Q (p=0.5)');
    // teacher with one channel of ones: Q_t = (1, 1, 1, 1) / 2; term = ||Q_s − Q_t||_2 (channels may differ)
    const B = tf.ones([1, 2, 2, 1]);
    const expected = Math.hypot(...[5, 2, 2, 1].map((v) => v / Math.sqrt(34) - 0.5));
    expectClose(attentionTransferLoss(A, B).dataSync()[0]!, expected, 1e-5, 'AT term');
    // two rows: the mean over rows; identical maps give ≈ √ε, not NaN
    const AA = tf.concat([A, tf.mul(A, 2)]), BB = tf.concat([tf.ones([1, 2, 2, 2]), A]);
    expectClose(attentionTransferLoss(AA, BB).dataSync()[0]!, (expected + Math.sqrt(ALIGNMENT_EPS)) / 2, 1e-5, 'AT term, 2 rows');
    // the gradient at zeros is finite for p < 1 (no 0 · ∞)
    const g = tf.grad((a: tf.Tensor) => attentionTransferLoss(a, B, 0.5))(A);
    expect(Array.from(g.dataSync()).every(Number.isFinite)).toBe(true);
    expect(() => attentionTransferLoss(A, tf.ones([1, 3, 3, 1]))).toThrow(/spatial size/);
    tf.dispose([A, B, AA, BB, g]);
  });
});

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`second-order gradients of the input-gradient term on the ${backend} backend (tfjs 4.22)`, () => {
    useBackend(backend);

    it('dense ReLU models: the Distiller gradient matches central differences of a float64 reference', async () => {
      const D = 6, H = 5, C = 3, N = 10, T = 2, alpha = 0.7, weight = 1.5;
      const rand = rng(backend === 'cpu' ? 21 : 22);
      const xData = randomLogits(rand, N * D, 1);
      const xs = Array.from({ length: N }, (_, i) => Array.from(xData.subarray(i * D, (i + 1) * D)));
      const y = Int32Array.from({ length: N }, () => Math.floor(rand() * C));
      const x = tf.tensor2d(xData, [N, D]);
      const teacher = dense([8, C], D, 100), tNet = denseNet(weightsOf(teacher), D, 8, C);
      const grads = async (w: number) => {
        const student = dense([H, C], D, 7);
        const g = await distillerGradient((optimizer) => new Distiller({
          teacher, student, temperature: T, alpha, optimizer, ...(w > 0 ? { explanationAlignment: { inputGradient: { weight: w } } } : {}),
        }), student, x, y);
        const p0 = weightsOf(student).map((v, k) => v.map((u, i) => u + g[k]![i]!));  // the weights before the step
        student.dispose();
        return { g, p0 };
      };
      const { g, p0 } = await grads(weight);
      const fd = finiteDifferences((p) => totalLoss(denseNet(p, D, H, C), tNet, xs, y, T, alpha, weight), p0);
      const flat = (a: Float64Array[]) => a.flatMap((v) => Array.from(v));
      const tol = 2e-4 * maxAbs(flat(fd));
      expectArrayClose(flat(g), flat(fd), 2e-4, 'dL/dθ vs central differences');
      // the term matters: without it the gradient differs by far more than the tolerance
      const plain = flat((await grads(0)).g);
      expect(maxAbs(plain.map((v, i) => v - flat(g)[i]!))).toBeGreaterThan(100 * tol);
      teacher.dispose();
      x.dispose();
    });

    it("the demo's dense models (64-256-256-10 teacher, 64-16-10 student) train with the term", async () => {
      const teacher = denseModel([256, 256], 1), student = denseModel([16], 2);
      const x = tf.randomNormal([64, 64], 0, 1, 'float32', 5), y = Array.from({ length: 64 }, (_, i) => i % 10);
      const w0 = student.getWeights()[0]!.dataSync().slice();
      const h = await new Distiller({ teacher, student, explanationAlignment: { inputGradient: { weight: 1 } } }).fit(x, y, { epochs: 2, batchSize: 32, verbose: 'quiet' });
      expect(h.epochs[1]!.alignmentLoss).toBeGreaterThan(0);
      expect(h.epochs[1]!.alignmentLoss).toBeLessThan(2);  // 1 − cos lies in [0, 2]
      expect(Array.from(student.getWeights()[0]!.dataSync())).not.toEqual(Array.from(w0));
      x.dispose();
      teacher.dispose();
      student.dispose();
    });

    if (backend === 'cpu') {
      it('conv2d + ReLU + flatten + dense: the Distiller gradient matches central differences', async () => {
        const S = 5, Ci = 2, K = 3, F = 3, C = 3, N = 6, T = 3, alpha = 0.8, weight = 2;
        const rand = rng(31);
        const xData = randomLogits(rand, N * S * S * Ci, 1);
        const xs = Array.from({ length: N }, (_, i) => Array.from(xData.subarray(i * S * S * Ci, (i + 1) * S * S * Ci)));
        const y = Int32Array.from({ length: N }, () => Math.floor(rand() * C));
        const x = tf.tensor4d(xData, [N, S, S, Ci]);
        // a linear function teacher: t = flatten(x) · Wt, so g_t is column c of Wt
        const Wt = randomLogits(rand, S * S * Ci * C, 0.3);
        const WtT = tf.tensor2d(Wt, [S * S * Ci, C]);
        const teacher = (v: tf.Tensor) => tf.matMul(tf.reshape(v, [v.shape[0]!, -1]) as tf.Tensor2D, WtT);
        const tNet: Net = (v) => ({
          s: Array.from({ length: C }, (_, c) => v.reduce((a, xv, j) => a + xv * Wt[j * C + c]!, 0)),
          grad: (c) => v.map((_, j) => Wt[j * C + c]!),
        });
        const grads = async (w: number) => {
          const student = conv(S, Ci, F, C, 5);
          const g = await distillerGradient((optimizer) => new Distiller({
            teacher, student, temperature: T, alpha, optimizer, ...(w > 0 ? { explanationAlignment: { inputGradient: { weight: w } } } : {}),
          }), student, x, y);
          const p0 = weightsOf(student).map((v, k) => v.map((u, i) => u + g[k]![i]!));
          student.dispose();
          return { g, p0 };
        };
        const { g, p0 } = await grads(weight);
        const fd = finiteDifferences((p) => totalLoss(convNet(p, S, Ci, K, F, C), tNet, xs, y, T, alpha, weight), p0);
        const flat = (a: Float64Array[]) => a.flatMap((v) => Array.from(v));
        const tol = 2e-4 * maxAbs(flat(fd));
        expectArrayClose(flat(g), flat(fd), 2e-4, 'conv dL/dθ vs central differences');
        const plain = flat((await grads(0)).g);
        expect(maxAbs(plain.map((v, i) => v - flat(g)[i]!))).toBeGreaterThan(100 * tol);
        tf.dispose([x, WtT]);
      });

      it('pooling has no second-order gradient: MaxPoolGrad and AvgPoolGrad (fails if tfjs adds them)', async () => {
        const x = tf.randomNormal([2, 6, 6, 1], 0, 1, 'float32', 3);
        expect(() => secondOrder(conv(6, 1, 2, 3, 1), x)).not.toThrow();  // conv + ReLU alone is fine
        expect(() => secondOrder(conv(6, 1, 2, 3, 1, 'max'), x)).toThrow(/gradient function not found for MaxPoolGrad/);
        expect(() => secondOrder(conv(6, 1, 2, 3, 1, 'avg'), x)).toThrow(/gradient function not found for AvgPoolGrad/);

        // the Distiller names the kernel at the first batch, before any weight changes, and points to attention transfer
        const teacher = conv(6, 1, 4, 3, 9, 'max', 'tconv'), student = conv(6, 1, 2, 3, 1, 'max', 'sconv');
        const w0 = student.getWeights().map((w) => Array.from(w.dataSync()));
        const d = new Distiller({ teacher, student, explanationAlignment: { inputGradient: { weight: 1 } } });
        const before = tf.memory().numTensors;
        const err = await d.fit(x, [0, 1], { epochs: 1, verbose: 'quiet' }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(SecondOrderGradientError);
        expect((err as SecondOrderGradientError).kernel).toBe('MaxPoolGrad');
        expect((err as Error).message).toMatch(/MaxPoolGrad.*attentionTransfer/s);
        expect(student.getWeights().map((w) => Array.from(w.dataSync()))).toEqual(w0);
        expect(tf.memory().numTensors).toBe(before);
        // the fallback: attention transfer on the conv layers trains the same pooled student
        const at = new Distiller({ teacher, student, explanationAlignment: { attentionTransfer: { weight: 1, pairs: [{ teacher: 'tconv', student: 'sconv' }] } } });
        const h = await at.fit(x, [0, 1], { epochs: 2, verbose: 'quiet' });
        expect(h.epochs[1]!.alignmentLoss).toBeGreaterThan(0);
        expect(student.getWeights().map((w) => Array.from(w.dataSync()))).not.toEqual(w0);
        tf.dispose([x]);
        teacher.dispose();
        student.dispose();
      });
    } else {
      it('conv students cannot be trained on wasm at all: Conv2DBackpropFilter is not registered (fails if tfjs adds it)', async () => {
        const x = tf.randomNormal([2, 6, 6, 1], 0, 1, 'float32', 3);
        const student = conv(6, 1, 2, 3, 1);
        // first order already fails: the kernel is missing, not just its gradient
        expect(() => tf.variableGrads(() => tf.sum(student.apply(x) as tf.Tensor) as tf.Scalar, student.trainableWeights.map((w) => w.read() as tf.Variable)))
          .toThrow(/Kernel 'Conv2DBackpropFilter' not registered for backend 'wasm'/);
        expect(() => secondOrder(student, x)).toThrow(/Conv2DBackpropFilter/);
        const d = new Distiller({ teacher: conv(6, 1, 2, 3, 4), student, explanationAlignment: { inputGradient: { weight: 1 } } });
        const err = await d.fit(x, [0, 1], { epochs: 1, verbose: 'quiet' }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(SecondOrderGradientError);
        expect(err).toMatchObject({ kernel: 'Conv2DBackpropFilter', backend: 'wasm' });
        x.dispose();
        student.dispose();
      });
    }
  });
}

describe('Distiller with explanationAlignment', () => {
  useBackend('cpu');

  function problem(seed: number, n: number, dim = 12, classes = 4) {
    const rand = rng(seed);
    const x = tf.tensor2d(randomLogits(rand, n * dim, 1), [n, dim]);
    const teacher = dense([32, classes], dim, seed * 10);
    const y = Int32Array.from(tf.tidy(() => tf.argMax(teacher.predict(x) as tf.Tensor, 1).dataSync() as Int32Array));
    return { x, y, teacher, dim, classes };
  }

  it('off by default: no option, undefined or weight 0 train exactly as the plain loop did before', async () => {
    const p = problem(1, 96);
    const train = async (extra: object) => {
      const student = dense([8, p.classes], p.dim, 3);
      await new Distiller({ teacher: p.teacher, student, temperature: 3, alpha: 0.6, learningRate: 0.01, ...extra })
        .fit(p.x, p.y, { epochs: 2, batchSize: 32, seed: 5, verbose: 'quiet' });
      const w = student.getWeights().flatMap((t) => Array.from(t.dataSync()));
      student.dispose();
      return w;
    };
    // the loop as it was: seeded shuffles, teacher logits, fused loss, adam
    const student = dense([8, p.classes], p.dim, 3), opt = tf.train.adam(0.01);
    for (let epoch = 0; epoch < 2; epoch++) {
      const order = seededPermutation(96, 5 * 7919 + epoch);
      for (let b = 0; b < 3; b++) {
        const idx = order.subarray(b * 32, (b + 1) * 32);
        tf.tidy(() => {
          const xb = tf.gather(p.x, tf.tensor1d(idx, 'int32')), tb = p.teacher.predict(xb) as tf.Tensor2D;
          const { value, grads } = tf.variableGrads(() => distillationLoss(student.apply(xb, { training: true }) as tf.Tensor2D, tb, Int32Array.from(idx, (i) => p.y[i]!), { temperature: 3, alpha: 0.6 }) as tf.Scalar,
            student.trainableWeights.map((w) => w.read() as tf.Variable));
          opt.applyGradients(grads as Parameters<typeof opt.applyGradients>[0]);
          tf.dispose([value, ...Object.values(grads)]);
        });
      }
    }
    const reference = student.getWeights().flatMap((t) => Array.from(t.dataSync()));
    expect(await train({})).toEqual(reference);
    expect(await train({ explanationAlignment: undefined })).toEqual(reference);
    expect(await train({ explanationAlignment: { inputGradient: { weight: 0 } } })).toEqual(reference);
    expect(await train({ explanationAlignment: { inputGradient: { weight: (e: number) => (e < 5 ? 0 : 1) } } })).toEqual(reference);
    expect(await train({ explanationAlignment: { inputGradient: { weight: 1e-3 } } })).not.toEqual(reference);
    // no alignmentLoss in the logs unless asked for
    const s2 = dense([8, p.classes], p.dim, 3);
    const h = await new Distiller({ teacher: p.teacher, student: s2 }).fit(p.x, p.y, { epochs: 1, verbose: 'quiet' });
    expect('alignmentLoss' in h.epochs[0]!).toBe(false);
    p.x.dispose();
    student.dispose();
    s2.dispose();
    p.teacher.dispose();
    opt.dispose();
  });

  it('attention transfer with weight 0 trains a conv student exactly as without it', async () => {
    const x = tf.randomNormal([16, 6, 6, 1], 0, 1, 'float32', 8), y = Array.from({ length: 16 }, (_, i) => i % 3);
    const teacher = conv(6, 1, 4, 3, 9, 'max', 'tconv');
    const train = async (extra: object) => {
      const student = conv(6, 1, 2, 3, 1, 'max', 'sconv');
      await new Distiller({ teacher, student, learningRate: 0.01, ...extra }).fit(x, y, { epochs: 2, batchSize: 8, verbose: 'quiet' });
      const w = student.getWeights().flatMap((t) => Array.from(t.dataSync()));
      student.dispose();
      return w;
    };
    const pairs = [{ teacher: 'tconv', student: 'sconv' }];
    const base = await train({});
    expect(await train({ explanationAlignment: { attentionTransfer: { weight: 0, pairs } } })).toEqual(base);
    expect(await train({ explanationAlignment: { attentionTransfer: { weight: 1, pairs } } })).not.toEqual(base);
    x.dispose();
    teacher.dispose();
  });

  it('attention transfer: the logged term is the weighted distance of the maps, and training lowers it', async () => {
    const x = tf.randomNormal([32, 6, 6, 1], 0, 1, 'float32', 4), y = Array.from({ length: 32 }, (_, i) => i % 3);
    const teacher = conv(6, 1, 4, 3, 9, undefined, 'tconv'), student = conv(6, 1, 2, 3, 1, undefined, 'sconv');
    const expected = tf.tidy(() => {
      const act = (m: tf.LayersModel) => tf.relu(tf.add(tf.conv2d(x as tf.Tensor4D, m.getWeights()[0] as tf.Tensor4D, 1, 'valid'), m.getWeights()[1]!));
      return attentionTransferLoss(act(student), act(teacher), 3).dataSync()[0]!;
    });
    const logged: number[] = [];
    const d = new Distiller({
      teacher, student, learningRate: 0.05,
      explanationAlignment: { attentionTransfer: { weight: 5, pairs: [{ teacher: 'tconv', student: 'sconv' }], p: 3 } },
    });
    const h = await d.fit(x, y, { epochs: 40, batchSize: 32, verbose: 'quiet', callbacks: { onBatchEnd: (_b, l) => { logged.push(l.alignmentLoss!); } } });
    expectClose(logged[0]!, 5 * expected, 1e-5, 'first batch alignmentLoss');
    console.log(`attention transfer term: epoch 0 ${h.epochs[0]!.alignmentLoss!.toFixed(4)}, epoch 39 ${h.epochs[39]!.alignmentLoss!.toFixed(4)}`);
    expect(h.epochs[39]!.alignmentLoss!).toBeLessThan(0.5 * h.epochs[0]!.alignmentLoss!);
    tf.dispose([x]);
    teacher.dispose();
    student.dispose();
  });

  it('raises the cosine between student and teacher input gradients well above plain KD (same seed)', async () => {
    const p = problem(7, 512, 16, 4);
    const held = problem(8, 256, 16, 4);  // fresh inputs, scored against the same teacher
    held.teacher.dispose();
    const meanCos = (student: tf.LayersModel) => tf.tidy(() => {
      const oneHot = tf.oneHot(tf.argMax(p.teacher.predict(held.x) as tf.Tensor, 1), 4).toFloat() as tf.Tensor2D;
      const gs = classInputGradient((v) => student.apply(v) as tf.Tensor, held.x, oneHot);
      const gt = classInputGradient((v) => p.teacher.apply(v) as tf.Tensor, held.x, oneHot);
      return tf.mean(rowCosine(gs, gt)).dataSync()[0]!;
    });
    const run = async (weight: number) => {
      const student = dense([16, 4], 16, 11);
      const d = new Distiller({ teacher: p.teacher, student, learningRate: 0.01, ...(weight > 0 ? { explanationAlignment: { inputGradient: { weight } } } : {}) });
      await d.fit(p.x, p.y, { epochs: 12, batchSize: 64, seed: 2, verbose: 'quiet' });
      const r = { cos: meanCos(student), agreement: d.evaluate(held.x, Int32Array.from(tf.tidy(() => tf.argMax(p.teacher.predict(held.x) as tf.Tensor, 1).dataSync() as Int32Array))).agreement };
      student.dispose();
      return r;
    };
    const plain = await run(0), aligned = await run(2);
    console.log(`mean cos(g_s, g_t) on held-out rows: plain KD ${plain.cos.toFixed(3)}, with inputGradient ${aligned.cos.toFixed(3)}; agreement ${plain.agreement.toFixed(3)} vs ${aligned.agreement.toFixed(3)}`);
    expect(aligned.cos).toBeGreaterThan(plain.cos + 0.1);
    expect(aligned.agreement).toBeGreaterThan(plain.agreement - 0.1);  // not bought by giving up the outputs
    tf.dispose([p.x, held.x]);
    p.teacher.dispose();
  });

  it('teacher calls: g_t once per fit by default (or per batch with cacheTeacher: false), with cached or live logits; the same training every way', async () => {
    const p = problem(3, 64, 6, 3);
    let calls = 0;
    const teacher = (v: tf.Tensor) => { calls++; return p.teacher.apply(v) as tf.Tensor; };
    const train = async (cachedLogits: boolean, cacheTeacher?: boolean, weight: number | ((e: number) => number) = 1) => {
      const student = dense([6, 3], 6, 2);
      const cache = cachedLogits ? cacheTeacherLogits(teacher, p.x) : undefined;
      calls = 0;
      const inputGradient = cacheTeacher === undefined ? { weight } : { weight, cacheTeacher };
      await new Distiller({ teacher, student, learningRate: 0.01, explanationAlignment: { inputGradient } })
        .fit(p.x, p.y, { epochs: 2, batchSize: 16, verbose: 'quiet', ...(cache ? { teacherLogits: cache } : {}) });
      const w = student.getWeights().flatMap((t) => Array.from(t.dataSync()));
      student.dispose();
      return { w, calls };
    };
    const perBatchLive = await train(false, false), perBatchCached = await train(true, false);
    const onceLive = await train(false), onceCached = await train(true);
    expect(perBatchCached.calls).toBe(8);   // 4 batches x 2 epochs, for g_t
    expect(perBatchLive.calls).toBe(16);    // and for the logits
    expect(onceCached.calls).toBe(1);       // g_t for all 64 rows in one call
    expect(onceLive.calls).toBe(2 + 8);     // logits and g_t for all rows, then logits per batch
    // nothing is computed for the term while its weight is 0: not at all, or not until it rises
    expect((await train(true, undefined, 0)).calls).toBe(0);
    expect((await train(true, undefined, (e) => (e === 0 ? 0 : 1))).calls).toBe(1);
    for (const [name, r] of Object.entries({ perBatchCached, onceLive, onceCached })) {
      expectArrayClose(r.w, perBatchLive.w, 1e-5, `weights, ${name}`);
    }
    expect(() => new Distiller({ teacher, student: dense([6, 3], 6, 2), explanationAlignment: { inputGradient: { weight: 1, cacheTeacher: 'yes' as unknown as boolean } } }))
      .toThrow(/explanationAlignment.inputGradient.cacheTeacher must be a boolean/);
    p.x.dispose();
    p.teacher.dispose();
  });

  it('a non-finite total loss still stops training before any weight changes', async () => {
    const p = problem(4, 32, 6, 4);
    const masked = dense([6, 4], 6, 1);
    masked.layers[1]!.setWeights([masked.layers[1]!.getWeights()[0]!, tf.tensor1d([-Infinity, 0, 0, 0])]);
    const before = masked.getWeights().map((w) => Array.from(w.dataSync()));
    const d = new Distiller({ teacher: p.teacher, student: masked, alpha: 1, explanationAlignment: { inputGradient: { weight: 1 } } });
    await expect(d.fit(p.x, p.y, { epochs: 1, batchSize: 32, verbose: 'quiet' })).rejects.toThrow(NonFiniteLossError);
    expect(masked.getWeights().map((w) => Array.from(w.dataSync()))).toEqual(before);
    p.x.dispose();
    p.teacher.dispose();
    masked.dispose();
  });

  it('rejects bad options, naming the argument', () => {
    const teacher = conv(6, 1, 4, 3, 9, 'max', 'tconv'), student = conv(6, 1, 2, 3, 1, undefined, 'sconv');
    const fnTeacher = (v: tf.Tensor) => teacher.apply(v) as tf.Tensor;
    const make = (explanationAlignment: unknown, t: tf.LayersModel | typeof fnTeacher = teacher) =>
      () => new Distiller({ teacher: t, student, explanationAlignment: explanationAlignment as never });
    const pairs = [{ teacher: 'tconv', student: 'sconv' }];
    const cases: Array<[unknown, ErrorConstructor, RegExp]> = [
      [3, TypeError, /^explanationAlignment must be an object/],
      [{ inputGradients: { weight: 1 } }, TypeError, /unknown option 'inputGradients'; did you mean 'inputGradient'\?/],
      [{ inputGradient: { wieght: 1 } }, TypeError, /inputGradient: unknown option 'wieght'; did you mean 'weight'\?/],
      [{ inputGradient: 1 }, TypeError, /explanationAlignment\.inputGradient must be an object/],
      [{ inputGradient: {} }, TypeError, /explanationAlignment\.inputGradient\.weight must be a number or a function/],
      [{ inputGradient: { weight: -1 } }, RangeError, /explanationAlignment\.inputGradient\.weight must be finite and >= 0, got -1/],
      [{ inputGradient: { weight: NaN } }, RangeError, /explanationAlignment\.inputGradient\.weight/],
      [{ attentionTransfer: { weight: Infinity, pairs } }, RangeError, /explanationAlignment\.attentionTransfer\.weight/],
      [{ attentionTransfer: { weight: 1 } }, TypeError, /explanationAlignment\.attentionTransfer\.pairs must be an array/],
      [{ attentionTransfer: { weight: 1, pairs: [] } }, RangeError, /explanationAlignment\.attentionTransfer\.pairs must name at least one/],
      [{ attentionTransfer: { weight: 1, pairs, p: 0 } }, RangeError, /explanationAlignment\.attentionTransfer\.p must be finite and > 0, got 0/],
      [{ attentionTransfer: { weight: 1, pairs, p: '2' } }, TypeError, /explanationAlignment\.attentionTransfer\.p must be a number/],
      [{ attentionTransfer: { weight: 1, pairs, p: null } }, TypeError, /explanationAlignment\.attentionTransfer\.p must be a number, got null/],
      [{ attentionTransfer: { weight: 1, pairs: [{ teacher: 'nope', student: 'sconv' }] } }, RangeError, /pairs\[0\]\.teacher: no layer named 'nope' in the teacher/],
      [{ attentionTransfer: { weight: 1, pairs: [pairs[0], { teacher: 'tconv', student: 'x' }] } }, RangeError, /pairs\[1\]\.student: no layer named 'x' in the student/],
      [{ attentionTransfer: { weight: 1, pairs: [{ teacher: 'tconv', student: 3 }] } }, TypeError, /pairs\[0\]\.student must be a layer name/],
      // the teacher's pooled output is 2x2, the student's conv output 4x4
      [{ attentionTransfer: { weight: 1, pairs: [{ teacher: teacher.layers[1]!.name, student: 'sconv' }] } }, RangeError, /pairs\[0\] \(teacher '.*', student 'sconv'\): spatial sizes must match, got teacher \[2, 2\] and student \[4, 4\]/],
      [{ attentionTransfer: { weight: 1, pairs: [{ teacher: teacher.layers[3]!.name, student: 'sconv' }] } }, RangeError, /must output \[N, \.\.\.spatial, C\]/],
    ];
    for (const [opts, type, re] of cases) {
      expect(make(opts), JSON.stringify(opts)).toThrow(type);
      expect(make(opts), JSON.stringify(opts)).toThrow(re);
    }
    expect(make({ attentionTransfer: { weight: 1, pairs } }, fnTeacher)).toThrow(TypeError);
    expect(make({ attentionTransfer: { weight: 1, pairs } }, fnTeacher)).toThrow(/attentionTransfer needs the teacher as a tf\.LayersModel/);
    teacher.dispose();
    student.dispose();
  });

  it('a schedule giving a bad weight is reported with its epoch; no tensors leak across fits', async () => {
    const x = tf.randomNormal([24, 6, 6, 1], 0, 1, 'float32', 6), y = Array.from({ length: 24 }, (_, i) => i % 3);
    const teacher = conv(6, 1, 4, 3, 9, undefined, 'tconv'), student = conv(6, 1, 2, 3, 1, undefined, 'sconv');
    const bad = new Distiller({ teacher, student, explanationAlignment: { inputGradient: { weight: (e) => (e === 0 ? 1 : -1) } } });
    await expect(bad.fit(x, y, { epochs: 2, batchSize: 12, verbose: 'quiet' })).rejects.toThrow(/explanationAlignment\.inputGradient\.weight at epoch 1 must be finite and >= 0/);
    const d = new Distiller({
      teacher, student, learningRate: 0.01,
      explanationAlignment: { inputGradient: { weight: 0.5 }, attentionTransfer: { weight: 2, pairs: [{ teacher: 'tconv', student: 'sconv' }] } },
    });
    await d.fit(x, y, { epochs: 1, batchSize: 12, verbose: 'quiet' });  // the optimizer creates its state here
    const before = tf.memory().numTensors;
    const h = await d.fit(x, y, { epochs: 2, batchSize: 12, verbose: 'quiet' });
    expect(tf.memory().numTensors).toBe(before);
    expect(h.epochs[1]!.alignmentLoss).toBeGreaterThan(0);
    expect(h.epochs[1]!.loss).toBeGreaterThan(h.epochs[1]!.alignmentLoss!);
    x.dispose();
    teacher.dispose();
    student.dispose();
  });
});
