/** Shared helpers for the tests: a seeded generator, random logits, and comparisons with tolerances. */
import { afterAll, afterEach, beforeAll, beforeEach, expect } from 'vitest';
import { uniformSource } from '../src/explain/random.js';

/** mulberry32: small, fast, seeded; good enough for test data (the library's own seeded source). */
export const rng = uniformSource;

export function normal(rand: () => number): number {
  const u = Math.max(rand(), 1e-12), v = rand();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

export function randomLogits(rand: () => number, n: number, scale = 3): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = normal(rand) * scale;
  return x;
}

export function randomLabels(rand: () => number, rows: number, cols: number, ignoreIndex = -100, ignoreFraction = 0): Int32Array {
  const y = new Int32Array(rows);
  for (let r = 0; r < rows; r++) y[r] = rand() < ignoreFraction ? ignoreIndex : Math.floor(rand() * cols);
  return y;
}

export function maxAbs(x: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]!));
  return m;
}

/** |a - b| <= rel * max(|b|, floor), with a message naming what differed. */
export function expectClose(a: number, b: number, rel: number, what: string, floor = 1e-6): void {
  const tol = rel * Math.max(Math.abs(b), floor);
  if (!(Math.abs(a - b) <= tol) && !(a === b)) {
    expect.fail(`${what}: got ${a}, expected ${b} (|diff| ${Math.abs(a - b)} > ${tol})`);
  }
}

/**
 * Elementwise |a - b| <= rel * max(max|b|, floor) + abs (the gradient tolerance); equal infinities
 * are allowed. `floor` keeps all-zero references (single-class rows) from demanding exact zeros.
 */
export function expectArrayClose(a: ArrayLike<number>, b: ArrayLike<number>, rel: number, what: string, floor = 1e-10, abs = 0): void {
  expect(a.length, `${what}: length`).toBe(b.length);
  const tol = rel * Math.max(maxAbs(Array.from(b).filter(Number.isFinite)), floor) + abs;
  for (let i = 0; i < b.length; i++) {
    const x = a[i]!, y = b[i]!;
    if (x === y) continue;
    if (!(Math.abs(x - y) <= tol)) expect.fail(`${what}[${i}]: got ${x}, expected ${y} (|diff| ${Math.abs(x - y)} > ${tol})`);
  }
}

export function hasNaN(x: ArrayLike<number>): boolean {
  for (let i = 0; i < x.length; i++) if (Number.isNaN(x[i])) return true;
  return false;
}

/** Registers hooks failing any test of this file that leaves more tfjs tensors than it found. */
export function expectNoTensorLeaks(numTensors: () => number): void {
  let before = 0;
  beforeEach(() => {
    before = numTensors();
  });
  afterEach(() => {
    expect(numTensors(), 'tensors leaked by this test').toBe(before);
  });
}

/** The part of tfjs that onTfBackend needs (the caller passes its tfjs import: this file loads none). */
interface TfBackends {
  ready(): Promise<void>;
  getBackend(): string;
  setBackend(name: string): Promise<boolean>;
}

/** Runs this file's tests on the tfjs backend `name`, and gives the previous backend back after them. */
export function onTfBackend(tf: TfBackends, name: string): void {
  let previous: string;
  beforeAll(async () => {
    await tf.ready();
    previous = tf.getBackend();
    await tf.setBackend(name);
  });
  afterAll(async () => {
    await tf.setBackend(previous);
  });
}
