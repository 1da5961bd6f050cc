// Type-checked by scripts/pack-check.sh against the packed tarball under TypeScript 5 and 7 (ESM).
import * as kd from 'kdfuse';
import { loadDigits } from 'kdfuse/datasets';
const r: number = kd.distillationLoss({ student: new Float32Array(4), teacher: new Float32Array(4), rows: 1, cols: 4 }).loss;
const d = loadDigits();
const f: 64 = d.features;
void [r, f, kd.backend().name];
