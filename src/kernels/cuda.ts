/**
 * kd.cuda: the device-resident API. Upload student and teacher logits once, run the fused loss as
 * often as needed, and copy back only what is asked for; everything else stays in device memory.
 *
 * Arguments are checked here first, with the addon's messages (TypeError / RangeError naming the
 * argument), whatever the machine. A call that then needs a device throws a DeviceUnavailableError
 * saying why there is none: `no CUDA device (<reason>)`, or `kdfuse was built without CUDA (...)`.
 */
import { backend } from './backend.js';
import { asDeviceError, DeviceUnavailableError } from './errors.js';
import { DISTILL_ARG_NAMES, nativeAddon, nativeLoadReason, type NativeAddon } from './native.js';
import {
  checkKnownKeys, checkLength, checkTemperature, checkUnit, describe, isDetached, optionalBool, optionalChoice, optionalNumber, requireDim,
  requireInt32, requireObject, DIVERGENCES, REDUCTIONS,
} from './validate.js';
import type {
  CudaDistillationLossOptions, CudaDistillationLossResult, CudaInfo, CudaOutputName, DeviceArray,
} from './types.js';

/** The addon's DeviceArray class, where the addon is loaded and has the CUDA API. */
function deviceArrayClass(): NativeAddon['DeviceArray'] | undefined {
  return nativeAddon && typeof nativeAddon.DeviceArray === 'function' ? nativeAddon.DeviceArray : undefined;
}

function isDeviceArray(v: unknown): v is DeviceArray {
  const cls = deviceArrayClass();
  return cls !== undefined && v instanceof cls;
}

function describeValue(v: unknown): string {
  if (isDeviceArray(v)) return `${v.disposed ? 'a disposed' : v.dtype === 'int32' ? 'an' : 'a'} ${v.dtype} DeviceArray`;
  return describe(v);
}

/** The addon, or a DeviceUnavailableError saying why CUDA cannot be used. */
function requireCuda(): NativeAddon {
  if (!nativeAddon) throw new DeviceUnavailableError(`no CUDA device (the native addon is not in use: ${nativeLoadReason})`);
  if (typeof nativeAddon.cudaUpload !== 'function') {
    throw new DeviceUnavailableError('no CUDA device (the native addon predates the CUDA API; run `npx kdfuse rebuild`)');
  }
  return nativeAddon;
}

/** Runs an addon call that needs the device; its "no device" Error becomes a DeviceUnavailableError. */
function onDevice<T>(call: (addon: NativeAddon) => T): T {
  const addon = requireCuda();
  try {
    return call(addon);
  } catch (e) {
    throw asDeviceError(e);
  }
}

/** Whether a usable CUDA device was found (and the addon was built with CUDA). */
export function available(): boolean {
  return backend().cuda.available;
}

/** What backend().cuda says: whether CUDA was built, is available and in use, the device, and why not. */
export function info(): CudaInfo {
  return backend().cuda;
}

/** Copies `data` to a new device array (float32 or int32, as the input). */
export function upload(data: Float32Array): DeviceArray<Float32Array>;
export function upload(data: Int32Array): DeviceArray<Int32Array>;
export function upload(data: Float32Array | Int32Array): DeviceArray;
export function upload(data: Float32Array | Int32Array): DeviceArray {
  if (!(data instanceof Float32Array) && !(data instanceof Int32Array)) {
    throw new TypeError(`data must be a Float32Array or an Int32Array, got ${describe(data)}`);
  }
  if (isDetached(data)) {
    throw new TypeError(`data must be a usable ${data.constructor.name}, got one whose buffer was detached (transferred)`);
  }
  if (data.length === 0) throw new RangeError('data must have at least 1 element, got 0');
  return onDevice((a) => a.cudaUpload(data));
}

function requireDeviceArray(v: unknown, name: string, int32: boolean, want: number, what: string): DeviceArray {
  const dt = int32 ? 'an int32 DeviceArray' : 'a float32 DeviceArray';
  if (!isDeviceArray(v)) throw new TypeError(`${name} must be ${dt} (from kd.cuda.upload), got ${describeValue(v)}`);
  if ((v.dtype === 'int32') !== int32) throw new TypeError(`${name} must be ${dt}, got ${describeValue(v)}`);
  if (v.disposed) throw new TypeError(`${name} must be a DeviceArray that is not disposed, got a disposed one`);
  checkLength(name, v.length, want, false, what);
  return v;
}

const OUTPUTS = ['gradStudent', 'gradTeacher', 'losses'] as const;

/**
 * The fused distillation loss (kd.distillationLoss's options and results) on device arrays. The
 * outputs (gradStudent, unless computeStudentGrad is false; gradTeacher with computeTeacherGrad;
 * losses with reduction 'none') come back as DeviceArrays, or as Float32Arrays for those named in
 * `download`; `out` supplies device arrays to reuse. Runs synchronously on this thread.
 */
const CUDA_DISTILL_KEYS = [...DISTILL_ARG_NAMES, 'download'] as const;

