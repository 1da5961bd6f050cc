/**
 * The CUDA runtime: routing of the Float32Array API (setDevice, backend()) and the device-resident
 * kd.cuda API. Without a device (CI here: the driver is too old for the runtime) CUDA must be
 * reported as unavailable with the reason, every kd.cuda call that needs a device must throw a
 * clear DeviceUnavailableError after checking its arguments, and everything must still compute on the CPU. The
 * parts that need a GPU are skipped where there is none and run on a GPU machine.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import * as kd from '../src/index.js';
import { nativeAddon, packageRoot } from '../src/kernels/native.js';
import { randomLabels, randomLogits, rng } from './helpers.js';

const hasCuda = kd.cuda.available();
const UNAVAILABLE = /^(no CUDA device \(.+\)|kdfuse was built without CUDA)/;

/** Runs f, expecting it to throw exactly `cls` (not a subclass) with a message matching `re`. */
function expectThrow(f: () => unknown, cls: new (...a: never[]) => Error, re: RegExp): void {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err, `expected ${cls.name} matching ${re}`).toBeInstanceOf(Error);
  expect((err as Error).constructor, (err as Error).message).toBe(cls);
  expect((err as Error).message).toMatch(re);
}

/** Whether the cmake-js build in build/ found a CUDA compiler (and was not replaced by a node-gyp build). */
function cmakeFoundCuda(): boolean | undefined {
  const root = packageRoot();
  const cache = join(root, 'build', 'CMakeCache.txt');
  if (!existsSync(cache) || existsSync(join(root, 'build', 'config.gypi'))) return undefined;
  const text = readFileSync(cache, 'utf8');
  if (/^KDFUSE_CUDA:BOOL=OFF$/m.test(text)) return false;
  return /^CMAKE_CUDA_COMPILER:\w+=\S+/m.test(text) && !/^CMAKE_CUDA_COMPILER:\w+=.*NOTFOUND/m.test(text);
}

const S = new Float32Array([1, 2, 3, 4]), T = new Float32Array([4, 3, 2, 1]);
const LOSS_T2 = 2.338305953847457;  // T^2 KL at T = 2, float64 by hand (as in fallback.test.ts)

afterEach(() => {
  kd.setDevice('auto');
});

describe('CUDA status', () => {
  it('backend().cuda says whether CUDA was built, is available, and why not', () => {
    const c = kd.backend().cuda;
    expect(typeof c.built).toBe('boolean');
    expect(typeof c.available).toBe('boolean');
    expect(typeof c.active).toBe('boolean');
    expect(c.reason.length).toBeGreaterThan(0);
    expect(kd.cuda.info()).toEqual(c);
    expect(kd.cuda.available()).toBe(c.available);
    if (!nativeAddon) {
      expect(c.built).toBe(false);
      expect(c.available).toBe(false);
      expect(c.reason).toMatch(/native addon is not in use/);
      return;
    }
    const found = cmakeFoundCuda();
    if (found !== undefined) expect(c.built, 'the cmake build found nvcc, so the addon must include CUDA').toBe(found);
    if (!c.built) expect(c.reason).toMatch(/built without CUDA/);
    if (c.built && !c.available) {
      // the driver's reason as the CUDA runtime words it, e.g. "CUDA driver version is insufficient ..."
      expect(c.reason).not.toMatch(/built without/);
      expect(c.active).toBe(false);
      expect(kd.backend().name).toMatch(/^native-/);
    }
    if (c.available) {
      expect(c.device).toMatch(/compute capability/);
      expect(c.active).toBe(true);
      expect(kd.backend().name).toBe('cuda');
    }
  });
});

