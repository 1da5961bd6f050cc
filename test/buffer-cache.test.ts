/**
 * The native addon hands out memory of released large results again (native/addon/output_buffers).
 * A reused block holds the previous call's numbers until the kernel overwrites it, so these tests
 * check that results from reused memory equal fresh ones bit for bit, that reuse really happens
 * (hit counts), and that the limit and its argument checks work.
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as kd from '../src/index.js';
import { randomLogits, rng } from './helpers.js';

const gc = (globalThis as { gc?: () => void }).gc;
const native = kd.backend().name.startsWith('native');
const nextTask = () => new Promise<void>((r) => setImmediate(r));

/**
 * Drops every reference the caller gave up, then lets Node run the finalizers (after this task).
 * A few rounds: one collection does not always find a result the test has just dropped.
 */
async function release(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    gc?.();
    await nextTask();
    await nextTask();
  }
}

describe('result memory cache', () => {
  afterAll(() => kd.setBufferCacheLimit(1 << 30));

  it('rejects a bad limit with errors naming the argument', () => {
    expect(() => kd.setBufferCacheLimit('1' as unknown as number)).toThrow(TypeError);
    expect(() => kd.setBufferCacheLimit(-1)).toThrow(/bytes must be an integer >= 0, got -1/);
    expect(() => kd.setBufferCacheLimit(1.5)).toThrow(RangeError);
  });

  it.skipIf(!native || !gc)('reuses released blocks, and results in reused memory equal fresh ones bit for bit', async () => {
    kd.setBufferCacheLimit(1 << 30);
    const rows = 64, cols = 8192;  // 2 MiB per gradient: over the 1 MiB threshold
    const r = rng(11);
    const student = randomLogits(r, rows * cols, 4), teacher = randomLogits(r, rows * cols, 4);
    const labels = Int32Array.from({ length: rows }, (_, i) => (i * 37) % cols);
    const args = { student, teacher, rows, cols, labels, temperature: 3, alpha: 0.7, computeTeacherGrad: true };

    kd.setBufferCacheLimit(0);  // fresh memory for the reference result
    const fresh = kd.distillationLoss(args);
    const wantS = fresh.gradStudent!.slice(), wantT = fresh.gradTeacher!.slice();
    kd.setBufferCacheLimit(1 << 30);

    // A result with different numbers, released into the cache: the next call gets its memory.
    let other: kd.DistillationLossResult | null = kd.distillationLoss({ ...args, temperature: 0.5 });
    expect(other.gradStudent![0]).not.toBe(wantS[0]);
    other = null;
    await release();
    const before = kd.bufferCacheInfo()!;
    expect(before.cachedBlocks).toBeGreaterThanOrEqual(2);

    const again = kd.distillationLoss(args);
    const after = kd.bufferCacheInfo()!;
    expect(after.hits - before.hits).toBe(2);  // both gradients came from the cache
    expect(again.loss).toBe(fresh.loss);
    expect(Buffer.from(again.gradStudent!.buffer).equals(Buffer.from(wantS.buffer))).toBe(true);
    expect(Buffer.from(again.gradTeacher!.buffer).equals(Buffer.from(wantT.buffer))).toBe(true);

    // async calls' private input copies come from the cache too, and give the same bits
    const viaAsync = await kd.distillationLossAsync(args);
    expect(Buffer.from(viaAsync.gradStudent!.buffer).equals(Buffer.from(wantS.buffer))).toBe(true);
  });

  it.skipIf(!native || !gc)('a limit of 0 frees what the cache holds and keeps nothing', async () => {
    kd.setBufferCacheLimit(1 << 30);
    let res: kd.DistillationLossResult | null = kd.distillationLoss({
      student: new Float32Array(1 << 19), teacher: new Float32Array(1 << 19), rows: 64, cols: 1 << 13, temperature: 2,
    });
    expect(res.gradStudent!.length).toBe(1 << 19);
    res = null;
    await release();
    expect(kd.bufferCacheInfo()!.cachedBytes).toBeGreaterThan(0);
    kd.setBufferCacheLimit(0);
    expect(kd.bufferCacheInfo()!).toMatchObject({ limitBytes: 0, cachedBytes: 0, cachedBlocks: 0 });
  });

  it.skipIf(native)('is null on the reference backend', () => {
    expect(kd.bufferCacheInfo()).toBeNull();
  });
  it.skipIf(!native)('a loop that never yields holds at most the limit in unreleased results; past it results are V8 buffers', () => {
    const limit = 8 << 20;
    kd.setBufferCacheLimit(limit);
    const rows = 64, cols = 8192;  // 2 MiB per result
    const r = rng(12);
    const student = randomLogits(r, rows * cols, 4), teacher = randomLogits(r, rows * cols, 4);
    const before = kd.bufferCacheInfo()!;
    const results: Float32Array[] = [];
    for (let i = 0; i < 10; i++) results.push(kd.distillationLoss({ student, teacher, rows, cols, temperature: 2 }).gradStudent!);
    const after = kd.bufferCacheInfo()!;
    // (results of earlier tests may still be pending: they count, and are never more than they were)
    expect(after.pendingBytes).toBeLessThanOrEqual(Math.max(limit, before.pendingBytes));
    expect(after.declined - before.declined).toBeGreaterThanOrEqual(10 - limit / (2 << 20));
    // the results made past the limit are as good as the others
    const bytes = (g: Float32Array) => Buffer.from(g.buffer, g.byteOffset, g.byteLength);
    for (const g of results.slice(1)) expect(bytes(g).equals(bytes(results[0]!))).toBe(true);
  });
});
