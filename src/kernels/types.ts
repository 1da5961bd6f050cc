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
  /**
   * Caller-owned output arrays, to avoid allocation. They may be longer than needed. A call that
   * fails never leaves a partial result in them: the async calls write them only on success, and a
   * sync call that meets bad data (NaN, an all -Infinity row, a temperature overflow) after it wrote
   * earlier rows fills them with NaN.
   */
  out?: { gradStudent?: Float32Array; gradTeacher?: Float32Array; losses?: Float32Array };
}

/**
 * How an async kernel call holds its inputs (the second argument of distillationLossAsync,
 * klDivergenceAsync, topkDistillationLossAsync and linearDistillationLossAsync).
 */
export interface AsyncCallOptions {
  /**
   * By default an async call copies its input arrays before it returns, so the caller may change or
   * reuse them at once; for large inputs that copy is a large part of the call. With `borrowInputs:
   * true` the worker reads the caller's arrays in place instead, and **the caller promises not to
   * write to, transfer or resize them until the Promise settles** (reading them is fine). Breaking the
   * promise never crashes the process: the memory is held alive for the call (a transfer cannot free
   * it); writes during the call give a result computed from a mix of old and new values, which kdfuse
   * cannot detect; a detach (transfer) it does detect, and the Promise then rejects with a TypeError
   * naming the input instead of resolving with a result. Honoured where the addon was built against
   * the running Node's own headers (`bufferCacheInfo().releasedBy === 'gc'`); elsewhere, for
   * calls small enough to run inline, and for arrays over a resizable ArrayBuffer (which can shrink
   * under the worker), the inputs are handled as without it. Labels and teacher indices are always
   * copied (they are small). Default false.
   */
  borrowInputs?: boolean;
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

/** `cuda`: the Float32Array API runs on a CUDA device (copying in and out); otherwise the CPU. */
export type BackendName = 'cuda' | 'native-avx2' | 'native-generic' | 'reference';

/** Where the Float32Array API runs (setDevice): 'auto' = the CUDA device when one is usable. */
export type DeviceSetting = 'cpu' | 'cuda' | 'auto';

export interface CudaInfo {
  /** The addon was built with the CUDA kernels. */
  built: boolean;
  /** A usable CUDA device was found (kd.cuda works). */
  available: boolean;
  /** The Float32Array API runs on the device (available, and setDevice is not 'cpu'). */
  active: boolean;
  /** The device, e.g. "NVIDIA H100 80GB HBM3 (compute capability 9.0)", when one was found. */
  device?: string;
  /** Why CUDA is not available or not in use; when in use, says so. */
  reason: string;
}

export interface BackendInfo {
  name: BackendName;
  /** Threads the native CPU kernels use (1 for the reference backend). */
  threads: number;
  /** Why this backend was chosen (for the reference backend: why the addon is not in use). */
  reason: string;
  /**
   * The fused head's matrix product on the CPU: a BLAS found when the addon was built ('openblas',
   * 'blis', 'apple'), kdfuse's own ('kdfuse-avx2', 'kdfuse-generic'), or 'reference' (plain loops).
   */
  gemm: string;
  cuda: CudaInfo;
}

/**
 * Data held in CUDA device memory (kd.cuda.upload). The memory is freed by `dispose()`, or when the
 * object is garbage-collected; dispose arrays you are done with rather than wait for the collector.
 */
export interface DeviceArray<T extends Float32Array | Int32Array = Float32Array | Int32Array> {
  /** Elements held (unchanged by dispose). */
  readonly length: number;
  readonly dtype: T extends Int32Array ? 'int32' : 'float32';
  readonly disposed: boolean;
  /** Copies the data to a new host array. */
  download(): T;
  /** Frees the device memory now; later use of the array throws. Calling it again does nothing. */
  dispose(): void;
}

export type CudaOutputName = 'gradStudent' | 'gradTeacher' | 'losses';

/** kd.cuda.distillationLoss: the options of kd.distillationLoss, with the data on the device. */
export interface CudaDistillationLossOptions
  extends Omit<DistillationLossOptions, 'student' | 'teacher' | 'labels' | 'gradOutput' | 'out'> {
  student: DeviceArray<Float32Array>;
  teacher: DeviceArray<Float32Array>;
  labels?: DeviceArray<Int32Array>;
  /** A number, or with reduction 'none' one per row as a float32 DeviceArray of `rows` elements. */
  gradOutput?: number | DeviceArray<Float32Array>;
  /**
   * Outputs to copy back to the host as Float32Arrays; the others stay on the device as
   * DeviceArrays. 'gradTeacher' needs computeTeacherGrad, 'losses' needs reduction 'none'.
   */
  download?: readonly CudaOutputName[];
  /** Device arrays (float32, exact size) to write the outputs into instead of new ones, for repeated calls. */
  out?: { gradStudent?: DeviceArray<Float32Array>; gradTeacher?: DeviceArray<Float32Array>; losses?: DeviceArray<Float32Array> };
}

export interface CudaDistillationLossResult {
  loss: number;
  /** With reduction 'none'. */
  losses?: DeviceArray<Float32Array> | Float32Array;
  gradStudent?: DeviceArray<Float32Array> | Float32Array;
  gradTeacher?: DeviceArray<Float32Array> | Float32Array;
}
