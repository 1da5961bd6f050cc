/** Which backend runs the kernels, and its settings. */
import { nativeAddon, nativeLoadReason, type NativeAddon } from './native.js';
import type { BackendInfo } from './types.js';
import { describe } from './validate.js';

let warned = false;

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
      cuda: { built: false, available: false, reason: 'the native addon is not in use' },
    };
  }
  const info = nativeAddon.info();
  return {
    name: info.simd === 'avx2' ? 'native-avx2' : 'native-generic',
    threads: info.threads,
    reason: info.simd === 'avx2' ? 'native addon loaded; the CPU has AVX2 and FMA'
      : info.cpuHasAvx2 ? 'native addon loaded; portable loops selected with setSimd' : 'native addon loaded; the CPU lacks AVX2/FMA, using the portable loops',
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
