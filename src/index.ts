/**
 * kdfuse: fused knowledge-distillation kernels for TensorFlow.js programs on Node.
 * This file is the public surface and nothing else.
 */
export { distillationLoss, distillationLossAsync, klDivergence, klDivergenceAsync } from './kernels/distill-loss.js';
export { topkDistillationLoss, topkDistillationLossAsync } from './kernels/topk-loss.js';
export { densifyTopKTeacher } from './kernels/topk-reference.js';
export { linearDistillationLoss, linearDistillationLossAsync } from './kernels/linear-loss.js';
export type { LinearDistillationLossOptions, LinearDistillationLossResult } from './kernels/linear-types.js';
export type {
  MissingMass,
  TeacherValues,
  TopKDistillationLossOptions,
  TopKDistillationLossResult,
  TopKTeacher,
} from './kernels/topk-types.js';
export {
  softmaxWithTemperature,
  logSoftmaxWithTemperature,
  softmaxWithTemperatureBackward,
  logSoftmaxWithTemperatureBackward,
  softmaxWithTemperatureAsync,
  logSoftmaxWithTemperatureAsync,
  softmaxWithTemperatureBackwardAsync,
  logSoftmaxWithTemperatureBackwardAsync,
} from './kernels/softmax.js';
export { backend, setThreads, setSimd, setDevice, setBufferCacheLimit, bufferCacheInfo } from './kernels/backend.js';
export { DeviceUnavailableError } from './kernels/errors.js';
export type { BufferCacheInfo } from './kernels/native.js';
/** The device-resident CUDA API: kd.cuda.available(), info(), upload(), distillationLoss(). */
export * as cuda from './kernels/cuda.js';
export type {
  AsyncCallOptions,
  BackendInfo,
  BackendName,
  CudaDistillationLossOptions,
  CudaDistillationLossResult,
  CudaInfo,
  CudaOutputName,
  DeviceArray,
  DeviceSetting,
  DistillationLossOptions,
  DistillationLossResult,
  Divergence,
  KlDivergenceOptions,
  KlDivergenceResult,
  Reduction,
  SoftmaxBackwardOptions,
  SoftmaxOptions,
} from './kernels/types.js';
