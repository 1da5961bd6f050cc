/** The figures a reader looks for first, from this run's loss (forward + backward) suite. */
import { formatDuration } from './measure.js';
import type { PeerRow, SuiteResult } from './table.js';

function row(s: SuiteResult | undefined, shape: string, peer: string): PeerRow | undefined {
  return s?.shapes.find((x) => x.shape === shape)?.peers.find((p) => p.peer === peer);
}

const ms = (r: PeerRow | undefined): number | undefined => (r?.outcome.status === 'ok' ? r.outcome.medianMs : undefined);
const speedup = (r: PeerRow | undefined): string =>
  r === undefined ? '(peer not run)' : r.kdfuseSpeedup !== undefined ? `${r.kdfuseSpeedup.toFixed(1)}×` : r.outcome.status === 'ok' ? 'n/a' : r.outcome.reason;

/** The top-k suite's figure: top-k with a reused out against the dense call with a reused out, per shape. */
function topkSummary(results: SuiteResult[]): string {
  const topk = results.find((s) => s.id === 'topk');
  if (!topk) return '';
  const lines: string[] = [];
  for (const sh of topk.shapes) {
    const a = ms(row(topk, sh.shape, 'kdfuse-out')), b = ms(row(topk, sh.shape, 'kdfuse-dense-out'));
    if (a === undefined || b === undefined) continue;
    const gbps = row(topk, sh.shape, 'kdfuse-out')?.gbps;
    lines.push(`- ${sh.shape} (k = ${Math.min(64, sh.cols)}): top-k with out ${formatDuration(a)}` +
      `${gbps ? ` (${gbps.toFixed(1)} GB/s at 8 bytes/element)` : ''}, dense with out ${formatDuration(b)}: ` +
      `top-k runs at ${(b / a).toFixed(2)}× the dense call's speed`);
  }
  return lines.length ? `\n### Summary (${topk.title})\n\n${lines.join('\n')}\n` : '';
}

export function summary(results: SuiteResult[]): string {
  const loss = results.find((s) => s.id === 'loss');
  if (!loss) return topkSummary(results);
  const lines: string[] = [];
  const largest = loss.shapes.at(-1);
  const big = largest && row(loss, largest.shape, 'kdfuse');
  if (largest && big?.outcome.status === 'ok') {
    // the default call first (what a user's code calls), then the tuned paths
    const paths: [string, string][] = [
      ['kdfuse', 'default call (allocating, results dropped)'],
      ['kdfuse-out', 'reused out'],
      ['kdfuse-async', 'async (inputs copied)'],
      ['kdfuse-async-borrow', 'async, borrowInputs'],
      ['kdfuse-1t', 'one thread (allocating)'],
    ];
    for (const [peer, what] of paths) {
      const r = row(loss, largest.shape, peer);
      if (r?.outcome.status !== 'ok') continue;
      lines.push(`- ${largest.shape}, ${what}: ${formatDuration(r.outcome.medianMs)}, ${r.gbps?.toFixed(1)} GB/s` +
        (r.pctTriad !== undefined ? `, ${r.pctTriad.toFixed(0)}% of the triad` : ''));
    }
  }
  if (loss.shapes.some((x) => x.shape === '1024x1000')) {
    lines.push(`- 1024x1000: kdfuse is ${speedup(row(loss, '1024x1000', 'tfjs-wasm'))} faster than tfjs wasm, ` +
      `${speedup(row(loss, '1024x1000', 'tfjs-cpu'))} faster than tfjs cpu`);
  }
  const sync = ms(row(loss, '256x10', 'kdfuse')), asyncMs = ms(row(loss, '256x10', 'kdfuse-async'));
  if (sync !== undefined) {
    lines.push(`- 256x10: ${formatDuration(sync)} per synchronous call` +
      (asyncMs !== undefined ? `, ${formatDuration(asyncMs)} async (${formatDuration(Math.abs(asyncMs - sync))} ${asyncMs >= sync ? 'more' : 'less'}: separate measurements)` : '') +
      (row(loss, '256x10', 'plain-js') ? `; ${speedup(row(loss, '256x10', 'plain-js'))} faster than the plain-JS loop` : ''));
  }
  return (lines.length ? `\n### Summary (${loss.title})\n\n${lines.join('\n')}\n` : '') + topkSummary(results);
}