export function distillationLoss(options: CudaDistillationLossOptions): CudaDistillationLossResult {
  // Shapes and options first, in the addon's order (native/addon/cuda_binding.cpp) ...
  const o = requireObject(options, 'options');
  checkKnownKeys(o, CUDA_DISTILL_KEYS, 'cuda.distillationLoss');
  const rows = requireDim(o.rows, 'rows');
  const cols = requireDim(o.cols, 'cols');
  const n = rows * cols;
  if (!Number.isSafeInteger(n)) throw new RangeError(`rows * cols is too large, got ${rows} * ${cols}`);
  const temperature = optionalNumber(o, 'temperature', 1);
  const alpha = optionalNumber(o, 'alpha', 0.5);
  optionalBool(o, 'scaleByTemperatureSquared', true);
  const labelSmoothing = optionalNumber(o, 'labelSmoothing', 0);
  requireInt32(o, 'ignoreIndex', -100);
  const reduction = optionalChoice(o, 'reduction', REDUCTIONS, 'mean');
  optionalChoice(o, 'divergence', DIVERGENCES, 'kl');
  const beta = optionalNumber(o, 'beta', 0.5);
  const wantGs = optionalBool(o, 'computeStudentGrad', true);
  const wantGt = optionalBool(o, 'computeTeacherGrad', false);
  checkTemperature(temperature);
  checkUnit('alpha', alpha);
  checkUnit('labelSmoothing', labelSmoothing, true);
  checkUnit('beta', beta);
  const wanted: Record<CudaOutputName, boolean> = { gradStudent: wantGs, gradTeacher: wantGt, losses: reduction === 'none' };

  const list = OUTPUTS.map((k) => `'${k}'`).join(', ');
  const download = new Set<CudaOutputName>();
  if (o.download !== undefined) {
    if (!Array.isArray(o.download)) throw new TypeError(`download must be an array of ${list}, got ${describe(o.download)}`);
    (o.download as unknown[]).forEach((e, i) => {
      if (typeof e !== 'string') throw new TypeError(`download[${i}] must be one of ${list}, got ${describe(e)}`);
      if (!(OUTPUTS as readonly string[]).includes(e)) throw new RangeError(`download[${i}] must be one of ${list}, got '${e}'`);
      download.add(e as CudaOutputName);
    });
  }
  if (download.has('gradStudent') && !wantGs) throw new RangeError("download includes 'gradStudent' but computeStudentGrad is false");
  if (download.has('gradTeacher') && !wantGt) {
    throw new RangeError("download includes 'gradTeacher' but computeTeacherGrad is false (set it to true to compute it)");
  }
  if (download.has('losses') && reduction !== 'none') {
    throw new RangeError(`download includes 'losses' but reduction is '${reduction}'; per-row losses come with reduction 'none'`);
  }

  const g = o.gradOutput;
  const gradRows = reduction === 'none' && g !== undefined && typeof g !== 'number';
  if (g !== undefined && !gradRows) {
    if (typeof g !== 'number') {
      throw new TypeError(
        `gradOutput must be a number (or a float32 DeviceArray of rows elements with reduction 'none'), got ${describeValue(g)}`);
    }
    if (!Number.isFinite(g)) throw new RangeError(`gradOutput must be a finite number, got ${String(g)}`);
  }

  // ... then the arrays.
  const inputs: [DeviceArray | undefined, string][] = [
    [requireDeviceArray(o.student, 'student', false, n, 'rows * cols'), 'student'],
    [requireDeviceArray(o.teacher, 'teacher', false, n, 'rows * cols'), 'teacher'],
    [o.labels === undefined || o.labels === null ? undefined : requireDeviceArray(o.labels, 'labels', true, rows, 'rows'), 'labels'],
    [gradRows ? requireDeviceArray(g, 'gradOutput', false, rows, 'rows') : undefined, 'gradOutput'],
  ];
  if (o.out !== undefined) {
    const ov = o.out;
    if (typeof ov !== 'object' || ov === null || Array.isArray(ov) || ArrayBuffer.isView(ov) || isDeviceArray(ov)) {
      throw new TypeError(`out must be an object such as { gradStudent: DeviceArray }, got ${describeValue(ov)}`);
    }
    const oo = ov as Record<string, unknown>;
    const seen: [DeviceArray, string][] = [];
    for (const k of OUTPUTS) {
      const v = oo[k];
      if (v === undefined || v === null) continue;
      const name = `out.${k}`;
      const a = requireDeviceArray(v, name, false, k === 'losses' ? rows : n, k === 'losses' ? 'rows' : 'rows * cols');
      if (!wanted[k]) continue;  // not computed: left alone
      for (const [input, inName] of inputs) {
        if (input === a) throw new RangeError(`${name} must not be the same DeviceArray as ${inName}`);
      }
      for (const [prev, prevName] of seen) {
        if (prev === a) throw new RangeError(`${name} must not be the same DeviceArray as ${prevName}`);
      }
      seen.push([a, name]);
    }
  }
  return onDevice((a) => a.cudaDistillationLoss(o)) as CudaDistillationLossResult;
}
