/**
 * kdfuse/datasets: the small data set the demo trains on, for your own first experiments.
 * `loadDigits()` → { x: Float32Array [rows × 64] in [0, 1], labels: Int32Array, rows, features: 64, classes: 10 }.
 */
export { loadDigits, splitDigits, takeRows, DIGITS_SHA256 } from './digits.js';
export type { Digits, DigitsSplit, LoadDigitsOptions, SplitOptions } from './digits.js';
