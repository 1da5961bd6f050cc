/** The results and their tables (GitHub Markdown, aligned so that they read in a terminal too). */
import { formatDuration, type Outcome } from './measure.js';
import type { Suite } from './workload.js';

export interface PeerRow {
  peer: string;
  label: string;
  outcome: Outcome;
  /** Effective bandwidth: the suite's bytes per element × elements / median time. */
  gbps?: number;
  /** gbps as a percentage of the triad's. */
  pctTriad?: number;
  /** This peer's median / kdfuse native's (all threads): how many times faster kdfuse is. */
  kdfuseSpeedup?: number;
}

export interface ShapeResult {
  shape: string;
  rows: number;
  cols: number;
  peers: PeerRow[];
}

export interface SuiteResult extends Suite {
  shapes: ShapeResult[];
}

/** Fills the derived columns of a shape's rows. */
export function derive(suite: Suite, s: ShapeResult, triadGbps: number | undefined): void {
  const base = s.peers.find((r) => r.peer === 'kdfuse')?.outcome;
  for (const r of s.peers) {
    if (r.outcome.status !== 'ok') continue;
    r.gbps = (suite.bytesPerElement * s.rows * s.cols) / (r.outcome.medianMs * 1e6);
    if (triadGbps) r.pctTriad = (100 * r.gbps) / triadGbps;
    if (base?.status === 'ok') r.kdfuseSpeedup = r.outcome.medianMs / base.medianMs;
  }
}

const sig = (x: number): string => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toPrecision(2));

function cells(r: PeerRow): string[] {
  const o = r.outcome;
  if (o.status !== 'ok') return [o.reason, '', '', '', ''];
  return [
    formatDuration(o.medianMs),
    o.rmePct === null ? '1 call' : `±${o.rmePct.toFixed(1)}%`,
    r.gbps === undefined ? '' : sig(r.gbps),
    r.pctTriad === undefined ? '' : `${sig(r.pctTriad)}%`,
    r.peer === 'kdfuse' ? '(baseline)' : r.kdfuseSpeedup === undefined ? 'n/a' : `${sig(r.kdfuseSpeedup)}×`,
  ];
}

function markdown(head: string[], rows: string[][], right: boolean[]): string {
  const width = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => `| ${r.map((c, i) => (right[i] ? c.padStart(width[i]!) : c.padEnd(width[i]!))).join(' | ')} |`;
  const rule = `|${width.map((w, i) => (right[i] ? `${'-'.repeat(w + 1)}:` : `${'-'.repeat(w + 2)}`)).join('|')}|`;
  return [line(head), rule, ...rows.map(line)].join('\n');
}

export function renderSuite(s: SuiteResult, triadGbps: number | undefined): string {
  const rows: string[][] = [];
  for (const shape of s.shapes) {
    shape.peers.forEach((r, i) => rows.push([i === 0 ? shape.shape : '', r.label, ...cells(r)]));
  }
  const head = ['shape', 'peer', 'median/call', '±', 'GB/s', '% triad', 'kdfuse speed-up'];
  const title = `### ${s.title}\n\n${s.bytesPerElement} bytes/element (${s.traffic})` +
    (triadGbps ? `; triad ${triadGbps.toFixed(1)} GB/s` : '; no triad measured') + '\n';
  const notes = disagreements(s);
  return `${title}\n${markdown(head, rows, [false, false, true, true, true, true, true])}\n${notes}`;
}

/** Peers whose first output differs from kdfuse's beyond float32 noise: said under the table. */
function disagreements(s: SuiteResult): string {
  const out: string[] = [];
  for (const shape of s.shapes) {
    for (const r of shape.peers) {
      const c = r.outcome.check;
      if (!c) continue;
      const bad = (c.lossRelErr ?? 0) > 1e-4 || (c.valuesRelErr ?? 0) > 1e-3;
      if (bad) out.push(`- ${shape.shape} ${r.label}: differs from kdfuse (loss ${c.lossRelErr?.toExponential(1) ?? '-'}, values ${c.valuesRelErr?.toExponential(1) ?? '-'} relative)`);
    }
  }
  return out.length ? `\n${out.join('\n')}\n` : '';
}
