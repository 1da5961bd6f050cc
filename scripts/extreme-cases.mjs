// The extreme-case accuracy table (docs/accuracy.md): runs kdfuse's distillation loss on cases where
// float32 is weakest (near one-hot rows at small T, nearly equal distributions at large T, logits
// near the range rule's bound, -Infinity logits, labels with smoothing) for every divergence, and
// writes the inputs and results to a JSON file that scripts/extreme_cases_reference.py checks
// against values computed at 60 digits.
//
//   npx tsup --silent && node scripts/extreme-cases.mjs out/extreme-cases.json
//   python3 scripts/extreme_cases_reference.py out/extreme-cases.json   # needs mpmath
import { writeFileSync } from 'node:fs';
import * as kd from '../dist/index.js';

const file = process.argv[2] ?? 'out/extreme-cases.json';

// mulberry32: the cases are the same on every run
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const normal = (r) => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());

const ROWS = 4, COLS = 10;
// Each kind makes a student and a teacher row set for temperature T.
const KINDS = {
  'spread 3': (r) => [0, 1].map(() => Float32Array.from({ length: ROWS * COLS }, () => 3 * normal(r))),
  'near-equal (1e-4)': (r) => {
    const t = Float32Array.from({ length: ROWS * COLS }, () => normal(r));
    return [Float32Array.from(t, (v) => v + 1e-4 * normal(r)), t];
  },
  'near one-hot (spread 30)': (r) => [0, 1].map(() => Float32Array.from({ length: ROWS * COLS }, (_, i) => (i % COLS === 0 ? 30 : 0) + normal(r))),
  '-Infinity logits': (r) => {
    const s = Float32Array.from({ length: ROWS * COLS }, () => 2 * normal(r)), t = Float32Array.from({ length: ROWS * COLS }, () => 2 * normal(r));
    for (let row = 0; row < ROWS; row++) { s[row * COLS + 3] = -Infinity; t[row * COLS + 3] = -Infinity; }
    return [s, t];
  },
  'huge logits (|z| to 5e37)': (r, T) => [0, 1].map(() => Float32Array.from({ length: ROWS * COLS }, () => Math.min(0.5e38 * T, 3e38) * (2 * r() - 1))),
};
const TEMPERATURES = [0.05, 1, 4, 100, 1e4];
const DIVERGENCES = ['kl', 'reverse-kl', 'jsd'];

const cases = [];
let seed = 1;
for (const kind of Object.keys(KINDS)) {
  for (const T of TEMPERATURES) {
    for (const divergence of DIVERGENCES) {
      for (const labelled of [false, true]) {
        const r = rng(seed++);
        const [student, teacher] = KINDS[kind](r, T);
        const labels = labelled ? Int32Array.from({ length: ROWS }, (_, i) => (i * 3) % COLS) : undefined;
        const o = {
          student, teacher, rows: ROWS, cols: COLS, temperature: T, divergence, labels, alpha: 0.7,
          labelSmoothing: labelled ? 0.1 : 0, beta: 0.3, reduction: 'sum', computeTeacherGrad: true,
        };
        let out;
        try {
          const res = kd.distillationLoss(o);
          out = { loss: Number.isFinite(res.loss) ? res.loss : String(res.loss), gradStudent: Array.from(res.gradStudent), gradTeacher: Array.from(res.gradTeacher) };
        } catch (e) {
          out = { error: `${e.constructor.name}: ${e.message}` };
        }
        // float32 values as exact decimal strings (JSON numbers, but -Infinity is not one)
        const enc = (x) => Array.from(x, (v) => (Number.isFinite(v) ? v : String(v)));
        cases.push({
          kind, temperature: T, divergence, labels: labels ? Array.from(labels) : null, alpha: o.alpha,
          labelSmoothing: o.labelSmoothing, beta: o.beta, rows: ROWS, cols: COLS,
          student: enc(student), teacher: enc(teacher), ...out,
          gradStudent: out.gradStudent && enc(out.gradStudent), gradTeacher: out.gradTeacher && enc(out.gradTeacher),
        });
      }
    }
  }
}
writeFileSync(file, JSON.stringify({ backend: kd.backend().name, cases }));
console.log(`${cases.length} cases on the ${kd.backend().name} backend -> ${file}`);
