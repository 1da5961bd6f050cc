import { describe, expect, it } from 'vitest';
import { backend, setThreads } from '../src/index.js';

describe('backend', () => {
  it('is the native addon unless KDFUSE_BACKEND=reference', () => {
    const b = backend();
    if (process.env.KDFUSE_BACKEND === 'reference') {
      expect(b.name).toBe('reference');
      expect(b.reason).toMatch(/KDFUSE_BACKEND=reference/);
    } else {
      // CI builds the addon; this fails loudly if the build silently fell back
      expect(b.name, b.reason).toMatch(/^(native-|cuda$)/);
      expect(b.threads).toBeGreaterThanOrEqual(1);
    }
  });

  it('setThreads changes the thread count and 0 restores the default', () => {
    if (backend().name === 'reference') return;
    const def = backend().threads;
    setThreads(3);
    expect(backend().threads).toBe(3);
    setThreads(0);
    expect(backend().threads).toBe(def);
  });

  it('reports whether CUDA was built and why it is not used', () => {
    const c = backend().cuda;
    expect(typeof c.built).toBe('boolean');
    expect(typeof c.reason).toBe('string');
    if (!c.available) expect(c.reason.length).toBeGreaterThan(0);
  });
});
