/**
 * Loads the addon once. Importing kdfuse never throws: when the addon is missing, fails to load or
 * is switched off with KDFUSE_BACKEND=reference, `nativeAddon` is null and `nativeLoadReason` says why.
 */
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CudaInfo, DeviceArray, DeviceSetting } from './types.js';

/** The process-wide cache of memory for large results (native/addon/output_buffers.h). */
export interface BufferCacheInfo {
  limitBytes: number;
  cachedBytes: number;
  cachedBlocks: number;
  hits: number;
  misses: number;
  /** Bytes of results handed out whose memory JavaScript has not released yet. */
  pendingBytes: number;
  /** Results made as ordinary V8 buffers because pendingBytes had reached half the limit (results kept, or not yet released). */
  declined: number;
  /**
   * Full garbage collections kdfuse asked V8 for, to bring dropped results back before a call would
   * otherwise take fresh memory (only when `releasedBy` is `'gc'`; fewer when results are kept).
   */
  collections: number;
  /**
   * What the latest such collection took, in ms (absent before the first). A collection is asked for
   * only while it costs less than half of what fresh pages for the result would (`freshMsPerMiB`).
   */
  collectionMs?: number;
  /** What the latest fresh (not reused) result block cost to map, per MiB, in ms (absent before the first). */
  freshMsPerMiB?: number;
  /**
   * `'gc'`: a dropped result's memory returns to the cache during garbage collection, so a loop that
   * never awaits reuses it too (the addon was built against this Node's own headers). `'task'`: it
   * returns from a task after the collection (Node-API finalizers), so only a loop that yields
   * reuses it. See docs/design.md, "Result memory".
   */
  releasedBy: 'gc' | 'task';
}

/**
 * The distillation loss's arguments by name, in the order of the addon's positional entry
 * distillationLossArgs (native/addon/args.cpp, kDistillArgs).
 */
export const DISTILL_ARG_NAMES = [
  'student', 'teacher', 'rows', 'cols', 'labels', 'temperature', 'alpha', 'scaleByTemperatureSquared', 'labelSmoothing',
  'ignoreIndex', 'reduction', 'divergence', 'beta', 'gradOutput', 'computeStudentGrad', 'computeTeacherGrad', 'out',
] as const;

/**
 * The top-k distillation loss's arguments by name, in the order of the addon's positional entry
 * topkDistillationLossArgs (native/addon/topk_binding.cpp, kTopkArgs).
 */
export const TOPK_ARG_NAMES = [
  'student', 'rows', 'cols', 'k', 'teacherIndices', 'teacherLogprobs', 'missingMass', 'teacherValues', 'labels',
  'temperature', 'alpha', 'scaleByTemperatureSquared', 'labelSmoothing', 'ignoreIndex', 'reduction', 'divergence', 'beta',
  'gradOutput', 'computeStudentGrad', 'out',
] as const;

/**
 * The fused head's arguments by name, in the order of the addon's positional entry
 * linearDistillationLossArgs (native/addon/linear_binding.cpp, kLinearArgs).
 */
export const LINEAR_ARG_NAMES = [
  'hidden', 'weight', 'bias', 'rows', 'dim', 'cols', 'teacher', 'k', 'teacherIndices', 'teacherLogprobs', 'missingMass',
  'teacherValues', 'labels', 'temperature', 'alpha', 'scaleByTemperatureSquared', 'labelSmoothing', 'ignoreIndex',
  'reduction', 'divergence', 'beta', 'gradOutput', 'computeHiddenGrad', 'computeWeightGrad', 'out',
] as const;

export type LinearNativeResult = {
  loss: number; losses?: Float32Array; gradHidden?: Float32Array; gradWeight?: Float32Array; gradBias?: Float32Array;
};

export type TopkNativeResult = { loss: number; losses?: Float32Array; gradStudent?: Float32Array };

