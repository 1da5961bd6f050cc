/**
 * The Async variants under load and abuse: many concurrent calls with the garbage collector and
 * allocation pressure in between, each bit-for-bit equal to the sync call; inputs snapshotted when
 * called (mutating or transferring them afterwards changes nothing); detached (transferred) arrays
 * rejected with a TypeError naming the argument; caller `out` arrays filled; and the addon loaded
 * inside worker_threads, each with its own setThreads. Native-only parts are skipped under
 * KDFUSE_BACKEND=reference; the rest runs on either backend.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MessageChannel, Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  backend,
  bufferCacheInfo,
  distillationLoss,
  distillationLossAsync,
  klDivergence,
  klDivergenceAsync,
  linearDistillationLossAsync,
  logSoftmaxWithTemperature,
  logSoftmaxWithTemperatureAsync,
  logSoftmaxWithTemperatureBackward,
  logSoftmaxWithTemperatureBackwardAsync,
  softmaxWithTemperature,
  softmaxWithTemperatureAsync,
  softmaxWithTemperatureBackward,
  softmaxWithTemperatureBackwardAsync,
  topkDistillationLossAsync,
} from '../src/index.js';
import type { DistillationLossOptions, DistillationLossResult, Divergence, Reduction } from '../src/index.js';
import { ADDON_RELATIVE_PATH, nativeAddon, packageRoot } from '../src/kernels/native.js';
import { INLINE_ASYNC_MAX_ELEMENTS, runsInline } from '../src/kernels/backend.js';
import { randomLabels, randomLogits, rng } from './helpers.js';

const gc = (): void => {
  const f = (globalThis as { gc?: () => void }).gc;
  if (typeof f !== 'function') throw new Error('the tests need --expose-gc (see vitest.config.ts)');
  f();
};

/** Garbage of many sizes, to make the collector move and free things while calls run. */
let sink = 0;
function allocationPressure(rounds: number): void {
  for (let i = 0; i < rounds; i++) {
    const big = new Float32Array(1 << 16 << (i % 4));
    big[i % big.length] = i;
    const objs = Array.from({ length: 200 }, (_, j) => ({ j, s: `x${j}`, a: new Float64Array(8) }));
    sink += big.length + objs.length;
  }
}

