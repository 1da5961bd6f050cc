/**
 * Without the addon (missing, failed to load), kdfuse runs on the reference backend, reports why in
 * backend(), and warns once — not on every call. The loader is replaced by one that found nothing.
 */
import { describe, expect, it, vi } from 'vitest';

vi.mock('../src/kernels/native.js', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../src/kernels/native.js')>()),  // the argument-name lists
  nativeAddon: null,
  nativeLoadReason: 'the native addon was not built (test); run `npx kdfuse rebuild` to build it',
}));

describe('fallback to the reference backend', () => {
  it('computes on the reference, says why in backend(), and warns once', async () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    const prev = process.env.KDFUSE_BACKEND;
    delete process.env.KDFUSE_BACKEND;  // a forced reference backend is chosen, not a failure: no warning then
    try {
      const kd = await import('../src/index.js');
      expect(kd.backend().name).toBe('reference');
      expect(kd.backend().reason).toMatch(/not built/);
      const s = new Float32Array([1, 2, 3, 4]), t = new Float32Array([4, 3, 2, 1]);
      for (let i = 0; i < 3; i++) {
        const r = kd.distillationLoss({ student: s, teacher: t, rows: 1, cols: 4, temperature: 2 });
        expect(Math.abs(r.loss - 2.338305953847457)).toBeLessThan(1e-6);  // T^2 KL, float64 by hand
      }
      kd.softmaxWithTemperature({ logits: s, rows: 1, cols: 4 });
      const kdWarnings = warn.mock.calls.filter((c) => String(c[0]).includes('reference backend'));
      expect(kdWarnings.length).toBe(1);
      expect(String(kdWarnings[0]![0])).toMatch(/npx kdfuse rebuild/);
    } finally {
      if (prev !== undefined) process.env.KDFUSE_BACKEND = prev;
      warn.mockRestore();
    }
  });
});
