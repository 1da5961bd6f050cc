// Type-checked by scripts/pack-check.sh against the packed tarball under TypeScript 5 and 7 (CommonJS).
import kd = require('kdfuse');
import kdTrain = require('kdfuse/train');
import kdExplain = require('kdfuse/explain');
import kdData = require('kdfuse/datasets');
import kdTfjs = require('kdfuse/tfjs');
const r: number = kd.distillationLoss({ student: new Float32Array(4), teacher: new Float32Array(4), rows: 1, cols: 4 }).loss;
const png: Uint8Array = kdExplain.attributionHeatmap(new Float32Array(4), { shape: [2, 2] });
const n: number = kdData.loadDigits().rows;
void [r, png, n, kdTrain.Distiller, kdTfjs.distillationLoss];
