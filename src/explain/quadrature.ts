/**
 * Quadrature rules on [0, 1] for the path integral of integrated gradients: `steps` nodes
 * `alphas` and weights summing to 1, so a constant gradient (a linear model) is integrated exactly
 * by every rule. The trapezoid weights are 1/(n-1) inside and 1/(2(n-1)) at the ends; Captum's
 * sum to (n-1)/n, which scales every attribution by that factor, so they are not copied here.
 */
import { describe } from '../kernels/validate.js';

export const QUADRATURE_METHODS = ['riemann-left', 'riemann-right', 'riemann-middle', 'trapezoid', 'gauss-legendre'] as const;
export type QuadratureMethod = (typeof QUADRATURE_METHODS)[number];

export interface QuadratureRule {
  /** Nodes in [0, 1], ascending. */
  alphas: Float64Array;
  /** Weights, summing to 1. */
  weights: Float64Array;
}

/** Checks `steps` is an integer >= 1 (>= 2 for the trapezoid rule, whose ends are two nodes). */
export function checkSteps(steps: unknown, method: QuadratureMethod, name = 'steps'): number {
  if (typeof steps !== 'number') throw new TypeError(`${name} must be a number, got ${describe(steps)}`);
  if (!Number.isSafeInteger(steps) || steps < 1) throw new RangeError(`${name} must be an integer >= 1, got ${String(steps)}`);
  if (method === 'trapezoid' && steps < 2) throw new RangeError(`${name} must be >= 2 for trapezoid, got ${steps}`);
  return steps;
}

export function checkMethod(method: unknown, name = 'method'): QuadratureMethod {
  const list = QUADRATURE_METHODS.map((m) => `'${m}'`).join(', ');
  if (typeof method !== 'string') throw new TypeError(`${name} must be one of ${list}, got ${describe(method)}`);
  if (!(QUADRATURE_METHODS as readonly string[]).includes(method)) throw new RangeError(`${name} must be one of ${list}, got '${method}'`);
  return method as QuadratureMethod;
}

/** `n` nodes and weights of `method` on [0, 1]. */
export function quadrature(method: QuadratureMethod, n: number): QuadratureRule {
  checkMethod(method);
  checkSteps(n, method);
  const alphas = new Float64Array(n), weights = new Float64Array(n);
  switch (method) {
    case 'riemann-left':
    case 'riemann-right':
    case 'riemann-middle': {
      const shift = method === 'riemann-left' ? 0 : method === 'riemann-right' ? 1 : 0.5;
      for (let k = 0; k < n; k++) {
        alphas[k] = (k + shift) / n;
        weights[k] = 1 / n;
      }
      return { alphas, weights };
    }
    case 'trapezoid':
      for (let k = 0; k < n; k++) {
        alphas[k] = k / (n - 1);
        weights[k] = k === 0 || k === n - 1 ? 1 / (2 * (n - 1)) : 1 / (n - 1);
      }
      return { alphas, weights };
    case 'gauss-legendre':
      return gaussLegendre(n);
  }
}

/** P_n(x) and P_n'(x) by the three-term recurrence (k+1) P_{k+1} = (2k+1) x P_k - k P_{k-1}. */
function legendre(n: number, x: number): [number, number] {
  let p0 = 1, p1 = x;
  if (n === 0) return [1, 0];
  for (let k = 1; k < n; k++) {
    const p2 = ((2 * k + 1) * x * p1 - k * p0) / (k + 1);
    p0 = p1;
    p1 = p2;
  }
  // derivative from P_n and P_{n-1}; nodes are interior (|x| < 1), so 1 - x^2 > 0
  return [p1, (n * (x * p1 - p0)) / (x * x - 1)];
}

/**
 * Gauss–Legendre on [0, 1]: the roots of P_n by Newton's method from Tricomi's estimate
 * cos(pi (i - 1/4) / (n + 1/2)), weights 2 / ((1 - x^2) P_n'(x)^2), both mapped from [-1, 1].
 * Exact for polynomials of degree <= 2n - 1. The roots are symmetric, so half are computed.
 */
function gaussLegendre(n: number): QuadratureRule {
  const alphas = new Float64Array(n), weights = new Float64Array(n);
  for (let i = 0; i < Math.ceil(n / 2); i++) {
    let x = Math.cos((Math.PI * (i + 0.75)) / (n + 0.5));
    for (let iter = 0; iter < 100; iter++) {
      const [p, d] = legendre(n, x);
      const dx = p / d;
      x -= dx;
      if (Math.abs(dx) <= 1e-16 * Math.max(1, Math.abs(x))) break;
    }
    const dp = legendre(n, x)[1];
    const w = 2 / ((1 - x * x) * dp * dp);
    // x is the i-th largest root; its mirror -x the i-th smallest
    alphas[n - 1 - i] = (1 + x) / 2;
    alphas[i] = (1 - x) / 2;
    weights[n - 1 - i] = w / 2;
    weights[i] = w / 2;
  }
  if (n % 2 === 1) alphas[(n - 1) / 2] = 0.5;  // the middle root is exactly 0
  return { alphas, weights };
}
