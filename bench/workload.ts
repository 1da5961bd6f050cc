/** What is benchmarked: the suites, the shapes, the loss settings and the (seeded) input data. */
import { uniformSource } from '../src/explain/random.js';

export type SuiteId = 'loss' | 'forward' | 'softmax' | 'topk';

export interface Suite {
  id: SuiteId;
  title: string;
  /** The least memory traffic per element: the bytes behind the effective GB/s column. */
  bytesPerElement: number;
  traffic: string;
}

export const SUITES: readonly Suite[] = [
  { id: 'loss', title: 'distillation loss, forward + backward', bytesPerElement: 12, traffic: 'read s and t, write dL/ds' },
  { id: 'forward', title: 'distillation loss, forward only (computeStudentGrad: false)', bytesPerElement: 8, traffic: 'read s and t' },
  { id: 'softmax', title: 'softmax with temperature', bytesPerElement: 8, traffic: 'read x, write softmax(x / T)' },
  {
    id: 'topk', title: 'distillation loss from a top-k teacher (k = 64), forward + backward', bytesPerElement: 8,
    traffic: 'read s, write dL/ds; the 64 teacher entries per row are not counted. The dense row is the dense call with a reused out on the same shape',
  },
];

export interface Shape {
  rows: number;
  cols: number;
}

/** Ascending by element count, so that each peer's time at one shape estimates the next. */
export const SHAPES: readonly Shape[] = [
  { rows: 256, cols: 10 },
  { rows: 1024, cols: 1000 },
  { rows: 64, cols: 128000 },
  { rows: 512, cols: 32000 },
  { rows: 2048, cols: 32000 },
];
/** `--quick`: the two small shapes. */
export const QUICK_SHAPES = SHAPES.slice(0, 2);

export const shapeLabel = (s: Shape): string => `${s.rows}x${s.cols}`;

export function parseShape(text: string): Shape {
  const m = /^(\d+)x(\d+)$/.exec(text.trim());
  if (!m) throw new RangeError(`a shape is ROWSxCOLS such as 512x32000, got '${text}'`);
  return { rows: Number(m[1]), cols: Number(m[2]) };
}

/** The loss every peer computes: KL at T = 2 with a hard-label term, alpha = 0.5, mean over rows. */
export const LOSS = { temperature: 2, alpha: 0.5 } as const;

export interface Data extends Shape {
  student: Float32Array;
  teacher: Float32Array;
  labels: Int32Array;
}

/** Logits uniform in [-4, 4) and labels from a fixed-seed generator (mulberry32): every process sees the same data. */
export function makeData(shape: Shape, seed = 12345): Data {
  const n = shape.rows * shape.cols;
  const next = uniformSource(seed);
  const student = new Float32Array(n);
  const teacher = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    student[i] = next() * 8 - 4;
    teacher[i] = next() * 8 - 4;
  }
  const labels = new Int32Array(shape.rows);
  for (let r = 0; r < shape.rows; r++) labels[r] = Math.floor(next() * shape.cols);
  return { ...shape, student, teacher, labels };
}
