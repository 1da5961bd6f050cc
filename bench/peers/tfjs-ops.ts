/**
 * The loss as a tfjs user writes it today: composed from tfjs ops, its gradient by tf.valueAndGrad,
 * tensors made from the Float32Arrays and read back with dataSync, all inside the timed call.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type * as TF from '@tensorflow/tfjs';
import type { Output } from '../measure.js';
import { LOSS, type Data, type SuiteId } from '../workload.js';

export type Tfjs = typeof TF;
export type TfjsBackend = 'cpu' | 'wasm';

/** Loads @tensorflow/tfjs (never tfjs-node) and selects the backend; wasm runs its SIMD binary where Node has SIMD. */
export async function loadTfjs(backend: TfjsBackend): Promise<{ tf: Tfjs; info: Record<string, unknown> }> {
  const require = createRequire(import.meta.url);
  const tf = require('@tensorflow/tfjs') as Tfjs;
  const info: Record<string, unknown> = { tfjs: tf.version.tfjs, backend };
  if (backend === 'wasm') {
    const wasm = require('@tensorflow/tfjs-backend-wasm') as typeof import('@tensorflow/tfjs-backend-wasm');
    wasm.setWasmPaths(join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm')), '/'));
    info.simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
    info.threads = await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT');
  }
  if (!(await tf.setBackend(backend))) throw new Error(`tfjs backend '${backend}' failed to initialise`);
  await tf.ready();
  return { tf, info };
}

/**
 * alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(onehot(y), softmax(s)), mean over rows:
 * the composed loss of the README's "one-line swap" section, as tfjs users write it today.
 */
function distillLoss(tf: Tfjs, s: TF.Tensor2D, t: TF.Tensor2D, y: TF.Tensor1D): TF.Scalar {
  const T = LOSS.temperature, alpha = LOSS.alpha;
  const kl = tf.sum(tf.mul(tf.softmax(tf.div(t, T)), tf.sub(tf.logSoftmax(tf.div(t, T)), tf.logSoftmax(tf.div(s, T)))), 1);
  const ce = tf.neg(tf.sum(tf.mul(tf.oneHot(y, s.shape[1]), tf.logSoftmax(s)), 1));
  return tf.mean(tf.add(tf.mul(kl, alpha * T * T), tf.mul(ce, 1 - alpha)));
}

/** The timed call for a suite. */
export function tfjsCall(tf: Tfjs, suite: SuiteId, d: Data): () => Output {
  const { rows, cols } = d;
  const inputs = () => {
    const s = tf.tensor2d(d.student, [rows, cols]);
    const t = tf.tensor2d(d.teacher, [rows, cols]);
    const y = tf.tensor1d(d.labels, 'int32');
    return { s, t, y };
  };
  switch (suite) {
    case 'topk':
      throw new RangeError('tfjs has no top-k teacher loss (the tfjs peers skip that suite)');
    case 'loss':
      return () => {
        const { s, t, y } = inputs();
        const { value, grad } = tf.valueAndGrad((x: TF.Tensor) => distillLoss(tf, x as TF.Tensor2D, t, y))(s);
        const out = { loss: value.dataSync()[0]!, values: grad.dataSync() as Float32Array };
        tf.dispose([s, t, y, value, grad]);
        return out;
      };
    case 'forward':
      return () => {
        const { s, t, y } = inputs();
        const value = tf.tidy(() => distillLoss(tf, s, t, y));
        const out = { loss: value.dataSync()[0]! };
        tf.dispose([s, t, y, value]);
        return out;
      };
    case 'softmax':
      return () => {
        const x = tf.tensor2d(d.student, [rows, cols]);
        const p = tf.tidy(() => tf.softmax(tf.div(x, LOSS.temperature)));
        const out = { values: p.dataSync() as Float32Array };
        tf.dispose([x, p]);
        return out;
      };
  }
}