describe('CUDA without a device', () => {
  it.skipIf(hasCuda)('kd.cuda.available() is false', () => {
    expect(kd.cuda.available()).toBe(false);
    expect(kd.cuda.info().available).toBe(false);
    expect(kd.cuda.info().active).toBe(false);
  });

  it.skipIf(hasCuda)('upload throws a DeviceUnavailableError saying why there is no device', () => {
    expectThrow(() => kd.cuda.upload(new Float32Array([1, 2, 3])), kd.DeviceUnavailableError, UNAVAILABLE);
    expectThrow(() => kd.cuda.upload(new Int32Array([1, 2, 3])), kd.DeviceUnavailableError, UNAVAILABLE);
    if (nativeAddon) {
      const c = kd.backend().cuda;
      if (c.built) expectThrow(() => kd.cuda.upload(new Float32Array(2)), kd.DeviceUnavailableError, new RegExp(`^no CUDA device \\(${escape(c.reason)}\\)$`));
      // the addon says the same when called directly
      expectThrow(() => nativeAddon!.cudaUpload(new Float32Array(2)), Error, UNAVAILABLE);
    } else {
      expectThrow(() => kd.cuda.upload(new Float32Array(2)), kd.DeviceUnavailableError, /native addon is not in use/);
    }
  });

  it('upload checks its argument first', () => {
    const upload = kd.cuda.upload as (x: unknown) => unknown;
    expectThrow(() => upload([1, 2]), TypeError, /^data must be a Float32Array or an Int32Array, got Array$/);
    expectThrow(() => upload(new Float64Array(2)), TypeError, /^data must be a Float32Array or an Int32Array, got Float64Array$/);
    expectThrow(() => upload(undefined), TypeError, /^data must be a Float32Array or an Int32Array, got undefined$/);
    expectThrow(() => upload(new Float32Array(0)), RangeError, /^data must have at least 1 element, got 0$/);
    if (nativeAddon) {
      const raw = nativeAddon.cudaUpload as (x: unknown) => unknown;
      expectThrow(() => raw([1, 2]), TypeError, /^data must be a Float32Array or an Int32Array, got Array$/);
      expectThrow(() => raw(new Int32Array(0)), RangeError, /^data must have at least 1 element, got 0$/);
    }
  });

  // Bad arguments are reported before the missing device, by the TypeScript layer and by the addon alike.
  const badCalls: [string, Record<string, unknown>, ErrorConstructor | TypeErrorConstructor | RangeErrorConstructor, RegExp][] = [
    ['rows 0', { rows: 0, cols: 4 }, RangeError, /^rows must be an integer >= 1, got 0$/],
    ['cols string', { rows: 1, cols: '4' }, TypeError, /^cols must be a number, got string '4'$/],
    ['temperature 0', { rows: 1, cols: 4, temperature: 0 }, RangeError, /^temperature must be a finite number > 0, got 0$/],
    ['alpha 2', { rows: 1, cols: 4, alpha: 2 }, RangeError, /^alpha must be in \[0, 1\], got 2$/],
    ['labelSmoothing 1', { rows: 1, cols: 4, labelSmoothing: 1 }, RangeError, /^labelSmoothing must be in \[0, 1\), got 1$/],
    ['reduction avg', { rows: 1, cols: 4, reduction: 'avg' }, RangeError, /^reduction must be one of 'mean', 'sum', 'none', got 'avg'$/],
    ['divergence 1', { rows: 1, cols: 4, divergence: 1 }, TypeError, /^divergence must be one of/],
    ['ignoreIndex 1.5', { rows: 1, cols: 4, ignoreIndex: 1.5 }, RangeError, /^ignoreIndex must be a 32-bit integer, got 1.5$/],
    ['computeTeacherGrad 1', { rows: 1, cols: 4, computeTeacherGrad: 1 }, TypeError, /^computeTeacherGrad must be a boolean, got number 1$/],
    ['download string', { rows: 1, cols: 4, download: 'gradStudent' }, TypeError, /^download must be an array of 'gradStudent', 'gradTeacher', 'losses', got string/],
    ['download bad name', { rows: 1, cols: 4, download: ['grads'] }, RangeError, /^download\[0\] must be one of 'gradStudent', 'gradTeacher', 'losses', got 'grads'$/],
    ['download gradTeacher without computing it', { rows: 1, cols: 4, download: ['gradTeacher'] }, RangeError,
      /^download includes 'gradTeacher' but computeTeacherGrad is false/],
    ['download gradStudent without computing it', { rows: 1, cols: 4, download: ['gradStudent'], computeStudentGrad: false }, RangeError,
      /^download includes 'gradStudent' but computeStudentGrad is false$/],
    ['download losses with mean', { rows: 1, cols: 4, download: ['losses'] }, RangeError,
      /^download includes 'losses' but reduction is 'mean'; per-row losses come with reduction 'none'$/],
    ['gradOutput NaN', { rows: 1, cols: 4, gradOutput: NaN }, RangeError, /^gradOutput must be a finite number, got NaN$/],
    ['gradOutput array with mean', { rows: 1, cols: 4, gradOutput: new Float32Array(1) }, TypeError, /^gradOutput must be a number/],
    ['student missing', { rows: 1, cols: 4 }, TypeError, /^student must be a float32 DeviceArray \(from kd.cuda.upload\), got undefined$/],
    ['student host array', { rows: 1, cols: 4, student: S, teacher: T }, TypeError,
      /^student must be a float32 DeviceArray \(from kd.cuda.upload\), got Float32Array$/],
    ['student plain object', { rows: 1, cols: 4, student: { length: 4, dtype: 'float32' } }, TypeError,
      /^student must be a float32 DeviceArray \(from kd.cuda.upload\), got object$/],
    ['gradOutput rows host array', { rows: 1, cols: 4, reduction: 'none', gradOutput: new Float32Array(1) }, TypeError,
      /^student must be a float32 DeviceArray/],
  ];

  for (const [what, options, cls, re] of badCalls) {
    it(`distillationLoss: ${what} -> ${cls.name} naming the argument`, () => {
      const f = kd.cuda.distillationLoss as (o: unknown) => unknown;
      expectThrow(() => f(options), cls, re);
      if (nativeAddon) expectThrow(() => nativeAddon!.cudaDistillationLoss(options), cls, re);
    });
  }

  it('distillationLoss: options must be an object', () => {
    const f = kd.cuda.distillationLoss as (o: unknown) => unknown;
    expectThrow(() => f(null), TypeError, /^options must be an object, got null$/);
    expectThrow(() => f(new Float32Array(2)), TypeError, /^options must be an object, got Float32Array$/);
    if (nativeAddon) expectThrow(() => (nativeAddon!.cudaDistillationLoss as (o: unknown) => unknown)(7), TypeError, /^options must be an object/);
  });

  it.skipIf(!nativeAddon)('DeviceArray cannot be made from JavaScript', () => {
    const Cls = nativeAddon!.DeviceArray as unknown as new () => unknown;
    expectThrow(() => new Cls(), TypeError, /^DeviceArray cannot be constructed directly; use kd.cuda.upload\(data\)$/);
  });

  it.skipIf(hasCuda)("setDevice('cuda') throws a DeviceUnavailableError and the CPU backend stays active", () => {
    const before = kd.backend().name;
    expect(before).not.toBe('cuda');
    expectThrow(() => kd.setDevice('cuda'), kd.DeviceUnavailableError, /^setDevice\('cuda'\): (no CUDA device \(.+\)|kdfuse was built without CUDA)/);
    expect(kd.backend().name).toBe(before);
    expect(kd.backend().cuda.active).toBe(false);
    const r = kd.distillationLoss({ student: S, teacher: T, rows: 1, cols: 4, temperature: 2 });
    expect(Math.abs(r.loss - LOSS_T2)).toBeLessThan(1e-6);
    if (nativeAddon) {
      expectThrow(() => nativeAddon!.setDevice('cuda'), Error, /^setDevice\('cuda'\): /);
      expect(nativeAddon.info().deviceSetting).toBe('auto');
      expect(nativeAddon.info().device).toBe('cpu');
    }
  });

  it('setDevice rejects bad values with TypeError / RangeError', () => {
    const set = kd.setDevice as (d: unknown) => void;
    expectThrow(() => set(1), TypeError, /^device must be one of 'cpu', 'cuda', 'auto', got number 1$/);
    expectThrow(() => set(undefined), TypeError, /^device must be one of 'cpu', 'cuda', 'auto', got undefined$/);
    expectThrow(() => set('gpu'), RangeError, /^device must be one of 'cpu', 'cuda', 'auto', got 'gpu'$/);
    if (nativeAddon) {
      const raw = nativeAddon.setDevice as (d: unknown) => void;
      expectThrow(() => raw(null), TypeError, /^device must be one of 'cpu', 'cuda', 'auto', got null$/);
      expectThrow(() => raw('GPU'), RangeError, /^device must be one of 'cpu', 'cuda', 'auto', got 'GPU'$/);
    }
  });

  it.skipIf(hasCuda)("everything computes on the CPU under 'cpu' and 'auto'", async () => {
    for (const d of ['cpu', 'auto'] as const) {
      kd.setDevice(d);
      expect(kd.backend().name).not.toBe('cuda');
      if (nativeAddon) expect(nativeAddon.info().deviceSetting).toBe(d);
      const r = kd.distillationLoss({ student: S, teacher: T, rows: 1, cols: 4, temperature: 2 });
      expect(Math.abs(r.loss - LOSS_T2)).toBeLessThan(1e-6);
      const ra = await kd.distillationLossAsync({ student: S, teacher: T, rows: 1, cols: 4, temperature: 2 });
      expect(ra.loss).toBe(r.loss);
      const p = kd.softmaxWithTemperature({ logits: S, rows: 1, cols: 4 });
      expect(Math.abs(p.reduce((a, b) => a + b, 0) - 1)).toBeLessThan(1e-6);
      const pa = await kd.softmaxWithTemperatureAsync({ logits: S, rows: 1, cols: 4 });
      expect(pa).toEqual(p);
      const dx = kd.softmaxWithTemperatureBackward({ output: p, gradOutput: new Float32Array([1, 0, 0, 0]), rows: 1, cols: 4 });
      const dxa = await kd.softmaxWithTemperatureBackwardAsync({ output: p, gradOutput: new Float32Array([1, 0, 0, 0]), rows: 1, cols: 4 });
      expect(dxa).toEqual(dx);
    }
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// ---------------------------------------------------------------- with a GPU

function expectAllClose(a: ArrayLike<number>, b: ArrayLike<number>, what: string, tol = 1e-5): void {
  expect(a.length, what).toBe(b.length);
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= tol * Math.max(1, Math.abs(b[i]!)))) {
      expect.fail(`${what}[${i}]: ${a[i]} vs ${b[i]} (|diff| ${d})`);
    }
  }
}

function onCpu<T>(f: () => T): T {
  kd.setDevice('cpu');
  try {
    return f();
  } finally {
    kd.setDevice('auto');
  }
}

describe.skipIf(!hasCuda)('CUDA with a device', () => {
  const rand = rng(6);
  const rows = 37, cols = 1000;
  const s = randomLogits(rand, rows * cols), t = randomLogits(rand, rows * cols);
  const labels = randomLabels(rand, rows, cols, -100, 0.2);

  it("backend() names 'cuda' with the device; setDevice switches", () => {
    const b = kd.backend();
    expect(b.name).toBe('cuda');
    expect(b.cuda.device).toBeTruthy();
    expect(b.reason).toContain(b.cuda.device!);
    kd.setDevice('cpu');
    expect(kd.backend().name).toMatch(/^native-/);
    expect(kd.backend().cuda.active).toBe(false);
    expect(kd.backend().cuda.available).toBe(true);
    kd.setDevice('cuda');
    expect(kd.backend().name).toBe('cuda');
    kd.setDevice('auto');
    expect(kd.backend().name).toBe('cuda');
  });

  it('upload / download round trip, dtype, length, dispose', () => {
    const f = kd.cuda.upload(s);
    expect(f.length).toBe(s.length);
    expect(f.dtype).toBe('float32');
    expect(f.disposed).toBe(false);
    expect(f.download()).toEqual(s);
    const i = kd.cuda.upload(labels);
    expect(i.dtype).toBe('int32');
    expect(i.download()).toEqual(labels);
    f.dispose();
    f.dispose();  // again: nothing
    expect(f.disposed).toBe(true);
    expectThrow(() => f.download(), TypeError, /disposed/);
    expectThrow(() => kd.cuda.distillationLoss({ student: f, teacher: f, rows, cols }), TypeError,
      /^student must be a DeviceArray that is not disposed, got a disposed one$/);
    i.dispose();
  });

  it('the Float32Array API on the device equals the CPU within 1e-5 (sync and async)', async () => {
    const opts = { student: s, teacher: t, rows, cols, labels, temperature: 2, computeTeacherGrad: true, reduction: 'none' as const };
    const cpu = onCpu(() => kd.distillationLoss(opts));
    const gpu = kd.distillationLoss(opts);
    const gpuAsync = await kd.distillationLossAsync(opts);
    for (const r of [gpu, gpuAsync]) {
      expect(Math.abs(r.loss - cpu.loss)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(cpu.loss)));
      expectAllClose(r.losses!, cpu.losses!, 'losses');
      expectAllClose(r.gradStudent!, cpu.gradStudent!, 'gradStudent');
      expectAllClose(r.gradTeacher!, cpu.gradTeacher!, 'gradTeacher');
    }
    const sm = { logits: s, rows, cols, temperature: 3 };
    const pc = onCpu(() => kd.logSoftmaxWithTemperature(sm));
    expectAllClose(kd.logSoftmaxWithTemperature(sm), pc, 'logSoftmax');
    expectAllClose(await kd.logSoftmaxWithTemperatureAsync(sm), pc, 'logSoftmax async');
    const bw = { output: kd.softmaxWithTemperature(sm), gradOutput: t, rows, cols, temperature: 3 };
    const dc = onCpu(() => kd.softmaxWithTemperatureBackward(bw));
    expectAllClose(kd.softmaxWithTemperatureBackward(bw), dc, 'softmax backward');
    expectAllClose(await kd.softmaxWithTemperatureBackwardAsync(bw), dc, 'softmax backward async');
  });

  it('device-resident loss equals the CPU result within 1e-5; downloads only what is asked', () => {
    const ds = kd.cuda.upload(s), dt = kd.cuda.upload(t), dl = kd.cuda.upload(labels);
    try {
      for (const divergence of ['kl', 'reverse-kl', 'jsd'] as const) {
        const o = { rows, cols, temperature: 2, alpha: 0.7, labelSmoothing: 0.1, divergence, computeTeacherGrad: true };
        const cpu = onCpu(() => kd.distillationLoss({ ...o, student: s, teacher: t, labels }));
        const r = kd.cuda.distillationLoss({ ...o, student: ds, teacher: dt, labels: dl, download: ['gradStudent'] });
        expect(Math.abs(r.loss - cpu.loss)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(cpu.loss)));
        expect(r.gradStudent).toBeInstanceOf(Float32Array);
        expectAllClose(r.gradStudent as Float32Array, cpu.gradStudent!, `${divergence} gradStudent`);
        const gt = r.gradTeacher as kd.DeviceArray<Float32Array>;
        expect(gt).not.toBeInstanceOf(Float32Array);
        expect(gt.dtype).toBe('float32');
        expect(gt.length).toBe(rows * cols);
        expectAllClose(gt.download(), cpu.gradTeacher!, `${divergence} gradTeacher`);
        gt.dispose();
        expect(r.losses).toBeUndefined();
      }
      const none = kd.cuda.distillationLoss({ student: ds, teacher: dt, rows, cols, reduction: 'none', computeStudentGrad: false, download: ['losses'] });
      const cpuNone = onCpu(() => kd.distillationLoss({ student: s, teacher: t, rows, cols, reduction: 'none', computeStudentGrad: false }));
      expectAllClose(none.losses as Float32Array, cpuNone.losses!, 'losses');
      expect(none.gradStudent).toBeUndefined();
    } finally {
      ds.dispose();
      dt.dispose();
      dl.dispose();
    }
  });

  it('repeated calls with reused outputs give identical results', () => {
    const ds = kd.cuda.upload(s), dt = kd.cuda.upload(t);
    const first = kd.cuda.distillationLoss({ student: ds, teacher: dt, rows, cols });
    const gs = first.gradStudent as kd.DeviceArray<Float32Array>;
    const ref = gs.download();
    for (let i = 0; i < 20; i++) {
      const r = kd.cuda.distillationLoss({ student: ds, teacher: dt, rows, cols, out: { gradStudent: gs } });
      expect(r.loss).toBe(first.loss);
      expect(r.gradStudent).toBe(gs);
    }
    expect(gs.download()).toEqual(ref);
    expectThrow(() => kd.cuda.distillationLoss({ student: ds, teacher: dt, rows, cols, out: { gradStudent: ds } }), RangeError,
      /^out.gradStudent must not be the same DeviceArray as student$/);
    ds.dispose();
    dt.dispose();
    gs.dispose();
  });

  it('device errors: wrong sizes and types, bad labels and NaN, as RangeError / TypeError', () => {
    const ds = kd.cuda.upload(s), dt = kd.cuda.upload(t);
    const short = kd.cuda.upload(new Float32Array(5));
    const ints = kd.cuda.upload(new Int32Array(rows * cols));
    const badLabels = new Int32Array(rows);
    badLabels[3] = cols;
    const dbl = kd.cuda.upload(badLabels);
    const nan = s.slice();
    nan[cols * 2 + 7] = NaN;
    const dnan = kd.cuda.upload(nan);
    try {
      expectThrow(() => kd.cuda.distillationLoss({ student: short, teacher: dt, rows, cols }), RangeError,
        new RegExp(`^student must have rows \\* cols = ${rows * cols} elements, got 5$`));
      expectThrow(() => kd.cuda.distillationLoss({ student: ints as never, teacher: dt, rows, cols }), TypeError,
        /^student must be a float32 DeviceArray, got an int32 DeviceArray$/);
      expectThrow(() => kd.cuda.distillationLoss({ student: ds, teacher: dt, rows, cols, labels: dbl }), RangeError, /^labels\[3\] must be an integer in/);
      expectThrow(() => kd.cuda.distillationLoss({ student: dnan, teacher: dt, rows, cols }), RangeError, /^student must not contain NaN/);
    } finally {
      for (const a of [ds, dt, short, ints, dbl, dnan]) a.dispose();
    }
  });
});
