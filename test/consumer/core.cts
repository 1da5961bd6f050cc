// Type-checked by scripts/pack-check.sh against the packed tarball under TypeScript 5 and 7 (CommonJS).
import kd = require('kdfuse');
import data = require('kdfuse/datasets');
const r: number = kd.softmaxWithTemperature({ logits: new Float32Array(4), rows: 1, cols: 4, temperature: 2 })[0]!;
void [r, data.loadDigits().classes];
