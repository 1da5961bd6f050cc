/**
 * The fuzz inputs: junk values, typed arrays in every memory state kdfuse must survive (detached,
 * SharedArrayBuffer-backed, aliasing each other, wrong type or length), tfjs tensors (live, disposed,
 * wrong dtype or rank), objects whose getters throw, and huge dimensions. Every value comes from
 * the seeded generator of src/explain/random.ts, so a case is reproduced from (seed, index) alone.
 */
import * as tf from '@tensorflow/tfjs';
import { normalSource, uniformSource } from '../src/explain/random.js';

/** A thrown value that is neither a TypeError nor a RangeError, so the fuzzer can tell it apart. */
export class GetterBomb extends Error {
  override name = 'GetterBomb';
}

export class Gen {
  readonly rand: () => number;
  private readonly normal: () => number;
  /** Tensors made for this case, disposed after the call. */
  readonly tensors: tf.Tensor[] = [];

  constructor(seed: number) {
    this.rand = uniformSource(seed);
    this.normal = normalSource(seed ^ 0x5bd1e995);
  }

  chance(p: number): boolean {
    return this.rand() < p;
  }
  int(n: number): number {
    return Math.floor(this.rand() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }

  /** A float value: mostly normal, sometimes NaN, +-Infinity, huge, subnormal or -0. */
  float(): number {
    if (this.chance(0.9)) return this.normal() * this.pick([1, 4, 0.01, 100]);
    return this.pick([NaN, Infinity, -Infinity, 3.4e38, -3.4e38, 1e-45, -0, 1e30, 88.7]);
  }

  /** A dimension: mostly the intended one, sometimes junk or huge. */
  dim(intended: number): unknown {
    if (this.chance(0.85)) return intended;
    return this.pick([0, -1, 1.5, NaN, Infinity, 2 ** 31, 2 ** 32 + 1, 2 ** 53, 1e15, '4', null, undefined, intended + 1]);
  }

  /** Memory for n floats: plain, on a SharedArrayBuffer, detached, or a sub-view of a bigger buffer. */
  f32(n: number, kind = this.bufferKind()): Float32Array {
    const fill = (a: Float32Array): Float32Array => {
      for (let i = 0; i < a.length; i++) a[i] = this.float();
      return a;
    };
    switch (kind) {
      case 'shared':
        return fill(new Float32Array(new SharedArrayBuffer(4 * n)));
      case 'detached': {
        const a = fill(new Float32Array(n));
        structuredClone(a.buffer, { transfer: [a.buffer as ArrayBuffer] });  // a is now detached: length 0
        return a;
      }
      case 'offset': {
        const buf = new ArrayBuffer(4 * (n + 3));
        return fill(new Float32Array(buf, 8, n));
      }
      case 'short':
        return fill(new Float32Array(Math.max(0, n - 1 - this.int(3))));
      default:
        return fill(new Float32Array(n));
    }
  }

  bufferKind(): 'plain' | 'shared' | 'detached' | 'offset' | 'short' {
    const r = this.rand();
    return r < 0.7 ? 'plain' : r < 0.8 ? 'shared' : r < 0.87 ? 'detached' : r < 0.94 ? 'offset' : 'short';
  }

  labels(rows: number, cols: number): Int32Array | number[] {
    const y = new Int32Array(rows);
    for (let i = 0; i < rows; i++) {
      const r = this.rand();
      y[i] = r < 0.85 ? this.int(cols) : r < 0.93 ? -100 : this.pick([-1, cols, 2 ** 31 - 1, -(2 ** 31)]);
    }
    return this.chance(0.2) ? Array.from(y) : y;
  }

  /** A tfjs tensor [rows, cols]: live, disposed, int32, or of another rank. */
  tensor(rows: number, cols: number): tf.Tensor {
    const data = Float32Array.from({ length: rows * cols }, () => (this.chance(0.97) ? this.normal() : this.float()));
    const r = this.rand();
    let t: tf.Tensor;
    if (r < 0.8) t = tf.tensor2d(data, [rows, cols]);
    else if (r < 0.88) {
      t = tf.tensor2d(data, [rows, cols]);
      t.dispose();
      return t;
    } else if (r < 0.93) t = tf.tensor2d(Int32Array.from(data, Math.round), [rows, cols], 'int32');
    else if (r < 0.97) t = tf.tensor1d(data);
    else t = tf.tensor3d(data, [1, rows, cols]);
    this.tensors.push(t);
    return t;
  }

  /** Anything at all. */
  junk(depth = 0): unknown {
    const r = this.int(30);
    switch (r) {
      case 0: return undefined;
      case 1: return null;
      case 2: return NaN;
      case 3: return this.pick([Infinity, -Infinity, -0, 2 ** 53, -1, 1e308, 5e-324]);
      case 4: return this.int(10);
      case 5: return this.pick(['', 'kl', 'mean', 'abc', '10', 'auto', 'cuda']);
      case 6: return this.chance(0.5);
      case 7: return Symbol('junk');
      case 8: return 10n;
      case 9: return [];
      case 10: return [1, 2, 3];
      case 11: return {};
      case 12: return () => 1;
      case 13: return new Date(0);
      case 14: return this.throwingObject();
      case 15: return this.throwingProxy();
      case 16: return this.f32(this.int(20));
      case 17: return new Float64Array(this.int(20));
      case 18: return new Int32Array(this.int(20));
      case 19: return new Uint8Array(this.int(20));
      case 20: return this.tensor(1 + this.int(4), 1 + this.int(5));
      case 21: return Object.freeze({ rows: 2, cols: 3 });
      case 22: return new Array(1e6);  // long and sparse: holes, and a length no one should loop over blindly
      case 23: return Promise.resolve(1);
      case 24: return new Map([[1, 2]]);
      case 25: return depth < 2 ? [this.junk(depth + 1), this.junk(depth + 1)] : 0;
      case 26: return depth < 2 ? { a: this.junk(depth + 1) } : {};
      case 27: return new SharedArrayBuffer(16);
      case 28: return new ArrayBuffer(16);
      default: return Object.create(null);
    }
  }

  /** An object whose every property read throws. */
  throwingObject(): object {
    return new Proxy(
      {},
      {
        get(_, key) {
          if (key === Symbol.toPrimitive || key === 'then') return undefined;
          throw new GetterBomb(`getter ${String(key)}`);
        },
        has() {
          throw new GetterBomb('has');
        },
        ownKeys() {
          throw new GetterBomb('ownKeys');
        },
      },
    );
  }

  /** A proxy whose traps all throw (also getPrototypeOf, so instanceof throws). */
  throwingProxy(): object {
    const bomb = (): never => {
      throw new GetterBomb('trap');
    };
    return new Proxy({}, { get: bomb, has: bomb, ownKeys: bomb, getPrototypeOf: bomb, getOwnPropertyDescriptor: bomb });
  }

  /**
   * Mutates an options object: a field replaced by junk, a getter that throws, an unknown key,
   * or the whole object replaced.
   */
  mutate(o: Record<string, unknown>): unknown {
    const keys = Object.keys(o);
    if (this.chance(0.05)) return this.junk();
    for (const k of keys) if (this.chance(0.08)) o[k] = this.junk();
    if (this.chance(0.05)) o[this.pick(['temprature', 'alfa', 'reduce', 'extra'])] = 1;
    if (this.chance(0.05) && keys.length) {
      const k = this.pick(keys);
      Object.defineProperty(o, k, {
        enumerable: true,
        get() {
          throw new GetterBomb(`getter ${k}`);
        },
      });
    }
    return o;
  }

  dispose(): void {
    for (const t of this.tensors) if (!t.isDisposed) t.dispose();
  }
}
