/** `kdfuse/train`: the Distiller, offline teacher logits, metrics, and saving models in Node. */
export {
  Distiller,
  NonFiniteLossError,
  type BatchDataset,
  type BatchLogs,
  type DistillerOptions,
  type EpochLogs,
  type EvaluationReport,
  type FitOptions,
  type History,
  type Labels,
  type Model,
  type OutputKind,
  type Schedule,
} from './distiller.js';
export {
  ALIGNMENT_EPS,
  SecondOrderGradientError,
  attentionMap,
  attentionTransferLoss,
  classInputGradient,
  gradCamAlignmentLoss,
  inputGradientLoss,
  rowCosine,
  type ExplanationAlignmentOptions,
} from './alignment.js';
export {
  FEATURE_REGRESSORS,
  applyRegressor,
  hintLoss,
  type FeatureDistillationOptions,
  type FeatureRegressor,
  type HintRegressor,
} from './feature-distillation.js';
export { cacheTeacherLogits, loadTeacherLogits, saveTeacherLogits, teacherLogitsBatch, type TeacherLogits } from './teacher-cache.js';
export { fileSystemHandler } from './io.js';
export { FEATURE_REGRESSORS_FORMAT, loadFeatureRegressors, saveFeatureRegressors } from './regressor-io.js';
export type { TopKTeacher, MissingMass } from '../kernels/topk-types.js';
export { densifyTopKTeacher } from '../kernels/topk-reference.js';
export { accuracy, agreement, argmaxRows, expectedCalibrationError, seededPermutation } from './metrics.js';
export { checkTopKTeacher } from './topk-teacher.js';
export type { TopKTeacherMeta } from '../kernels/topk-types.js';
export { loadTopKTeacher, saveTopKTeacher, type LoadTopKOptions, type SaveTopKOptions, type TopKFileFormat } from './topk-files.js';
export { cacheTeacherTopK, type CacheTeacherTopKOptions } from './topk-cache.js';
export { convertVllmPromptLogprobs, readVllmPromptLogprobs, type ConvertVllmOptions, type VllmPromptLogprobsOptions } from './topk-vllm.js';
export {
  classificationMetrics,
  evaluateClassifier,
  modelSize,
  type ClassificationMetrics,
  type ClassifierReport,
  type EvaluateClassifierOptions,
  type Latency,
  type ModelSize,
} from './evaluation.js';