function bytes(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

function expectSameBits(got: Float32Array | undefined, want: Float32Array | undefined, what: string): void {
  expect(got === undefined, `${what}: presence`).toBe(want === undefined);
  if (!got || !want) return;
  expect(got.length, `${what}: length`).toBe(want.length);
  if (!bytes(got).equals(bytes(want))) {
    const i = got.findIndex((v, k) => !Object.is(v, want[k]));
    expect.fail(`${what}: differs at [${i}]: got ${got[i]}, expected ${want[i]}`);
  }
}

function expectSameResult(got: DistillationLossResult, want: DistillationLossResult, what: string): void {
  expect(Object.is(got.loss, want.loss), `${what}: loss ${got.loss} vs ${want.loss}`).toBe(true);
  expectSameBits(got.losses, want.losses, `${what}: losses`);
  expectSameBits(got.gradStudent, want.gradStudent, `${what}: gradStudent`);
  expectSameBits(got.gradTeacher, want.gradTeacher, `${what}: gradTeacher`);
}

/** A deep copy of distillation options (fresh arrays, nothing shared with the original). */
function cloneDistill(o: DistillationLossOptions): DistillationLossOptions {
  return {
    ...o,
    student: o.student.slice(),
    teacher: o.teacher.slice(),
    labels: o.labels instanceof Int32Array ? o.labels.slice() : o.labels,
    gradOutput: o.gradOutput instanceof Float32Array ? o.gradOutput.slice() : o.gradOutput,
  };
}

const REDUCTIONS: Reduction[] = ['mean', 'sum', 'none'];
const DIVERGENCES: Divergence[] = ['kl', 'reverse-kl', 'jsd'];

function distillOptions(rand: () => number, rows: number, cols: number, i: number): DistillationLossOptions {
  const reduction = REDUCTIONS[i % 3]!;
  return {
    student: randomLogits(rand, rows * cols),
    teacher: randomLogits(rand, rows * cols),
    rows,
    cols,
    labels: i % 5 === 4 ? undefined : randomLabels(rand, rows, cols, -100, 0.1),
    temperature: [0.5, 1, 2, 4][i % 4],
    alpha: (i % 7) / 6,
    labelSmoothing: i % 2 ? 0.1 : 0,
    divergence: DIVERGENCES[Math.floor(i / 3) % 3],
    reduction,
    gradOutput: reduction === 'none' ? randomLogits(rand, rows, 1) : 0.5 + rand(),
    computeTeacherGrad: i % 2 === 1,
  };
}

// ------------------------------------------------------------------ (a) concurrency

type Kind = 'distill' | 'softmax' | 'logSoftmax' | 'softmaxBackward' | 'logSoftmaxBackward' | 'kl';

interface Job {
  kind: Kind;
  rows: number;
  cols: number;
  run: () => Promise<unknown>;
  check: (r: unknown, what: string) => void;
}

function makeJob(rand: () => number, i: number): Job {
  const [rows, cols] = i % 4 === 3 ? [4, 50000] : [256, 1000];
  const kinds: Kind[] = ['distill', 'softmax', 'distill', 'logSoftmax', 'softmaxBackward', 'distill', 'logSoftmaxBackward', 'kl'];
  const kind = kinds[i % kinds.length]!;
  const T = [0.5, 1, 2, 4][i % 4]!;
  if (kind === 'distill') {
    const o = distillOptions(rand, rows, cols, i);
    const want = distillationLoss(cloneDistill(o));
    return {
      kind, rows, cols,
      // the call gets its own copies, referenced from nowhere else once the call has started
      run: () => distillationLossAsync(cloneDistill(o)),
      check: (r, what) => expectSameResult(r as DistillationLossResult, want, what),
    };
  }
  if (kind === 'kl') {
    const s = randomLogits(rand, rows * cols), t = randomLogits(rand, rows * cols);
    const o = { student: s, teacher: t, rows, cols, temperature: T, reduction: 'none' as const, divergence: DIVERGENCES[i % 3]! };
    const want = klDivergence({ ...o, student: s.slice(), teacher: t.slice() });
    return {
      kind, rows, cols,
      run: () => klDivergenceAsync({ ...o, student: s.slice(), teacher: t.slice() }),
      check: (r, what) => expectSameResult(r as DistillationLossResult, want, what),
    };
  }
  if (kind === 'softmax' || kind === 'logSoftmax') {
    const logits = randomLogits(rand, rows * cols, 5);
    const [sync, async] = kind === 'softmax' ? [softmaxWithTemperature, softmaxWithTemperatureAsync] as const
      : [logSoftmaxWithTemperature, logSoftmaxWithTemperatureAsync] as const;
    const want = sync({ logits: logits.slice(), rows, cols, temperature: T });
    return {
      kind, rows, cols,
      run: () => async({ logits: logits.slice(), rows, cols, temperature: T }),
      check: (r, what) => expectSameBits(r as Float32Array, want, what),
    };
  }
  const log = kind === 'logSoftmaxBackward';
  const output = (log ? logSoftmaxWithTemperature : softmaxWithTemperature)({ logits: randomLogits(rand, rows * cols), rows, cols, temperature: T });
  const gradOutput = randomLogits(rand, rows * cols, 1);
  const [sync, async] = log ? [logSoftmaxWithTemperatureBackward, logSoftmaxWithTemperatureBackwardAsync] as const
    : [softmaxWithTemperatureBackward, softmaxWithTemperatureBackwardAsync] as const;
  const want = sync({ output: output.slice(), gradOutput: gradOutput.slice(), rows, cols, temperature: T });
  return {
    kind, rows, cols,
    run: () => async({ output: output.slice(), gradOutput: gradOutput.slice(), rows, cols, temperature: T }),
    check: (r, what) => expectSameBits(r as Float32Array, want, what),
  };
}

describe('many concurrent async calls', () => {
  it('64 concurrent calls (256x1000 and 4x50000) under gc and allocation pressure equal the sync calls bit for bit', async () => {
    const rand = rng(64064);
    const jobs = Array.from({ length: 64 }, (_, i) => makeJob(rand, i));
    expect(new Set(jobs.map((j) => j.kind)).size).toBe(6);

    // a background churn of gc and garbage while the calls are in flight
    let churning = true;
    let churns = 0;
    const churn = (async () => {
      while (churning) {
        allocationPressure(2);
        gc();
        churns++;
        await new Promise((r) => setImmediate(r));
      }
    })();

    const pending: Promise<unknown>[] = [];
    for (let i = 0; i < jobs.length; i++) {
      pending.push(jobs[i]!.run());
      if (i % 3 === 0) gc();
      if (i % 4 === 1) allocationPressure(3);
    }
    gc();
    const results = await Promise.allSettled(pending);
    churning = false;
    await churn;
    expect(churns).toBeGreaterThan(0);
    gc();

    results.forEach((r, i) => {
      const j = jobs[i]!;
      const what = `job ${i} (${j.kind} ${j.rows}x${j.cols})`;
      if (r.status === 'rejected') expect.fail(`${what} rejected: ${String(r.reason)}`);
      j.check(r.value, what);
    });
    expect(sink).toBeGreaterThan(0);
  });

  it('the same input sent 16 times at once gives 16 identical results', async () => {
    const rand = rng(16);
    const o = distillOptions(rand, 64, 3000, 5);
    const want = distillationLoss(cloneDistill(o));
    const rs = await Promise.all(Array.from({ length: 16 }, () => distillationLossAsync(cloneDistill(o))));
    rs.forEach((r, i) => expectSameResult(r, want, `copy ${i}`));
  });

  it('rejections and resolutions mixed in one batch settle independently', async () => {
    const rand = rng(77);
    const good = distillOptions(rand, 32, 500, 1);
    const want = distillationLoss(cloneDistill(good));
    const bad = { ...cloneDistill(good), student: good.student.slice() };
    bad.student[31 * 500 + 7] = NaN;
    const calls = Array.from({ length: 24 }, (_, i) => (i % 2 ? distillationLossAsync(cloneDistill(good)) : distillationLossAsync(cloneDistill(bad))));
    const rs = await Promise.allSettled(calls);
    rs.forEach((r, i) => {
      if (i % 2) {
        expect(r.status).toBe('fulfilled');
        expectSameResult((r as PromiseFulfilledResult<DistillationLossResult>).value, want, `call ${i}`);
      } else {
        expect(r.status).toBe('rejected');
        const e = (r as PromiseRejectedResult).reason as Error;
        expect(e).toBeInstanceOf(RangeError);
        expect(e.message).toMatch(/^student must not contain NaN, got NaN at index 15507 \(row 31, column 7\)/);
      }
    });
  });
});

// ------------------------------------------------------------------ (b) inputs are snapshotted

describe('inputs are snapshotted when an async call starts', () => {
  it('distillationLossAsync: mutating student, teacher, labels, gradOutput and the options object afterwards changes nothing', async () => {
    const rand = rng(5);
    for (const reduction of REDUCTIONS) {
      const o = { ...distillOptions(rand, 128, 2000, 3), reduction, computeTeacherGrad: true };
      o.gradOutput = reduction === 'none' ? randomLogits(rand, 128, 1) : 1.5;
      const want = distillationLoss(cloneDistill(o));
      const p = distillationLossAsync(o);
      o.student.fill(NaN);
      o.teacher.fill(Infinity);
      (o.labels as Int32Array).fill(1 << 30);
      if (o.gradOutput instanceof Float32Array) o.gradOutput.fill(NaN);
      o.temperature = -1;
      o.rows = 0;
      o.reduction = 'bogus' as Reduction;
      expectSameResult(await p, want, `reduction ${reduction}`);
    }
  });

  it('number[] labels mutated after the call do not change it', async () => {
    const rand = rng(55);
    const o = distillOptions(rand, 16, 100, 0);
    const labels = Array.from(o.labels as Int32Array);
    const want = distillationLoss({ ...cloneDistill(o), labels: labels.slice() });
    const p = distillationLossAsync({ ...o, labels });
    labels.fill(2.5);
    expectSameResult(await p, want, 'number[] labels');
  });

  it('softmax forward and backward (all four, async): mutated inputs do not change the result', async () => {
    const rand = rng(6);
    const rows = 32, cols = 4099;
    for (const log of [false, true]) {
      const logits = randomLogits(rand, rows * cols);
      const fwd = log ? logSoftmaxWithTemperature : softmaxWithTemperature;
      const fwdAsync = log ? logSoftmaxWithTemperatureAsync : softmaxWithTemperatureAsync;
      const want = fwd({ logits: logits.slice(), rows, cols, temperature: 3 });
      const p = fwdAsync({ logits, rows, cols, temperature: 3 });
      logits.fill(NaN);
      expectSameBits(await p, want, `${log ? 'log' : ''}softmax forward`);

      const output = want.slice(), dy = randomLogits(rand, rows * cols, 1);
      const bwd = log ? logSoftmaxWithTemperatureBackward : softmaxWithTemperatureBackward;
      const bwdAsync = log ? logSoftmaxWithTemperatureBackwardAsync : softmaxWithTemperatureBackwardAsync;
      const wantB = bwd({ output: output.slice(), gradOutput: dy.slice(), rows, cols, temperature: 3 });
      const pb = bwdAsync({ output, gradOutput: dy, rows, cols, temperature: 3 });
      output.fill(Infinity);
      dy.fill(NaN);
      expectSameBits(await pb, wantB, `${log ? 'log' : ''}softmax backward`);
    }
  });

  it('inputs transferred (detached) right after the call starts do not change it', async () => {
    const rand = rng(7);
    const o = { ...distillOptions(rand, 64, 1000, 1), computeTeacherGrad: true };
    const want = distillationLoss(cloneDistill(o));
    const p = distillationLossAsync(o);
    structuredClone(o.student.buffer, { transfer: [o.student.buffer as ArrayBuffer] });
    structuredClone(o.teacher.buffer, { transfer: [o.teacher.buffer as ArrayBuffer] });
    expect(o.student.length).toBe(0);
    gc();
    expectSameResult(await p, want, 'transferred after start');

    const logits = randomLogits(rand, 8 * 5000);
    const wantS = softmaxWithTemperature({ logits: logits.slice(), rows: 8, cols: 5000 });
    const ps = softmaxWithTemperatureAsync({ logits, rows: 8, cols: 5000 });
    const { port1, port2 } = new MessageChannel();
    port1.postMessage(logits.buffer, [logits.buffer as ArrayBuffer]);
    port1.close();
    port2.close();
    expect(logits.length).toBe(0);
    expectSameBits(await ps, wantS, 'softmax input transferred after start');
  });
});

// ------------------------------------------------------------------ (b2) borrowed inputs
describe('borrowInputs: async calls that read the caller\'s arrays in place', () => {
  const native = backend().name.startsWith('native');
  // the addon borrows only where it can pin the memory (built against this Node's headers)
  const canBorrow = native && bufferCacheInfo()?.releasedBy === 'gc';

  it('rejects bad call options with errors naming them', async () => {
    const o = distillOptions(rng(21), 4, 10, 1);
    await expect(distillationLossAsync(o, { borrowInputs: 'yes' } as never)).rejects.toThrow(/borrowInputs must be a boolean, got string/);
    await expect(distillationLossAsync(o, { borowInputs: true } as never)).rejects.toThrow(/unknown option 'borowInputs'/);
    await expect(distillationLossAsync(o, 5 as never)).rejects.toThrow(TypeError);
    await expect(topkDistillationLossAsync({} as never, { borrowInputs: 1 } as never)).rejects.toThrow(TypeError);
    await expect(linearDistillationLossAsync({} as never, null as never)).rejects.toThrow(TypeError);
  });

  it('gives the very bits of the sync call, for every entry that takes it', async () => {
    const rand = rng(22);
    for (let i = 0; i < 4; i++) {
      const o = { ...distillOptions(rand, 64, 1000, i), computeTeacherGrad: true };
      const want = distillationLoss(cloneDistill(o));
      expectSameResult(await distillationLossAsync(o, { borrowInputs: true }), want, `borrowed ${i}`);
    }
    const o = distillOptions(rand, 64, 1000, 1);
    expect((await klDivergenceAsync({ student: o.student, teacher: o.teacher, rows: 64, cols: 1000 }, { borrowInputs: true })).loss)
      .toBe(klDivergence({ student: o.student, teacher: o.teacher, rows: 64, cols: 1000 }).loss);
  });

  it.runIf(canBorrow)('an input detached (transferred) while the call runs rejects the call with a TypeError naming it', async () => {
    const rand = rng(23);
    const o = distillOptions(rand, 64, 1000, 2);
    const p = distillationLossAsync(o, { borrowInputs: true });
    structuredClone(o.teacher.buffer, { transfer: [o.teacher.buffer as ArrayBuffer] });  // the worker still reads it: it is pinned
    gc();
    allocationPressure(2);
    await expect(p).rejects.toThrow(/teacher was detached \(transferred\) while the call was running with borrowInputs: true/);
  });

  it.runIf(native)('an input over a resizable ArrayBuffer is copied, not borrowed: shrinking it during the call changes nothing', async () => {
    const rows = 64, cols = 1000, bytes = rows * cols * 4;
    const rand = rng(26);
    const Resizable = ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ArrayBuffer & { resize(n: number): void };
    const buf = new Resizable(bytes, { maxByteLength: bytes });
    const student = new Float32Array(buf);  // length-tracking: 0 once the buffer is shrunk to 0
    student.set(randomLogits(rand, rows * cols));
    const teacher = randomLogits(rand, rows * cols);
    const want = distillationLoss({ student: student.slice(), teacher, rows, cols, computeTeacherGrad: true });
    const p = distillationLossAsync({ student, teacher, rows, cols, computeTeacherGrad: true }, { borrowInputs: true });
    buf.resize(0);  // V8 makes the cut-off pages inaccessible: a borrowed read would fault
    expect(student.length).toBe(0);
    expectSameResult(await p, want, 'resizable input, borrowInputs');
  });

  it.runIf(native && !canBorrow)('without the means to pin memory the inputs are copied: a transfer after the call changes nothing', async () => {
    const rand = rng(24);
    const o = distillOptions(rand, 64, 1000, 2);
    const want = distillationLoss(cloneDistill(o));
    const p = distillationLossAsync(o, { borrowInputs: true });
    structuredClone(o.teacher.buffer, { transfer: [o.teacher.buffer as ArrayBuffer] });
    expectSameResult(await p, want, 'copied although borrowed');
  });
});

// ------------------------------------------------------------------ (c) detached before the call

/** Transfers `a`'s buffer to a fresh worker_thread, which reports how many bytes it received. */
async function transferToWorker(a: ArrayBufferView): Promise<void> {
  const w = new Worker(
    "const { parentPort } = require('node:worker_threads'); parentPort.on('message', (b) => parentPort.postMessage(b.byteLength));",
    { eval: true },
  );
  try {
    const n = a.byteLength;
    const got = new Promise<number>((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
    w.postMessage(a.buffer, [a.buffer as ArrayBuffer]);
    expect(await got).toBe(n);
    expect(a.byteLength).toBe(0);
  } finally {
    await w.terminate();
  }
}

function detachLocally(a: ArrayBufferView): void {
  structuredClone(a.buffer, { transfer: [a.buffer as ArrayBuffer] });
}

async function expectDetachedRejected(
  name: string,
  sync: () => unknown,
  async: () => Promise<unknown>,
  what: string,
): Promise<void> {
  const re = new RegExp(`^${name.replace('.', '\\.')} must be a usable (Float32|Int32)Array, got one whose buffer was detached \\(transferred\\)`);
  let err: unknown;
  try {
    sync();
  } catch (e) {
    err = e;
  }
  expect(err, `${what} sync: throws a TypeError (got ${String(err)})`).toBeInstanceOf(TypeError);
  expect((err as Error).message).toMatch(re);
  let p: Promise<unknown> | undefined;
  expect(() => {
    p = async();
  }, `${what} async: no synchronous throw`).not.toThrow();
  await expect(p!, `${what} async: rejects`).rejects.toThrow(TypeError);
  await expect(p!).rejects.toThrow(re);
}

describe('arrays transferred away before the call are rejected with a TypeError naming them', () => {
  const rand = rng(8);
  const rows = 4, cols = 50;
  const fresh = () => ({
    student: randomLogits(rand, rows * cols),
    teacher: randomLogits(rand, rows * cols),
    rows, cols,
    labels: randomLabels(rand, rows, cols),
  });

  it('student transferred to a worker_thread', async () => {
    const o = fresh();
    await transferToWorker(o.student);
    await expectDetachedRejected('student', () => distillationLoss(o), () => distillationLossAsync(o), 'distillationLoss');
    // klDivergence takes no labels (passing them is an unknown-option TypeError of its own)
    const { labels: _labels, ...kl } = o;
    await expectDetachedRejected('student', () => klDivergence(kl), () => klDivergenceAsync(kl), 'klDivergence');
  });

  it('teacher, labels, gradOutput and every out array detached with structuredClone', async () => {
    for (const name of ['teacher', 'labels', 'gradOutput', 'out.gradStudent', 'out.gradTeacher', 'out.losses']) {
      const base = fresh();
      const o: DistillationLossOptions = {
        ...base,
        reduction: 'none',
        gradOutput: new Float32Array(rows).fill(1),
        computeTeacherGrad: true,
        out: { gradStudent: new Float32Array(rows * cols), gradTeacher: new Float32Array(rows * cols), losses: new Float32Array(rows) },
      };
      const target = name.startsWith('out.')
        ? o.out![name.slice(4) as 'gradStudent']!
        : (o as unknown as Record<string, ArrayBufferView>)[name]!;
      detachLocally(target);
      await expectDetachedRejected(name, () => distillationLoss(o), () => distillationLossAsync(o), `distillationLoss ${name}`);
    }
  });

  it('softmax logits / out and backward output / gradOutput / out transferred to a worker_thread', async () => {
    for (const log of [false, true]) {
      const fwd = log ? logSoftmaxWithTemperature : softmaxWithTemperature;
      const fwdA = log ? logSoftmaxWithTemperatureAsync : softmaxWithTemperatureAsync;
      const bwd = log ? logSoftmaxWithTemperatureBackward : softmaxWithTemperatureBackward;
      const bwdA = log ? logSoftmaxWithTemperatureBackwardAsync : softmaxWithTemperatureBackwardAsync;
      for (const name of ['logits', 'out']) {
        const o = { logits: randomLogits(rand, rows * cols), rows, cols, out: new Float32Array(rows * cols) };
        await transferToWorker(o[name as 'logits' | 'out']);
        await expectDetachedRejected(name, () => fwd(o), () => fwdA(o), `softmax forward (log ${log}) ${name}`);
      }
      for (const name of ['output', 'gradOutput', 'out']) {
        const o = {
          output: randomLogits(rand, rows * cols), gradOutput: randomLogits(rand, rows * cols), rows, cols, out: new Float32Array(rows * cols),
        };
        await transferToWorker(o[name as 'output' | 'gradOutput' | 'out']);
        await expectDetachedRejected(name, () => bwd(o), () => bwdA(o), `softmax backward (log ${log}) ${name}`);
      }
    }
  });

  it.skipIf(!nativeAddon)('the raw addon rejects detached arrays itself (sync throws, async rejects)', async () => {
    const a = nativeAddon!;
    for (const name of ['student', 'teacher', 'labels', 'out.gradStudent']) {
      const o = { ...fresh(), out: { gradStudent: new Float32Array(rows * cols) } };
      const target = name === 'out.gradStudent' ? o.out.gradStudent : o[name as 'student' | 'teacher' | 'labels'];
      await transferToWorker(target);
      await expectDetachedRejected(name, () => a.distillationLoss(o), () => a.distillationLossAsync(o), `addon distillationLoss ${name}`);
    }
    const so = { logits: randomLogits(rand, rows * cols), rows, cols };
    detachLocally(so.logits);
    await expectDetachedRejected('logits', () => a.softmax(so), () => a.softmaxAsync(so), 'addon softmax');
    const bo = { output: randomLogits(rand, rows * cols), gradOutput: randomLogits(rand, rows * cols), rows, cols };
    detachLocally(bo.gradOutput);
    await expectDetachedRejected('gradOutput', () => a.softmaxBackward(bo), () => a.softmaxBackwardAsync(bo), 'addon softmaxBackward');
  });

  it.skipIf(!nativeAddon)('an out array transferred while the async call runs: the Promise rejects with a TypeError naming it', async () => {
    const o = { ...distillOptions(rng(9), 256, 4000, 0), out: { gradStudent: new Float32Array(256 * 4000) } };
    const p = distillationLossAsync(o);
    detachLocally(o.out.gradStudent);
    await expect(p).rejects.toThrow(TypeError);
    await expect(p).rejects.toThrow(/^out\.gradStudent was detached \(transferred\) while the call was running/);

    const logits = randomLogits(rng(10), 64 * 4000);
    const out = new Float32Array(64 * 4000);
    const ps = softmaxWithTemperatureAsync({ logits, rows: 64, cols: 4000, out });
    const settled = ps.then(() => undefined, (e: unknown) => e);  // handled at once: no unhandled-rejection noise
    await transferToWorker(out);
    const err = await settled;
    expect(err).toBeInstanceOf(TypeError);
    expect((err as Error).message).toMatch(/^out was detached \(transferred\) while the call was running/);
    // and the process carries on
    expect(softmaxWithTemperature({ logits, rows: 64, cols: 4000 }).every(Number.isFinite)).toBe(true);
  });
});

// ------------------------------------------------------------------ (d) out arrays and async

describe('caller out arrays with async calls', () => {
  it('distillationLossAsync fills out.gradStudent / gradTeacher / losses (longer than needed: the tail is untouched) and returns them', async () => {
    const rand = rng(11);
    const rows = 100, cols = 777, n = rows * cols, SENTINEL = 12345.5;
    const o = { ...distillOptions(rand, rows, cols, 2), reduction: 'none' as const, gradOutput: randomLogits(rand, rows, 1), computeTeacherGrad: true };
    const want = distillationLoss(cloneDistill(o));
    const out = {
      gradStudent: new Float32Array(n + 5).fill(SENTINEL),
      gradTeacher: new Float32Array(n + 3).fill(SENTINEL),
      losses: new Float32Array(rows + 2).fill(SENTINEL),
    };
    const r = await distillationLossAsync({ ...o, out });
    expect(r.gradStudent).toBe(out.gradStudent);
    expect(r.gradTeacher).toBe(out.gradTeacher);
    expect(r.losses).toBe(out.losses);
    expect(Object.is(r.loss, want.loss)).toBe(true);
    expectSameBits(out.gradStudent.subarray(0, n), want.gradStudent, 'out.gradStudent');
    expectSameBits(out.gradTeacher.subarray(0, n), want.gradTeacher, 'out.gradTeacher');
    expectSameBits(out.losses.subarray(0, rows), want.losses, 'out.losses');
    expect(Array.from(out.gradStudent.subarray(n))).toEqual(new Array(5).fill(SENTINEL));
    expect(Array.from(out.gradTeacher.subarray(n))).toEqual(new Array(3).fill(SENTINEL));
    expect(Array.from(out.losses.subarray(rows))).toEqual([SENTINEL, SENTINEL]);
  });

  it('out arrays that are subarrays of one shared buffer (not overlapping) each get their own part', async () => {
    const rand = rng(12);
    const rows = 8, cols = 300, n = rows * cols;
    const o = { ...distillOptions(rand, rows, cols, 1), computeTeacherGrad: true };
    const want = distillationLoss(cloneDistill(o));
    const shared = new Float32Array(2 * n + 10).fill(-7);
    const out = { gradStudent: shared.subarray(0, n), gradTeacher: shared.subarray(n + 10) };
    const r = await distillationLossAsync({ ...o, out });
    expectSameBits(r.gradStudent, want.gradStudent, 'gradStudent');
    expectSameBits(r.gradTeacher, want.gradTeacher, 'gradTeacher');
    expect(Array.from(shared.subarray(n, n + 10))).toEqual(new Array(10).fill(-7));
  });

  it('klDivergenceAsync fills out.losses', async () => {
    const rand = rng(13);
    const rows = 40, cols = 900;
    const s = randomLogits(rand, rows * cols), t = randomLogits(rand, rows * cols);
    const want = klDivergence({ student: s, teacher: t, rows, cols, reduction: 'none', temperature: 2 });
    const losses = new Float32Array(rows);
    const r = await klDivergenceAsync({ student: s, teacher: t, rows, cols, reduction: 'none', temperature: 2, out: { losses } });
    expect(r.losses).toBe(losses);
    expectSameBits(losses, want.losses, 'losses');
  });

  it('softmax forward and backward async fill `out` and return it', async () => {
    const rand = rng(14);
    const rows = 16, cols = 2500, n = rows * cols;
    for (const log of [false, true]) {
      const logits = randomLogits(rand, n);
      const want = (log ? logSoftmaxWithTemperature : softmaxWithTemperature)({ logits, rows, cols, temperature: 0.7 });
      const out = new Float32Array(n + 1).fill(3);
      const r = await (log ? logSoftmaxWithTemperatureAsync : softmaxWithTemperatureAsync)({ logits, rows, cols, temperature: 0.7, out });
      expect(r).toBe(out);
      expectSameBits(out.subarray(0, n), want, 'forward out');
      expect(out[n]).toBe(3);

      const dy = randomLogits(rand, n, 1);
      const wantB = (log ? logSoftmaxWithTemperatureBackward : softmaxWithTemperatureBackward)({ output: want, gradOutput: dy, rows, cols, temperature: 0.7 });
      const outB = new Float32Array(n);
      const rb = await (log ? logSoftmaxWithTemperatureBackwardAsync : softmaxWithTemperatureBackwardAsync)({ output: want, gradOutput: dy, rows, cols, temperature: 0.7, out: outB });
      expect(rb).toBe(outB);
      expectSameBits(outB, wantB, 'backward out');
    }
  });
});

// ------------------------------------------------------------------ (e) worker_threads

const WORKER_SOURCE = `
import { parentPort, workerData } from 'node:worker_threads';
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const addon = require(workerData.addonPath);

async function run(m) {
  const { student, teacher, labels, rows, cols } = m;
  const opts = { student, teacher, labels, rows, cols, temperature: 2, alpha: 0.3, computeTeacherGrad: true };
  const d = addon.distillationLoss(opts);
  const dA = await addon.distillationLossAsync(opts);
  const sm = addon.softmax({ logits: student, rows, cols, temperature: 2 });
  const smA = await addon.softmaxAsync({ logits: student, rows, cols, temperature: 2, log: true });
  // errors are made in this thread's realm, with the right class
  let typeOk = false, rangeOk = false;
  try { addon.softmax({ logits: Array.from(student), rows, cols }); } catch (e) { typeOk = e instanceof TypeError && /^logits must be a Float32Array/.test(e.message); }
  await addon.distillationLossAsync({ ...opts, temperature: 0 }).then(
    () => {}, (e) => { rangeOk = e instanceof RangeError && /^temperature must be a finite number > 0/.test(e.message); });
  return { d, dA, sm, smA, typeOk, rangeOk, threads: addon.info().threads };
}

parentPort.on('message', async (m) => {
  try {
    if (m.cmd === 'setThreads') {
      addon.setThreads(m.n);
      parentPort.postMessage({ threads: addon.info().threads });
    } else if (m.cmd === 'info') {
      parentPort.postMessage({ threads: addon.info().threads });
    } else if (m.cmd === 'run') {
      parentPort.postMessage(await run(m));
    } else if (m.cmd === 'inflight') {
      // big async calls, left running when the main thread terminates this worker
      const n = m.rows * m.cols;
      const s = new Float32Array(n).map((_, i) => Math.sin(i)), t = new Float32Array(n).map((_, i) => Math.cos(i));
      for (let k = 0; k < 4; k++) addon.distillationLossAsync({ student: s, teacher: t, rows: m.rows, cols: m.cols, computeTeacherGrad: true });
      addon.softmaxAsync({ logits: s, rows: m.rows, cols: m.cols });
      parentPort.postMessage({ started: true });
    } else if (m.cmd === 'loop') {
      // sync calls (successes and errors) and async starts without end, until terminated mid-call
      const s = new Float32Array(4 * 5000).fill(1);
      parentPort.postMessage({ started: true });
      for (;;) {
        addon.softmax({ logits: s, rows: 4, cols: 5000 });
        try { addon.softmax({ logits: [1], rows: 1, cols: 1 }); } catch {}
        try { addon.distillationLoss({ student: s, teacher: s, rows: 4, cols: 5000, temperature: 0 }); } catch {}
        addon.distillationLossAsync({ student: s, teacher: s, rows: 4, cols: 5000 }).catch(() => {});
      }
    }
  } catch (e) {
    parentPort.postMessage({ error: String(e && e.stack || e) });
  }
});
parentPort.postMessage({ ready: true, threads: addon.info().threads, defaultThreads: addon.info().defaultThreads });
`;

interface Inbox {
  next: () => Promise<Record<string, unknown>>;
}

function inbox(w: Worker): Inbox {
  const queue: Record<string, unknown>[] = [];
  const waiting: { resolve: (m: Record<string, unknown>) => void; reject: (e: unknown) => void }[] = [];
  let failure: unknown;
  w.on('message', (m: Record<string, unknown>) => {
    const wt = waiting.shift();
    if (wt) wt.resolve(m);
    else queue.push(m);
  });
  const fail = (e: unknown) => {
    failure = e;
    for (const wt of waiting.splice(0)) wt.reject(e);
  };
  w.on('error', fail);
  w.on('exit', (code) => fail(new Error(`worker exited (code ${code})`)));
  return {
    next: () => {
      const m = queue.shift();
      if (m) {
        if (typeof m.error === 'string') return Promise.reject(new Error(`worker: ${m.error}`));
        return Promise.resolve(m);
      }
      if (failure) return Promise.reject(failure);
      return new Promise((resolve, reject) => waiting.push({
        resolve: (msg) => (typeof msg.error === 'string' ? reject(new Error(`worker: ${msg.error}`)) : resolve(msg)),
        reject,
      }));
    },
  };
}

describe('the addon inside worker_threads', () => {
  let dir = '';
  let workerFile = '';
  const addonPath = join(packageRoot(), ADDON_RELATIVE_PATH);

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'kdfuse-worker-'));
    workerFile = join(dir, 'worker.mjs');
    writeFileSync(workerFile, WORKER_SOURCE);
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it.skipIf(!nativeAddon)('computes the same numbers as the main thread, and setThreads is per environment', async () => {
    const a = nativeAddon!;
    const def = a.info().defaultThreads;
    const mainThreads = def + 1, workerThreads = def + 2;
    a.setThreads(mainThreads);
    const workers: Worker[] = [];
    try {
      const w1 = new Worker(workerFile, { workerData: { addonPath } });
      workers.push(w1);
      const in1 = inbox(w1);
      const ready = await in1.next();
      expect(ready.ready).toBe(true);
      expect(ready.threads, "the main thread's setThreads does not reach a new worker").toBe(def);
      expect(ready.defaultThreads).toBe(def);

      w1.postMessage({ cmd: 'setThreads', n: workerThreads });
      expect((await in1.next()).threads).toBe(workerThreads);
      expect(a.info().threads, "the worker's setThreads does not reach the main thread").toBe(mainThreads);

      // a second worker started now has the default too, not either thread's setting
      const w2 = new Worker(workerFile, { workerData: { addonPath } });
      workers.push(w2);
      const in2 = inbox(w2);
      expect((await in2.next()).threads).toBe(def);

      const rand = rng(2024);
      const rows = 24, cols = 3001;
      const student = randomLogits(rand, rows * cols), teacher = randomLogits(rand, rows * cols);
      const labels = randomLabels(rand, rows, cols);
      const msg = { cmd: 'run', student, teacher, labels, rows, cols };
      w1.postMessage(msg);
      w2.postMessage(msg);
      const [r1, r2] = await Promise.all([in1.next(), in2.next()]);

      const d = a.distillationLoss({ student, teacher, labels, rows, cols, temperature: 2, alpha: 0.3, computeTeacherGrad: true });
      const sm = a.softmax({ logits: student, rows, cols, temperature: 2 });
      const lsm = a.softmax({ logits: student, rows, cols, temperature: 2, log: true });
      for (const [r, name] of [[r1, 'worker 1'], [r2, 'worker 2']] as const) {
        expect(r.typeOk, `${name}: TypeError in the worker's realm`).toBe(true);
        expect(r.rangeOk, `${name}: RangeError rejection in the worker's realm`).toBe(true);
        // results do not depend on the number of threads: equal bit for bit across environments
        expectSameResult(r.d as DistillationLossResult, d, `${name} distillationLoss`);
        expectSameResult(r.dA as DistillationLossResult, d, `${name} distillationLossAsync`);
        expectSameBits(r.sm as Float32Array, sm, `${name} softmax`);
        expectSameBits(r.smA as Float32Array, lsm, `${name} log-softmax async`);
      }
      expect(r1.threads).toBe(workerThreads);
      expect(r2.threads).toBe(def);
      expect(a.info().threads).toBe(mainThreads);

      // the workers keep their own settings after the main thread changes its own
      a.setThreads(1);
      w2.postMessage({ cmd: 'info' });
      expect((await in2.next()).threads).toBe(def);
      w1.postMessage({ cmd: 'info' });
      expect((await in1.next()).threads).toBe(workerThreads);
    } finally {
      a.setThreads(0);
      await Promise.all(workers.map((w) => w.terminate()));
    }
    expect(a.info().threads).toBe(def);
  });

  it.skipIf(!nativeAddon)('terminating a worker with async calls in flight leaves the process working', async () => {
    for (let round = 0; round < 3; round++) {
      const w = new Worker(workerFile, { workerData: { addonPath } });
      const inb = inbox(w);
      await inb.next();
      w.postMessage({ cmd: 'inflight', rows: 64, cols: 40000 });
      expect((await inb.next()).started).toBe(true);
      await w.terminate();
      gc();
    }
    // terminated while inside sync and async entry points (napi calls fail mid-argument-reading)
    for (let round = 0; round < 12; round++) {
      const w = new Worker(workerFile, { workerData: { addonPath } });
      const inb = inbox(w);
      await inb.next();
      w.postMessage({ cmd: 'loop' });
      expect((await inb.next()).started).toBe(true);
      await new Promise((r) => setTimeout(r, round % 6));
      await w.terminate();
    }
    const rand = rng(3);
    const o = distillOptions(rand, 32, 1000, 0);
    const want = distillationLoss(cloneDistill(o));
    expectSameResult(await distillationLossAsync(cloneDistill(o)), want, 'after terminations');
  });
});

describe('small async calls compute on the calling thread', () => {
  it(`at most ${INLINE_ASYNC_MAX_ELEMENTS} elements: the same bits as the sync call, on both sides of the threshold`, async () => {
    const rand = rng(17);
    for (const [rows, cols] of [[256, 10], [1, 1], [16, 1024], [16, 1025], [64, 1000]] as const) {
      expect(runsInline(rows, cols)).toBe(rows * cols <= INLINE_ASYNC_MAX_ELEMENTS);
      const o = { ...distillOptions(rand, rows, cols, 1), computeTeacherGrad: true };
      const want = distillationLoss(cloneDistill(o));
      expectSameResult(await distillationLossAsync(o), want, `${rows}x${cols}`);
      const logits = randomLogits(rand, rows * cols);
      const sm = softmaxWithTemperature({ logits, rows, cols, temperature: 2 });
      expect(Buffer.from((await softmaxWithTemperatureAsync({ logits, rows, cols, temperature: 2 })).buffer)
        .equals(Buffer.from(sm.buffer))).toBe(true);
    }
  });

  it('a small async call that fails leaves a caller-owned out untouched (outputs are filled only on success)', async () => {
    const student = new Float32Array([1, 2, 3, 4, 5, NaN, 7, 8]), teacher = new Float32Array(8);
    const out = { gradStudent: new Float32Array(8).fill(42) };
    await expect(distillationLossAsync({ student, teacher, rows: 2, cols: 4, temperature: 1, out })).rejects.toThrow(RangeError);
    expect(Array.from(out.gradStudent)).toEqual(new Array(8).fill(42));
    const sm = new Float32Array(8).fill(42);
    await expect(softmaxWithTemperatureAsync({ logits: student, rows: 2, cols: 4, temperature: 1, out: sm })).rejects.toThrow(RangeError);
    expect(Array.from(sm)).toEqual(new Array(8).fill(42));
  });

  it('a sync call that fails on its data leaves no partial result in out: all NaN (native) or untouched (reference)', () => {
    // the NaN is in the last row: the native kernels finish earlier rows before they reach it
    const rows = 6, cols = 300, rand = rng(29);
    const student = randomLogits(rand, rows * cols), teacher = randomLogits(rand, rows * cols);
    student[rows * cols - 5] = NaN;
    const whole = (a: Float32Array, what: string): void => {
      const nan = a.every((v) => Number.isNaN(v)), kept = a.every((v) => v === 42);
      expect(nan || kept, `${what}: all NaN or all untouched`).toBe(true);
      if (backend().name.startsWith('native')) expect(nan, `${what}: NaN`).toBe(true);
    };
    const out = { gradStudent: new Float32Array(rows * cols).fill(42), gradTeacher: new Float32Array(rows * cols).fill(42),
      losses: new Float32Array(rows).fill(42) };
    expect(() => distillationLoss({ student, teacher, rows, cols, temperature: 2, reduction: 'none', computeTeacherGrad: true, out }))
      .toThrow(RangeError);
    whole(out.gradStudent, 'gradStudent');
    whole(out.gradTeacher, 'gradTeacher');
    whole(out.losses, 'losses');
    const sm = new Float32Array(rows * cols).fill(42);
    expect(() => softmaxWithTemperature({ logits: student, rows, cols, temperature: 2, out: sm })).toThrow(RangeError);
    whole(sm, 'softmax out');
  });

  it('bad input still rejects (never throws synchronously) on the inline path', async () => {
    const p = distillationLossAsync({ student: new Float32Array([1, NaN]), teacher: new Float32Array(2), rows: 1, cols: 2, temperature: 1 });
    await expect(p).rejects.toThrow(RangeError);
  });
});
