/**
 * Early stopping for Distiller.fit: stop when the monitored figure has not improved by `minDelta`
 * for `patience` epochs. Accuracy is maximised, losses minimised.
 */
export type Monitor = 'loss' | 'valLoss' | 'valAccuracy';

export class EarlyStopping {
  private best = Infinity;
  private waited = 0;

  /** `enabled` false: the figures are still tracked, and update never asks to stop. */
  constructor(readonly monitor: Monitor, readonly patience: number, readonly minDelta: number, readonly enabled: boolean) {}

  /** The epoch's figures; true when training should stop after this epoch. */
  update(logs: { loss: number; valLoss?: number; valAccuracy?: number }): boolean {
    const score = this.monitor === 'valAccuracy' ? -(logs.valAccuracy ?? 0) : this.monitor === 'valLoss' ? logs.valLoss! : logs.loss;
    if (score < this.best - this.minDelta) {
      this.best = score;
      this.waited = 0;
      return false;
    }
    return this.enabled && ++this.waited >= this.patience;
  }
}