/** The addon's exports (native/addon). Arguments are checked again on that side. */
export interface NativeAddon {
  softmax(o: object): Float32Array;
  softmaxAsync(o: object): Promise<Float32Array>;
  softmaxBackward(o: object): Float32Array;
  softmaxBackwardAsync(o: object): Promise<Float32Array>;
  distillationLoss(o: object): { loss: number; losses?: Float32Array; gradStudent?: Float32Array; gradTeacher?: Float32Array };
  /** distillationLoss with the options as 17 positional arguments (native/addon DistillValues' order): no property reads. */
  distillationLossArgs(
    student: Float32Array, teacher: Float32Array, rows: number, cols: number, labels: Int32Array | undefined,
    temperature: number, alpha: number, scaleByTemperatureSquared: boolean, labelSmoothing: number, ignoreIndex: number,
    reduction: string, divergence: string, beta: number, gradOutput: number | Float32Array, computeStudentGrad: boolean,
    computeTeacherGrad: boolean, out: object | undefined,
  ): { loss: number; losses?: Float32Array; gradStudent?: Float32Array; gradTeacher?: Float32Array };
  distillationLossAsync(o: object, borrowInputs?: boolean): Promise<{ loss: number; losses?: Float32Array; gradStudent?: Float32Array; gradTeacher?: Float32Array }>;
  /** The top-k loss with its options as 20 positional arguments in TOPK_ARG_NAMES' order. */
  topkDistillationLossArgs(
    student: Float32Array, rows: number, cols: number, k: number, teacherIndices: Int32Array, teacherLogprobs: Float32Array,
    missingMass: string, teacherValues: string, labels: Int32Array | undefined, temperature: number, alpha: number,
    scaleByTemperatureSquared: boolean, labelSmoothing: number, ignoreIndex: number, reduction: string, divergence: string,
    beta: number, gradOutput: number | Float32Array, computeStudentGrad: boolean, out: object | undefined,
  ): TopkNativeResult;
  topkDistillationLoss(o: object): TopkNativeResult;
  topkDistillationLossAsync(o: object, borrowInputs?: boolean): Promise<TopkNativeResult>;
  /** The fused head with its options as 25 positional arguments in LINEAR_ARG_NAMES' order; absent from older builds. */
  linearDistillationLossArgs?(
    hidden: Float32Array, weight: Float32Array, bias: Float32Array | undefined, rows: number, dim: number, cols: number,
    teacher: Float32Array | undefined, k: number | undefined, teacherIndices: Int32Array | undefined,
    teacherLogprobs: Float32Array | undefined, missingMass: string | undefined, teacherValues: string | undefined,
    labels: Int32Array | undefined, temperature: number, alpha: number, scaleByTemperatureSquared: boolean,
    labelSmoothing: number, ignoreIndex: number, reduction: string, divergence: string, beta: number,
    gradOutput: number | Float32Array, computeHiddenGrad: boolean, computeWeightGrad: boolean, out: object | undefined,
  ): LinearNativeResult;
  linearDistillationLoss?(o: object): LinearNativeResult;
  linearDistillationLossAsync?(o: object, borrowInputs?: boolean): Promise<LinearNativeResult>;
  /** For the benchmark: C = op(A) op(B) by the head's GEMM, or by a plain triple loop with `plain: true`. */
  benchSgemm?(o: { transA?: boolean; transB?: boolean; m: number; n: number; k: number; a: Float32Array; b: Float32Array; c: Float32Array; plain?: boolean; builtin?: boolean }): void;
  streamTriad(o: { a: Float32Array; b: Float32Array; c: Float32Array; scalar?: number }): void;
  setThreads(n: number): void;
  setBufferCache(bytes: number): void;
  setSimd(s: 'auto' | 'generic' | 'avx2'): void;
  /** Throws (and changes nothing) for 'cuda' without a usable device. */
  setDevice(d: DeviceSetting): void;
  info(): {
    simd: 'avx2' | 'generic';
    cpuHasAvx2: boolean;
    threads: number;
    defaultThreads: number;
    chunk: number;
    /** The fused head's GEMM: a BLAS found at build time ('openblas', 'blis', 'apple', ...) or kdfuse's own ('kdfuse-avx2', 'kdfuse-generic'); absent from older builds. */
    gemm?: string;
    /** Where the Float32Array entry points run now. */
    device: 'cpu' | 'cuda';
    deviceSetting: DeviceSetting;
    cuda: CudaInfo;
    bufferCache: BufferCacheInfo;
  };
  /** The class of the objects cudaUpload returns; not constructible from JavaScript. */
  DeviceArray: abstract new () => DeviceArray;
  cudaUpload(data: Float32Array | Int32Array): DeviceArray;
  cudaDistillationLoss(o: object): {
    loss: number;
    losses?: DeviceArray | Float32Array;
    gradStudent?: DeviceArray | Float32Array;
    gradTeacher?: DeviceArray | Float32Array;
  };
  /** Integrated-gradients helpers (native/core/ig.h); absent from an addon built before them. */
  igInterpolate?(o: IgInterpolateArgs): void;
  igAccumulate?(o: IgAccumulateArgs): void;
}

