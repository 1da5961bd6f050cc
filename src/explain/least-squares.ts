/**
 * Weighted (ridge) least squares for the surrogate fits of KernelSHAP and LIME:
 *
 *     minimise  Σ_r w_r (y_r − b − z_r·β)²  +  λ ||β||²      (b unpenalised, as in scikit-learn's Ridge)
 *
 * Solved in float64 with ml-matrix's singular value decomposition on the square-root-weighted,
 * centred design matrix, with √λ·I rows appended for the ridge. The SVD rather than the normal
 * equations, because the coalition designs are often rank-deficient (a feature never switched off,
 * two groups always switched together in a small sample): the SVD gives the minimum-norm solution
 * there instead of a singular-matrix failure, and it does not square the condition number. The
 * designs are small (samples × features or groups, a few thousand by at most a few hundred), so
 * a well-tested library solver is cheaper to trust than a hand-written one; see docs/explain.md.
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
  const extra = ridge > 0 ? cols : 0;
  const A = new Matrix(rows + extra, cols), b = new Matrix(rows + extra, 1);
  for (let r = 0; r < rows; r++) {
    const s = Math.sqrt(weights[r]!);
    for (let c = 0; c < cols; c++) A.set(r, c, s * (design[r * cols + c]! - zMean[c]!));
    b.set(r, 0, s * (y[r]! - yMean));
  }
  for (let c = 0; c < extra; c++) A.set(rows + c, c, Math.sqrt(ridge));
  const beta = cols === 0 ? new Matrix(0, 1) : new SingularValueDecomposition(A, { autoTranspose: true }).solve(b);
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
