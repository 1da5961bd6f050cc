/**
 * Weighted (ridge) least squares for the surrogate fits of KernelSHAP and LIME:
 *
 *     minimise  Σ_r w_r (y_r − b − z_r·β)²  +  λ ||β||²      (b unpenalised, as in scikit-learn's Ridge)
 *
 * The weighted normal equations of the centred design are accumulated in float64 here (one pass
 * over the samples), and the small cols × cols system is solved with ml-matrix's singular value
 * decomposition. The SVD because the coalition designs are often rank-deficient (a feature never
 * switched off, two groups always switched together in a small sample): the pseudo-inverse gives the
 * minimum-norm least-squares solution there instead of a singular-matrix failure. The normal
 * equations rather than an SVD of the whole design, because ml-matrix's SVD of a tall matrix forms
 * a samples × samples factor: 0.2 s for 2080 × 15 and 0.8 s for 2176 × 63 per explained example,
 * against about 50 ms for this route on the same shared machine; squaring the condition number is harmless at these
 * sizes in float64. See docs/explain.md.
 */
import { Matrix, SingularValueDecomposition } from 'ml-matrix';

export interface LeastSquaresFit {
  /** One coefficient per column of the design. */
  coefficients: Float64Array;
  /** b (0 when fitted without intercept). */
  intercept: number;
  /** Weighted R² of the fit: 1 − Σw(y − ŷ)² / Σw(y − ȳ_w)² (1 when y is constant and fitted exactly). */
  r2: number;
}

/**
 * `design` is `rows × cols` row-major; `weights` are >= 0 (at least one > 0). With `intercept`
 * false the fit goes through the origin (KernelSHAP's constrained form).
 */
export function weightedLeastSquares(
  design: Float64Array,
  y: Float64Array,
  weights: Float64Array,
  cols: number,
  options: { ridge?: number; intercept?: boolean } = {},
): LeastSquaresFit {
  const rows = y.length, ridge = options.ridge ?? 0, withIntercept = options.intercept ?? true;
  let wSum = 0;
  for (let r = 0; r < rows; r++) wSum += weights[r]!;
  if (!(wSum > 0)) throw new RangeError('weightedLeastSquares: the weights must not all be zero');
  // weighted means (the intercept absorbs them); zeros without an intercept
  const zMean = new Float64Array(cols);
  let yMean = 0;
  if (withIntercept) {
    for (let r = 0; r < rows; r++) {
      const w = weights[r]! / wSum;
      yMean += w * y[r]!;
      for (let c = 0; c < cols; c++) zMean[c]! += w * design[r * cols + c]!;
    }
  }
  // normal equations (ZcᵀWZc + λI) β = ZcᵀW yc, accumulated in float64, solved with the SVD of the
  // small cols × cols Gram matrix: its pseudo-inverse gives the minimum-norm solution when singular
  const g = new Float64Array(cols * cols), hv = new Float64Array(cols), zc = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const w = weights[r]!;
    if (w === 0) continue;
    for (let c = 0; c < cols; c++) zc[c] = design[r * cols + c]! - zMean[c]!;
    const yc = y[r]! - yMean;
    for (let i = 0; i < cols; i++) {
      const wz = w * zc[i]!;
      if (wz === 0) continue;
      hv[i]! += wz * yc;
      for (let j = i; j < cols; j++) g[i * cols + j]! += wz * zc[j]!;
    }
  }
  for (let i = 0; i < cols; i++) {
    g[i * cols + i]! += ridge;
    for (let j = 0; j < i; j++) g[i * cols + j] = g[j * cols + i]!;
  }
  const G = new Matrix(Array.from({ length: cols }, (_, i) => Array.from(g.subarray(i * cols, (i + 1) * cols))));
  const beta = cols === 0 ? new Matrix(0, 1) : new SingularValueDecomposition(G).solve(Matrix.columnVector(Array.from(hv)));
  const coefficients = Float64Array.from({ length: cols }, (_, c) => beta.get(c, 0));
  let intercept = yMean;
  for (let c = 0; c < cols; c++) intercept -= zMean[c]! * coefficients[c]!;

  let yBar = 0;
  for (let r = 0; r < rows; r++) yBar += (weights[r]! / wSum) * y[r]!;
  let ssRes = 0, ssTot = 0;
  for (let r = 0; r < rows; r++) {
    let pred = withIntercept ? intercept : 0;
    for (let c = 0; c < cols; c++) pred += design[r * cols + c]! * coefficients[c]!;
    ssRes += weights[r]! * (y[r]! - pred) ** 2;
    ssTot += weights[r]! * (y[r]! - yBar) ** 2;
  }
  const r2 = ssTot > 0 ? 1 - ssRes / ssTot : ssRes <= 1e-24 ? 1 : 0;
  return { coefficients, intercept: withIntercept ? intercept : 0, r2 };
}