/** out[q*F+f] = b[br*F+f] + alpha[q] * (x[xr*F+f] - b[br*F+f]), xr = xRow[q], br = baselineRow[q]. */
export interface IgInterpolateArgs {
  x: Float32Array; baselines: Float32Array; features: number; xRow: Int32Array; baselineRow: Int32Array; alpha: Float64Array; out: Float32Array;
}
/** acc[xr*F+f] += weight[q] * grad[q*F+f] * (x[xr*F+f] - b[br*F+f]), points in order. */
export interface IgAccumulateArgs {
  grad: Float32Array; x: Float32Array; baselines: Float32Array; features: number; xRow: Int32Array; baselineRow: Int32Array; weight: Float64Array; acc: Float64Array;
}

/** The package's root folder: the nearest parent of this module with kdfuse's package.json. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'kdfuse') return dir;
      } catch {
        // unreadable package.json: keep looking upwards
      }
    }
    const up = dirname(dir);
    if (up === dir) return dirname(fileURLToPath(import.meta.url));
    dir = up;
  }
}

export const ADDON_RELATIVE_PATH = join('build', 'Release', 'kdfuse.node');
/** What scripts/build-addon.cjs decided and why (kept beside build/, which node-gyp deletes). */
export const BUILD_STATUS_RELATIVE_PATH = join('build-info', 'kdfuse-build.json');

/** The install's record of the native build (build-info/kdfuse-build.json), or null when no build ran. */
export interface BuildStatus {
  ok: boolean;
  build: 'cmake-js' | 'node-gyp' | 'none';
  /** Why the addon is missing (or 'built'). */
  reason: string;
  /** What to do about it, or null. */
  fix: string | null;
  /** The compilers' output. */
  log: string;
  seconds: number;
  tests: boolean;
  cuda: { requested: boolean; built: boolean; reason: string } | null;
}

export function readBuildStatus(root = packageRoot()): BuildStatus | null {
  try {
    return JSON.parse(readFileSync(join(root, BUILD_STATUS_RELATIVE_PATH), 'utf8')) as BuildStatus;
  } catch {
    return null;
  }
}

/** Why the addon file is missing, with the fix: from the install's record in `root`, or why there is none. */
export function missingAddonReason(root: string, path = join(root, ADDON_RELATIVE_PATH)): string {
  const status = readBuildStatus(root);
  if (status && !status.ok) {
    return `the native addon was not built: ${status.reason}. Fix: ${status.fix ?? 'run `npx kdfuse rebuild`'} (build log: ${status.log})`;
  }
  return `the native addon was not built (${path} is missing) and no build was recorded: the install script did not run. ` +
    'npm 11 runs a dependency\'s install script only once approved: run `npm install-scripts approve kdfuse`, then ' +
    '`npx kdfuse rebuild` (or `npm rebuild kdfuse`); `--ignore-scripts` also skips it';
}

function load(): { addon: NativeAddon | null; reason: string } {
  const forced = process.env.KDFUSE_BACKEND;
  if (forced === 'reference') return { addon: null, reason: 'KDFUSE_BACKEND=reference is set' };
  const path = join(packageRoot(), ADDON_RELATIVE_PATH);
  if (!existsSync(path)) return { addon: null, reason: missingAddonReason(packageRoot(), path) };
  try {
    const require = createRequire(import.meta.url);
    return { addon: require(path) as NativeAddon, reason: 'native addon loaded' };
  } catch (e) {
    return {
      addon: null,
      reason: `the native addon at ${path} failed to load: ${(e as Error).message}; run \`npx kdfuse rebuild\``,
    };
  }
}

const loaded = load();
export const nativeAddon: NativeAddon | null = loaded.addon;
export const nativeLoadReason: string = loaded.reason;
