/**
 * `kdfuse/explain`: integrated gradients, Grad-CAM, KernelSHAP and LIME for tfjs models, noise
 * tunnels, global summaries and a stability score, agreement and faithfulness metrics, the
 * teacher–student explanation report, and attribution heatmaps as PNGs (docs/explain.md).
 */
export {
  integratedGradients,
  type IntegratedGradientsOptions,
  type IntegratedGradientsResult,
} from './integrated-gradients.js';
export { quadrature, QUADRATURE_METHODS, type QuadratureMethod, type QuadratureRule } from './quadrature.js';
export type { Baseline, BaselineOptions } from './baselines.js';
export type { ExplainModel, OutputKind, Target } from './model.js';
export { noiseTunnel, type ExplainFn, type NoiseTunnelOptions, type NoiseTunnelResult, type NoiseTunnelType } from './noise-tunnel.js';
export {
  compareAttributions,
  type AttributionComparison,
  type AttributionInput,
  type AttributionMetrics,
  type CompareOptions,
} from './compare.js';
export { deletionCurve, insertionCurve, type FaithfulnessCurves, type FaithfulnessOptions, type FaithfulnessResult } from './faithfulness.js';
export {
  explainDistillation,
  type DistillationExplanation,
  type ExplainDistillationOptions,
  type ModelExplanation,
} from './distillation.js';
export {
  attributionHeatmap,
  heatmapColor,
  HEATMAP_SIGNS,
  HEATMAP_STOPS,
  type HeatmapInput,
  type HeatmapOptions,
  type HeatmapSign,
} from './heatmap.js';
export { gradCam, gradCamMaps, gradCamLayer, type GradCamOptions, type GradCamResult } from './grad-cam.js';
export { kernelShap, KERNEL_SHAP_MAX_EXACT, type KernelShapOptions, type KernelShapResult } from './kernel-shap.js';
export { lime, type LimeOptions, type LimeResult } from './lime.js';
export { superpixelGroups } from './coalitions.js';
export { EXPLAIN_METHODS, type ExplainMethod } from './methods.js';
export {
  explanationStability,
  globalAttributions,
  type ExplanationStability,
  type ExplanationStabilityOptions,
  type GlobalAttributions,
  type GlobalAttributionsOptions,
} from './global.js';
