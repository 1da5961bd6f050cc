/** Which backend runs the kernels, and its settings. */
import { asDeviceError, DeviceUnavailableError } from './errors.js';
import { nativeAddon, nativeLoadReason, type BufferCacheInfo, type NativeAddon } from './native.js';
import type { BackendInfo, DeviceSetting } from './types.js';
import { describe } from './validate.js';

let warned = false;

/**
 * Async calls of at most this many elements (rows * cols) compute on the calling thread and return
 * a settled Promise: handing a call to a worker thread and back costs 30-50 µs here, more than such
 * a call's whole work (256 x 10 takes about 40 µs synchronously).
 */
export const INLINE_ASYNC_MAX_ELEMENTS = 16384;
export const runsInline = (rows: number, cols: number): boolean => rows * cols <= INLINE_ASYNC_MAX_ELEMENTS;

/** The addon, or null after saying once (on stderr) why the reference backend is used. */
export function native(): NativeAddon | null {
  if (nativeAddon) return nativeAddon;
  if (!warned && process.env.KDFUSE_BACKEND !== 'reference') {
    warned = true;
    process.emitWarning(`kdfuse is using its plain-TypeScript reference backend: ${nativeLoadReason}`, 'KdfuseWarning');
  }
  return null;
}

export function backend(): BackendInfo {
  if (!nativeAddon) {
    return {
      name: 'reference',
      threads: 1,
      reason: nativeLoadReason,
      gemm: 'reference',
      cuda: { built: false, available: false, active: false, reason: `the native addon is not in use (${nativeLoadReason})` },
    };
  }
  const info = nativeAddon.info();
  const gemm = info.gemm ?? (info.simd === 'avx2' ? 'kdfuse-avx2' : 'kdfuse-generic');
  if (info.device === 'cuda') {
    return {
      name: 'cuda',
      threads: info.threads,
      reason: `native addon loaded; the kernels run on the CUDA device ${info.cuda.device ?? ''} (inputs and outputs are copied; ` +
        "kd.cuda keeps data on the device; setDevice('cpu') runs them on the CPU)",
      gemm,
      cuda: info.cuda,
    };
  }
  return {
    name: info.simd === 'avx2' ? 'native-avx2' : 'native-generic',
    threads: info.threads,
    reason: info.simd === 'avx2' ? 'native addon loaded; the CPU has AVX2 and FMA'
      : info.cpuHasAvx2 ? 'native addon loaded; portable loops selected with setSimd' : 'native addon loaded; the CPU lacks AVX2/FMA, using the portable loops',
    gemm,
    cuda: info.cuda,
  };
}

/**
 * Threads the native kernels use in this thread's environment (each worker_thread has its own).
 * `0` restores the default: every core this process may run on. Results do not depend on it.
 */
export function setThreads(n: number): void {
  if (typeof n !== 'number') throw new TypeError(`threads must be a number, got ${describe(n)}`);
  if (!Number.isInteger(n) || n < 0 || n > 256) {
    throw new RangeError(`threads must be an integer in [0, 256] (0 = all available cores), got ${String(n)}`);
  }
  nativeAddon?.setThreads(n);
}

/**
 * The most bytes of released large results (1 MiB and up) the native addon keeps to hand out again
 * (default 1 GiB; 0 turns the cache off and frees what it holds). Fresh memory costs a page fault per
 * 4 KiB on first write, which at 2048 x 32000 took longer than the kernel; a loop that drops its
 * results and awaits anything between calls gets the same memory back instead. The same limit bounds
 * the large results handed out and not yet released (Node releases them only after the current
 * task): past it, as in a long loop that never yields, results are ordinary V8 buffers, so memory
 * stays bounded. The cache is shared by every thread of the process. No effect on the reference
 * backend.
 */
export function setBufferCacheLimit(bytes: number): void {
  if (typeof bytes !== 'number') throw new TypeError(`bytes must be a number, got ${describe(bytes)}`);
  if (!Number.isSafeInteger(bytes) || bytes < 0) throw new RangeError(`bytes must be an integer >= 0, got ${String(bytes)}`);
  nativeAddon?.setBufferCache(bytes);
}

/** The native addon's result-memory cache: limit, what it holds, hits and misses (null without the addon). */
export function bufferCacheInfo(): BufferCacheInfo | null {
  return nativeAddon ? nativeAddon.info().bufferCache : null;
}

/**
 * Chooses the native vector loops: 'auto' (AVX2+FMA where the CPU has them), or 'generic' (the
 * portable loops, for comparison and testing). No effect on the reference backend.
 */
export function setSimd(mode: 'auto' | 'generic'): void {
  if (typeof mode !== 'string') throw new TypeError(`mode must be one of 'auto', 'generic', got ${describe(mode)}`);
  if (mode !== 'auto' && mode !== 'generic') {
    throw new RangeError(`mode must be one of 'auto', 'generic', got '${String(mode)}'`);
  }
  nativeAddon?.setSimd(mode);
}

const DEVICES = ['cpu', 'cuda', 'auto'] as const;

/**
 * Where the kernels of the Float32Array API run in this thread's environment (each worker_thread has
 * its own): 'auto' (the default) uses the CUDA device when one is usable and the CPU otherwise;
 * 'cpu' always the CPU; 'cuda' the device, and throws a DeviceUnavailableError (changing nothing) when there is none.
 * The device-resident kd.cuda API is not affected.
 */
export function setDevice(device: DeviceSetting): void {
  const list = DEVICES.map((d) => `'${d}'`).join(', ');
  if (typeof device !== 'string') throw new TypeError(`device must be one of ${list}, got ${describe(device)}`);
  if (!(DEVICES as readonly string[]).includes(device)) throw new RangeError(`device must be one of ${list}, got '${String(device)}'`);
  if (!nativeAddon) {
    if (device === 'cuda') {
      throw new DeviceUnavailableError(`setDevice('cuda'): no CUDA device (the native addon is not in use: ${nativeLoadReason}); ` +
        'the kernels run on the reference backend');
    }
    return;
  }
  try {
    nativeAddon.setDevice(device);
  } catch (e) {
    throw asDeviceError(e);
  }
}
