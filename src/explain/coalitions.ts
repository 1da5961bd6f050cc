/**
 * What the perturbation explainers (KernelSHAP, LIME) share: feature groups (superpixels), the
 * inputs a coalition stands for (x where a group is "on", a replacement row where it is "off"),
 * and evaluating many coalitions in few model calls.
 */
import { describe } from '../kernels/validate.js';
import { forwardInBatches, type ExplainModel } from './model.js';

export interface FeatureGroups {
  /** Group index 0..groups-1 of each input feature. */
  groupOf: Int32Array;
  groups: number;
}

/**
 * `featureGroups` gives each of the `features` input features a group id (any non-negative
 * integers); ids are renumbered 0..groups-1 in increasing order. Absent: one group per feature.
 */
export function resolveFeatureGroups(v: unknown, features: number, name = 'featureGroups'): FeatureGroups {
  if (v === undefined) return { groupOf: Int32Array.from({ length: features }, (_, i) => i), groups: features };
  if (!(v instanceof Int32Array)) throw new TypeError(`${name} must be an Int32Array with one group id per input feature, got ${describe(v)}`);
  if (v.length !== features) throw new RangeError(`${name} must have one group id per input feature (${features}), got ${v.length}`);
  const ids = new Set<number>();
  for (let i = 0; i < v.length; i++) {
    if (v[i]! < 0) throw new RangeError(`${name}[${i}] must be a group id >= 0, got ${v[i]}`);
    ids.add(v[i]!);
  }
  const sorted = [...ids].sort((a, b) => a - b), index = new Map(sorted.map((id, k) => [id, k]));
  return { groupOf: Int32Array.from(v, (id) => index.get(id)!), groups: sorted.length };
}

/**
 * Rectangular superpixels for an image `[H, W]` or `[H, W, C]` (channels share a group): blocks of
 * `size × size` pixels, numbered row by row. For `featureGroups` of images.
 */
export function superpixelGroups(shape: number[], size: number): Int32Array {
  if (!Array.isArray(shape) || (shape.length !== 2 && shape.length !== 3)) throw new RangeError(`shape must be [H, W] or [H, W, C], got ${describe(shape)}`);
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`size must be an integer >= 1, got ${String(size)}`);
  const [H, W, C = 1] = shape as [number, number, number?];
  const across = Math.ceil(W / size), out = new Int32Array(H * W * C);
  for (let h = 0; h < H; h++) for (let w = 0; w < W; w++) for (let c = 0; c < C; c++) {
    out[(h * W + w) * C + c] = Math.floor(h / size) * across + Math.floor(w / size);
  }
  return out;
}

/**
 * For each coalition q (a 0/1 row of `masks`, `groups` wide) the mean over the `refs` replacement
 * rows r of f_target(z_{q,r}), where z_{q,r} takes x's value for features whose group is on and
 * row r's value otherwise. All `coalitions × refs` inputs go through the model `batchSize` at a time.
 */
export async function coalitionValues(
  model: ExplainModel,
  x: Float32Array,
  refs: Float32Array,
  masks: Uint8Array,
  fg: FeatureGroups,
  featureShape: number[],
  target: number,
  batchSize: number,
): Promise<Float64Array> {
  const F = x.length, R = refs.length / F, M = fg.groups, Q = masks.length / M;
  const { scores, cols } = await forwardInBatches(model, Q * R, featureShape, batchSize, 'logits', (p, buf, off) => {
    const q = Math.floor(p / R), r = p % R, mask = q * M, ref = r * F;
    for (let f = 0; f < F; f++) buf[off + f] = masks[mask + fg.groupOf[f]!] ? x[f]! : refs[ref + f]!;
  });
  if (target >= cols) throw new RangeError(`target must be a class index in [0, ${cols}), got ${target}`);
  const out = new Float64Array(Q);
  for (let p = 0; p < Q * R; p++) out[Math.floor(p / R)]! += scores[p * cols + target]! / R;
  return out;
}

/** A per-group value spread back to the input's features (each feature gets its group's value, as Captum's feature masks do). */
export function spreadGroups(groupValues: Float64Array, fg: FeatureGroups, out: Float32Array, offset: number): void {
  for (let f = 0; f < fg.groupOf.length; f++) out[offset + f] = groupValues[fg.groupOf[f]!]!;
}
