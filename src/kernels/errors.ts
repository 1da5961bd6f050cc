import { describe } from './validate.js';

/**
 * The one error class of the kernels that is not a TypeError / RangeError: the arguments were
 * fine, but the machine has no usable CUDA device (or the addon was built without CUDA). Its
 * message says why, as the addon reports it; `instanceof DeviceUnavailableError` lets a program
 * fall back to the CPU without matching message text.
 */
export class DeviceUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(typeof message === 'string' ? message : describe(message), options);  // a non-string must not make it throw
    this.name = 'DeviceUnavailableError';
  }
}

/** The addon's "no device" errors (plain Errors thrown in C++) as DeviceUnavailableError; others unchanged. */
export function asDeviceError(e: unknown): unknown {
  const m = e instanceof Error ? e.message : '';
  if (e instanceof DeviceUnavailableError) return e;
  // setDevice's messages carry its name first, in both forms (no device; built without CUDA)
  if (/^(setDevice\('cuda'\): )?(no CUDA device|kdfuse was built without CUDA)/.test(m)) return new DeviceUnavailableError(m, { cause: e });
  return e;
}
