/** `kdfuse/tfjs`: the fused kernels as differentiable tfjs ops, and a loss for model.compile. */
export {
  distillationLoss,
  klDivergence,
  logSoftmaxWithTemperature,
  softmaxWithTemperature,
  type TfDistillationLossOptions,
  type TfKlDivergenceOptions,
} from './ops.js';
export {
  packTopKTargets,
  topkDistillationLoss,
  topkDistillationLossFn,
  type PackTopKTargetsOptions,
  type TfTopKDistillationLossOptions,
  type TopKDistillationLossFnOptions,
} from './topk-ops.js';
export { linearDistillationLoss, type TfLinearDistillationLossOptions } from './linear-ops.js';
export { distillationLossFn, packTargets, unpackTargets, type DistillationLossFnOptions, type PackTargetsOptions } from './loss-fn.js';
