/**
 * The native addon hands out memory of released large results again (native/addon/output_buffers).
 * A reused block holds the previous call's numbers until the kernel overwrites it, so these tests
 * check that results from reused memory equal fresh ones bit for bit, that reuse really happens
 * (hit counts), and that the limit and its argument checks work.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as kd from '../src/index.js';
import { randomLogits, rng } from './helpers.js';

const gc = (globalThis as { gc?: () => void }).gc;
const native = kd.backend().name.startsWith('native');
const info2log = (n: number) => Math.ceil(Math.log2(n));
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

  it.skipIf(!native)('a loop that never yields and drops its results reuses their memory when results are released by the collector', () => {
    kd.setBufferCacheLimit(1 << 30);
    // 128 MiB per result: fresh pages of that size cost well over two collections of this heap
    const rows = 256, cols = 131072;
    const r = rng(13);
    const student = randomLogits(r, rows * cols, 4), teacher = randomLogits(r, rows * cols, 4);
    const info = kd.bufferCacheInfo()!;
    // where the running Node ships V8's headers the build uses them (CMakeLists.txt): then results
    // must be released by the collector, unless a test asked for the other path
    if (existsSync(resolve(process.execPath, '../../include/node/v8.h')) && process.env.KDFUSE_GC_RELEASE !== '0') {
      expect(info.releasedBy).toBe('gc');
    }
    const first = kd.distillationLoss({ student, teacher, rows, cols, temperature: 2 }).gradStudent!.slice();
    const before = kd.bufferCacheInfo()!;
    const calls = 8;
    let same = 0;
    for (let i = 0; i < calls; i++) {
      const g = kd.distillationLoss({ student, teacher, rows, cols, temperature: 2 }).gradStudent!;
      if (Buffer.from(g.buffer).equals(Buffer.from(first.buffer))) same++;
    }
    const after = kd.bufferCacheInfo()!;
    expect(same).toBe(calls);  // reused memory gives the same bits
    if (info.releasedBy === 'gc') {
      expect(after.declined - before.declined).toBe(0);  // no cap on pending results: V8 counts them
      const hits = after.hits - before.hits;
      // all but the first call or two find a dropped result's block in the cache, unless a
      // collection was measured to cost more than half of fresh pages for the result
      const mib = (rows * cols * 4) / 2 ** 20;
      const gcDearer = after.collectionMs !== undefined && after.freshMsPerMiB !== undefined &&
        2 * after.collectionMs > after.freshMsPerMiB * mib;
      if (!gcDearer) expect(hits).toBeGreaterThanOrEqual(calls - 2);
      else expect(after.collections - before.collections).toBeLessThanOrEqual(2);
    } else {
      // finalizers wait for the end of the task: this loop reuses nothing
      expect(after.hits - before.hits).toBe(0);
    }
  });

  it.skipIf(!native)('a loop that keeps its results asks for few collections (each fruitless one doubles the wait)', () => {
    kd.setBufferCacheLimit(1 << 30);
    const rows = 64, cols = 4096;  // 1 MiB per result
    const r = rng(14);
    const student = randomLogits(r, rows * cols, 4), teacher = randomLogits(r, rows * cols, 4);
    const kept: Float32Array[] = [];
    const before = kd.bufferCacheInfo()!;
    for (let i = 0; i < 128; i++) kept.push(kd.distillationLoss({ student, teacher, rows, cols, temperature: 2 }).gradStudent!);
    const after = kd.bufferCacheInfo()!;
    expect(kept.length).toBe(128);
    // 128 MiB kept: 1, 2, 4, ... 128 MiB pending are the only points a collection is asked for
    expect(after.collections - before.collections).toBeLessThanOrEqual(info2log(128) + 2);
  });

  it.skipIf(native)('is null on the reference backend', () => {
    expect(kd.bufferCacheInfo()).toBeNull();
  });
  it.skipIf(!native)('a loop that never yields holds at most the limit in unreleased results when finalizers release them; past it results are V8 buffers', () => {
    const limit = 8 << 20;
    kd.setBufferCacheLimit(limit);
    const rows = 64, cols = 8192;  // 2 MiB per result
    const r = rng(12);
    const student = randomLogits(r, rows * cols, 4), teacher = randomLogits(r, rows * cols, 4);
    const before = kd.bufferCacheInfo()!;
    const results: Float32Array[] = [];
    for (let i = 0; i < 10; i++) results.push(kd.distillationLoss({ student, teacher, rows, cols, temperature: 2 }).gradStudent!);
    const after = kd.bufferCacheInfo()!;
    if (before.releasedBy === 'task') {
      // (results of earlier tests may still be pending: they count, and are never more than they were)
      expect(after.pendingBytes).toBeLessThanOrEqual(Math.max(limit, before.pendingBytes));
      expect(after.declined - before.declined).toBeGreaterThanOrEqual(10 - limit / (2 << 20));
    } else {
      // released by the collector, kept results are simply the caller's memory: none is declined
      expect(after.declined - before.declined).toBe(0);
      expect(after.pendingBytes - before.pendingBytes).toBeGreaterThanOrEqual(10 * (2 << 20));
    }
    // the results (made past the limit or not) are as good as the others
    const bytes = (g: Float32Array) => Buffer.from(g.buffer, g.byteOffset, g.byteLength);
    for (const g of results.slice(1)) expect(bytes(g).equals(bytes(results[0]!))).toBe(true);
  });
});
