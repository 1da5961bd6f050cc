/** Options and results of the kernel API. Tensors are row-major float32 `[rows, cols]`. */

export type Reduction = 'mean' | 'sum' | 'none';
export type Divergence = 'kl' | 'reverse-kl' | 'jsd';

export interface DistillationLossOptions {
  /** Student logits `s`, `[rows, cols]`. */
  student: Float32Array;
  /** Teacher logits `t`, `[rows, cols]`. */
  teacher: Float32Array;
  rows: number;
  cols: number;
  /** Integer class labels, one per row. Without labels the hard-label term is absent (as if `alpha = 1`). */
  labels?: Int32Array | ArrayLike<number>;
  /** Softening temperature `T > 0` (default 1). */
  temperature?: number;
  /**
   * Weight of the soft (distillation) term, in [0, 1] (default 0.5):
   * `L = alpha * T^2 * D(p, q) + (1 - alpha) * CE(y, softmax(s))`.
   * This is Hinton et al.'s and most PyTorch code's convention; the Keras distillation example puts
   * its `alpha` on the hard (student) loss instead, so Keras `alpha = a` is kdfuse `alpha = 1 - a`.
   */
  alpha?: number;
  /** Multiply the soft term by `T^2` (default true; Liger, TRL and Megatron leave it out). */
  scaleByTemperatureSquared?: boolean;
  /** Label smoothing `eps` in [0, 1) for the hard term (default 0). */
  labelSmoothing?: number;
  /** Rows whose label equals this contribute nothing and get no gradient (default -100). */
  ignoreIndex?: number;
  /** `mean` over rows not ignored (all ignored gives 0), `sum`, or `none` (per row). Default `mean`. */
  reduction?: Reduction;
  /** `kl` = KL(p || q) (default), `reverse-kl` = KL(q || p), `jsd` = beta KL(p || m) + (1 - beta) KL(q || m). */
  divergence?: Divergence;
  /** JSD mixing weight in [0, 1], m = beta p + (1 - beta) q (default 0.5). */
  beta?: number;
  /** Upstream gradient: a number for `mean`/`sum`, or one per row (Float32Array) for `none`. Default 1. */
  gradOutput?: number | Float32Array;
  /** Compute the gradient with respect to the student logits (default true). */
  computeStudentGrad?: boolean;
  /** Compute the gradient with respect to the teacher logits (default false; for online distillation). */
  computeTeacherGrad?: boolean;
  /** Caller-owned output arrays, to avoid allocation. They may be longer than needed. */
  out?: { gradStudent?: Float32Array; gradTeacher?: Float32Array; losses?: Float32Array };
}

export interface DistillationLossResult {
  /** The reduced loss (`mean` or `sum`); with `none`, the sum of `losses`. */
  loss: number;
  /** Per-row losses, with reduction `none`. */
  losses?: Float32Array;
  /** dL/ds, `[rows, cols]`, unless `computeStudentGrad: false`. */
  gradStudent?: Float32Array;
  /** dL/dt, `[rows, cols]`, when `computeTeacherGrad: true`. */
  gradTeacher?: Float32Array;
}

export interface KlDivergenceOptions {
  teacher: Float32Array;
  student: Float32Array;
  rows: number;
  cols: number;
  temperature?: number;
  reduction?: Reduction;
  /** Multiply by `T^2` (default false here: this is the plain divergence). */
  scaleByTemperatureSquared?: boolean;
  divergence?: Divergence;
  beta?: number;
  out?: { losses?: Float32Array };
}

export interface KlDivergenceResult {
  loss: number;
  losses?: Float32Array;
}

export interface SoftmaxOptions {
  logits: Float32Array;
  rows: number;
  cols: number;
  temperature?: number;
  out?: Float32Array;
}

export interface SoftmaxBackwardOptions {
  /** The forward output (softmax probabilities, or log-probabilities for the log-softmax). */
  output: Float32Array;
  /** Upstream gradient with respect to that output. */
  gradOutput: Float32Array;
  rows: number;
  cols: number;
  temperature?: number;
  out?: Float32Array;
}

export type BackendName = 'native-avx2' | 'native-generic' | 'reference';

export interface BackendInfo {
  name: BackendName;
  /** Threads the native kernels use (1 for the reference backend). */
  threads: number;
  /** Why this backend was chosen (for the reference backend: why the addon is not in use). */
  reason: string;
  cuda: { built: boolean; available: boolean; device?: string; reason: string };
}
