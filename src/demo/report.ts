/**
 * The demo's HTML report: one self-contained page (CSS inline, PNGs as base64 data: URIs, charts
 * as inline SVG, no scripts, nothing fetched) with the accuracy table, attribution heatmaps of
 * teacher and students, attribution agreement and faithfulness tables, and training curves. All
 * text from the data is HTML-escaped.
 */
import type { AttributionMetrics } from '../explain/compare.js';
import type { FaithfulnessCurves, FaithfulnessResult } from '../explain/faithfulness.js';
import { HEATMAP_STOPS } from '../explain/heatmap.js';

/** One model's test-set results: the demo's `rows` as they are. Fractions in [0, 1]. */
export interface ReportModelRow {
  model: string;
  parameters: number;
  testAccuracy: number;
  teacherAgreement: number;
  ece: number;
  trainSeconds: number;
  /** With several seeds: testAccuracy is their mean and this the sample standard deviation. */
  testAccuracySd?: number;
  /** With several seeds: each seed's test accuracy. */
  testAccuracies?: number[];
  /** How many runs the row summarises (1 when absent). */
  seeds?: number;
  /** How many labelled training rows the model saw. */
  labelledRows?: number;
}

/** One PNG (e.g. from attributionHeatmap) and the label shown under it. */
export interface ReportImage {
  label: string;
  png: Uint8Array;
}

/** One row of the heatmap grid, e.g. one test digit: its caption and its images left to right. */
export interface HeatmapGroup {
  caption: string;
  pngs: ReportImage[];
}

export interface HeatmapGrid {
  groups: HeatmapGroup[];
  /** Colour key under the grid: the blue–white–red map (default), the white–red one, or none. */
  legend?: 'diverging' | 'sequential' | false;
}

/** A student's attributions against the teacher's: `compareAttributions(...)` or `explanation.comparison`. */
export interface ReportAgreementRow {
  student: string;
  comparison: { topK: number; mean: AttributionMetrics };
  /** Share of the explained examples where student and teacher predict the same class. */
  predictionAgreement?: number;
}

/** Deletion / insertion results of one model: `deletionCurve(...)`, `explanation.teacher.deletion`, ... */
export type ReportFaithfulness = Pick<FaithfulnessResult, 'meanAuc'> & { control?: Pick<FaithfulnessCurves, 'meanAuc'> };

export interface ReportFaithfulnessRow {
  model: string;
  deletion: ReportFaithfulness;
  insertion: ReportFaithfulness;
}

/** One training run's per-epoch logs (a Distiller's `history.epochs` fits as is). */
export interface ReportTrainingRun {
  name: string;
  epochs: { loss: number; valAccuracy?: number }[];
}

export type ReportSection = 'models' | 'heatmaps' | 'agreement' | 'faithfulness' | 'training';

export interface ReportData {
  /** Page title (default 'kdfuse demo report'). */
  title?: string;
  /** Paragraphs under the title: data set, settings, seed, date. */
  notes?: string[];
  models: ReportModelRow[];
  heatmaps?: HeatmapGrid;
  agreement?: ReportAgreementRow[];
  faithfulness?: ReportFaithfulnessRow[];
  training?: ReportTrainingRun[];
  /** HTML fragments from the demo's own section modules (src/demo/extras.ts: they escape their text), appended at the end. */
  extraSections?: string[];
  /** A paragraph under a section's heading, replacing its default explanation. */
  sectionNotes?: Partial<Record<ReportSection, string>>;
  /** A section's heading, replacing its default (e.g. to name the attribution method used). */
  sectionTitles?: Partial<Record<ReportSection, string>>;
}

const DEFAULT_TITLES: Record<ReportSection, string> = {
  models: 'Accuracy',
  heatmaps: 'Where the models look',
  agreement: 'Do students look where the teacher looks?',
  faithfulness: 'Are the attributions faithful?',
  training: 'Training curves',
};

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
/** Text safe inside HTML elements and quoted attributes. */
export function escapeHtml(s: string): string {
  return String(s).replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function pngDataUri(png: unknown, where: string): string {
  if (!(png instanceof Uint8Array)) throw new TypeError(`${where} must be a Uint8Array (a PNG), got ${png === null ? 'null' : typeof png}`);
  if (png.length < 8 || PNG_SIGNATURE.some((b, i) => png[i] !== b)) throw new RangeError(`${where} must be PNG bytes (no PNG signature found)`);
  return `data:image/png;base64,${Buffer.from(png.buffer, png.byteOffset, png.byteLength).toString('base64')}`;
}

/** PNG width and height from its IHDR chunk. */
function pngSize(png: Uint8Array): [number, number] {
  const v = new DataView(png.buffer, png.byteOffset, png.byteLength);
  return png.length >= 24 ? [v.getUint32(16), v.getUint32(20)] : [0, 0];
}

const fmt = (v: number | undefined, digits: number): string => (v === undefined || !Number.isFinite(v) ? 'n/a' : v.toFixed(digits));
const pct = (v: number | undefined): string => (v === undefined || !Number.isFinite(v) ? 'n/a' : `${(100 * v).toFixed(1)}%`);
const int = (v: number): string => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : 'n/a');

function table(id: string, head: string[], rows: string[][], numericFrom = 1): string {
  const th = head.map((h, i) => `<th${i >= numericFrom ? ' class="num"' : ''}>${h}</th>`).join('');
  const tr = rows.map((r) => `<tr>${r.map((c, i) => `<td${i >= numericFrom ? ' class="num"' : ''}>${c}</td>`).join('')}</tr>`).join('\n');
  return `<table id="${id}"><thead><tr>${th}</tr></thead>\n<tbody>\n${tr}\n</tbody></table>`;
}

// ---------------------------------------------------------------------------------------------
// SVG line charts

export interface ChartSeries {
  name: string;
  /** [x, y] points; a non-finite y breaks the line there. */
  points: [number, number][];
  /** Line colour (default: the series' place in SERIES_COLOURS). */
  colour?: string;
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: ChartSeries[];
  width?: number;
  height?: number;
  /** Format of the y tick labels (default: as many decimals as the tick step needs). */
  yFormat?: (v: number, step: number) => string;
  /** Bounds the y axis never goes past when rounding out to whole ticks (e.g. [0, 1] for accuracy). */
  yLimits?: [number, number];
}

/**
 * Okabe & Ito's colour-blind-safe palette ("Color Universal Design", 2008), yellow left out as it
 * is too light on white.
 */
export const SERIES_COLOURS = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000'];

/**
 * A round tick step (1, 2 or 5 times a power of ten) giving about `count` ticks over [lo, hi]:
 * the rule of d3-array's tickIncrement (Mike Bostock, ISC licence).
 */
export function tickStep(lo: number, hi: number, count: number): number {
  const raw = (hi - lo) / Math.max(1, count);
  if (!(raw > 0) || !Number.isFinite(raw)) return 1;
  const power = 10 ** Math.floor(Math.log10(raw));
  const error = raw / power;
  return power * (error >= Math.sqrt(50) ? 10 : error >= Math.sqrt(10) ? 5 : error >= Math.sqrt(2) ? 2 : 1);
}

function decimals(step: number): number {
  return Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
}

/** The domain [lo, hi] of the finite values, widened to whole steps; a single value gets a unit span. */
function niceDomain(values: number[], count: number, integer = false): { lo: number; hi: number; step: number } {
  let lo = Math.min(...values), hi = Math.max(...values);
  if (lo === hi) (lo -= lo === 0 ? 1 : Math.abs(lo) * 0.1), (hi += hi === 0 ? 1 : Math.abs(hi) * 0.1);
  let step = tickStep(lo, hi, count);
  if (integer) step = Math.max(1, step);
  return { lo: Math.floor(lo / step + 1e-9) * step, hi: Math.ceil(hi / step - 1e-9) * step, step };
}

const r2 = (v: number): string => (Math.round(v * 100) / 100).toString();

/** An inline SVG line chart with axes, ticks, grid lines, axis labels and a legend below the plot. */
export function lineChart(o: LineChartOptions): string {
  const width = o.width ?? 500, plotH = o.height ?? 280;
  const m = { left: 64, right: 20, top: 34, bottom: 50 };
  const legendRow = 18, legendH = o.series.length * legendRow + 8;
  const height = m.top + plotH + m.bottom + legendH;
  const plotW = width - m.left - m.right;
  const xs = o.series.flatMap((s) => s.points.filter((p) => Number.isFinite(p[0]) && Number.isFinite(p[1])).map((p) => p[0]));
  const ys = o.series.flatMap((s) => s.points.filter((p) => Number.isFinite(p[0]) && Number.isFinite(p[1])).map((p) => p[1]));
  const aria = escapeHtml(o.title);
  const parts: string[] = [
    `<svg class="chart" role="img" aria-label="${aria}" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<title>${aria}</title>`,
    `<text class="chart-title" x="${m.left}" y="20">${aria}</text>`,
  ];
  if (xs.length === 0) {
    parts.push(`<text class="axis-label" x="${m.left + plotW / 2}" y="${m.top + plotH / 2}" text-anchor="middle">no data</text></svg>`);
    return parts.join('\n');
  }
  const X = niceDomain(xs, 8, xs.every(Number.isInteger)), Y = niceDomain(ys, 6);
  if (o.yLimits) (Y.lo = Math.max(Y.lo, o.yLimits[0])), (Y.hi = Math.min(Y.hi, o.yLimits[1]));
  const sx = (x: number) => m.left + ((x - X.lo) / (X.hi - X.lo)) * plotW;
  const sy = (y: number) => m.top + plotH - ((y - Y.lo) / (Y.hi - Y.lo)) * plotH;
  const yFormat = o.yFormat ?? ((v: number, step: number) => v.toFixed(decimals(step)));
  const bottom = m.top + plotH;
  parts.push('<g class="grid">');
  for (let i = 0, v = Y.lo; v <= Y.hi + Y.step * 1e-6; i++, v = Y.lo + i * Y.step) {
    parts.push(`<line x1="${m.left}" x2="${m.left + plotW}" y1="${r2(sy(v))}" y2="${r2(sy(v))}"/>`);
  }
  parts.push('</g>', '<g class="axis y-axis">', `<line x1="${m.left}" x2="${m.left}" y1="${m.top}" y2="${bottom}"/>`);
  for (let i = 0, v = Y.lo; v <= Y.hi + Y.step * 1e-6; i++, v = Y.lo + i * Y.step) {
    const y = r2(sy(v));
    parts.push(`<line x1="${m.left - 5}" x2="${m.left}" y1="${y}" y2="${y}"/><text x="${m.left - 8}" y="${y}" dy="0.32em" text-anchor="end">${escapeHtml(yFormat(v, Y.step))}</text>`);
  }
  parts.push('</g>', '<g class="axis x-axis">', `<line x1="${m.left}" x2="${m.left + plotW}" y1="${bottom}" y2="${bottom}"/>`);
  for (let i = 0, v = X.lo; v <= X.hi + X.step * 1e-6; i++, v = X.lo + i * X.step) {
    const x = r2(sx(v));
    parts.push(`<line x1="${x}" x2="${x}" y1="${bottom}" y2="${bottom + 5}"/><text x="${x}" y="${bottom + 18}" text-anchor="middle">${v.toFixed(decimals(X.step))}</text>`);
  }
  parts.push(
    '</g>',
    `<text class="axis-label" x="${m.left + plotW / 2}" y="${bottom + 38}" text-anchor="middle">${escapeHtml(o.xLabel)}</text>`,
    `<text class="axis-label" transform="translate(16 ${m.top + plotH / 2}) rotate(-90)" text-anchor="middle">${escapeHtml(o.yLabel)}</text>`,
  );
  o.series.forEach((s, k) => {
    const colour = escapeHtml(s.colour ?? SERIES_COLOURS[k % SERIES_COLOURS.length]!);
    const runs: [number, number][][] = [[]];
    for (const p of s.points) {
      if (Number.isFinite(p[0]) && Number.isFinite(p[1])) runs[runs.length - 1]!.push(p);
      else if (runs[runs.length - 1]!.length) runs.push([]);
    }
    parts.push(`<g class="series" data-series="${escapeHtml(s.name)}">`);
    for (const run of runs.filter((r) => r.length > 0)) {
      if (run.length === 1) parts.push(`<circle cx="${r2(sx(run[0]![0]))}" cy="${r2(sy(run[0]![1]))}" r="3" fill="${colour}"/>`);
      else parts.push(`<polyline fill="none" stroke="${colour}" stroke-width="2" stroke-linejoin="round" points="${run.map((p) => `${r2(sx(p[0]))},${r2(sy(p[1]))}`).join(' ')}"/>`);
    }
    parts.push('</g>');
    const ly = m.top + plotH + m.bottom + 8 + k * legendRow;
    parts.push(
      `<g class="legend-entry"><line x1="${m.left}" x2="${m.left + 24}" y1="${ly}" y2="${ly}" stroke="${colour}" stroke-width="3"/>` +
        `<text x="${m.left + 32}" y="${ly}" dy="0.32em">${escapeHtml(s.name)}</text></g>`,
    );
  });
  parts.push('</svg>');
  return parts.join('\n');
}

// ---------------------------------------------------------------------------------------------
// The page

const CSS = `
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; margin: 2em auto; max-width: 1100px; padding: 0 1.5em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
p.note { color: #555; max-width: 60em; }
table { border-collapse: collapse; margin: 0.8em 0; }
th, td { padding: 0.3em 0.8em; border-bottom: 1px solid #e4e4e4; text-align: left; }
th { background: #f4f4f4; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.heatmap-grid { display: flex; flex-direction: column; gap: 1em; }
.heatmap-row { display: flex; flex-wrap: wrap; align-items: flex-start; gap: 0.8em; }
.heatmap-row .caption { width: 11em; font-weight: 600; padding-top: 0.3em; }
figure { margin: 0; text-align: center; }
figure img { image-rendering: pixelated; border: 1px solid #ccc; display: block; }
figcaption { font-size: 0.85em; color: #444; margin-top: 0.25em; max-width: 10em; }
.colour-key { display: flex; align-items: center; gap: 0.6em; margin: 1em 0; font-size: 0.9em; color: #444; }
.colour-key .bar { width: 240px; height: 14px; border: 1px solid #ccc; }
.charts { display: flex; flex-wrap: wrap; gap: 1.5em; }
svg.chart { font-size: 12px; background: #fff; }
svg.chart .chart-title { font-size: 14px; font-weight: 600; }
svg.chart .axis line { stroke: #444; }
svg.chart .axis text, svg.chart .legend-entry text { fill: #333; }
svg.chart .grid line { stroke: #eee; }
svg.chart .axis-label { fill: #333; font-size: 13px; }
`;

const DEFAULT_NOTES: Record<ReportSection, string> = {
  models:
    'Held-out test set. A row over several runs (seeds) shows their mean ± sample standard deviation; the other columns are means too. Agreement: share of test rows where the model predicts the teacher’s class. ECE: expected calibration error (lower is better).',
  heatmaps:
    'Integrated-gradients attributions for the class the teacher predicts. Red pixels push towards that class, blue ones away from it; each map is scaled to its own clipped maximum, so compare where the colour is, not how strong it is across maps.',
  agreement:
    'Student attributions against the teacher’s on the same inputs and targets, averaged over the examples: cosine similarity, Spearman rank correlation, and the share of the teacher’s top-k features (by |attribution|) that the student also ranks in its top k.',
  faithfulness:
    'Deletion: features removed in decreasing attribution order, area under the target-probability curve (lower is better). Insertion: features added to a blank input in that order (higher is better). The random-order control shows what an uninformative ranking gets.',
  training:
    'Per epoch. Each run’s loss is its own training objective (cross-entropy, or the distillation loss), so levels are comparable within a run, not across runs of different kinds.',
};

function colourKey(kind: 'diverging' | 'sequential'): string {
  const stops = kind === 'diverging' ? HEATMAP_STOPS : HEATMAP_STOPS.filter((s) => s[0] >= 0);
  const lo = stops[0]![0];
  const grad = stops.map(([p, r, g, b]) => `rgb(${r},${g},${b}) ${r2(((p - lo) / (1 - lo)) * 100)}%`).join(', ');
  const [left, right] = kind === 'diverging' ? ['− (against the class)', '+ (for the class)'] : ['0', 'largest'];
  return `<div class="colour-key"><span>${left}</span><div class="bar" style="background: linear-gradient(to right, ${grad})"></div><span>${right}</span></div>`;
}

/** The report as one self-contained HTML page. */
export function renderReport(data: ReportData): string {
  if (typeof data !== 'object' || data === null) throw new TypeError(`data must be an object, got ${data === null ? 'null' : typeof data}`);
  if (!Array.isArray(data.models)) throw new TypeError('data.models must be an array of model rows');
  const title = data.title ?? 'kdfuse demo report';
  const note = (s: ReportSection) => `<p class="note">${escapeHtml(data.sectionNotes?.[s] ?? DEFAULT_NOTES[s])}</p>`;
  const heading = (s: ReportSection) => `<h2 id="${s}-heading">${escapeHtml(data.sectionTitles?.[s] ?? DEFAULT_TITLES[s])}</h2>`;
  const body: string[] = [`<h1>${escapeHtml(title)}</h1>`, ...(data.notes ?? []).map((n) => `<p>${escapeHtml(n)}</p>`)];

  body.push(
    heading('models'),
    note('models'),
    table(
      'models',
      ['model', 'params', 'test acc (± sd)', 'agrees w/ teacher', 'ECE', 'train s', 'labels seen', 'runs'],
      data.models.map((r) => [escapeHtml(r.model), int(r.parameters),
        r.testAccuracySd === undefined ? pct(r.testAccuracy) : `${pct(r.testAccuracy)} ± ${fmt(100 * r.testAccuracySd, 1)}`,
        pct(r.teacherAgreement), fmt(r.ece, 3), fmt(r.trainSeconds, 1), r.labelledRows === undefined ? '' : int(r.labelledRows), int(r.seeds ?? 1)]),
    ),
  );

  const groups = data.heatmaps?.groups ?? [];
  if (groups.length > 0) {
    body.push(heading('heatmaps'), note('heatmaps'), '<div class="heatmap-grid" id="heatmaps">');
    groups.forEach((g, gi) => {
      if (!Array.isArray(g.pngs)) throw new TypeError(`data.heatmaps.groups[${gi}].pngs must be an array`);
      const figures = g.pngs.map((im, ii) => {
        const uri = pngDataUri(im.png, `data.heatmaps.groups[${gi}].pngs[${ii}].png`);
        const [w, h] = pngSize(im.png);
        const label = escapeHtml(im.label);
        return `<figure><img src="${uri}" width="${w}" height="${h}" alt="${escapeHtml(`${g.caption}: ${im.label}`)}"><figcaption>${label}</figcaption></figure>`;
      });
      body.push(`<div class="heatmap-row"><div class="caption">${escapeHtml(g.caption)}</div>${figures.join('')}</div>`);
    });
    body.push('</div>');
    const legend = data.heatmaps?.legend ?? 'diverging';
    if (legend !== false) body.push(colourKey(legend));
  }

  if (data.agreement && data.agreement.length > 0) {
    body.push(
      heading('agreement'),
      note('agreement'),
      table(
        'agreement',
        ['student', 'cosine', 'Spearman', 'top-k ∩', 'k', 'same prediction'],
        data.agreement.map((r) => [
          escapeHtml(r.student),
          fmt(r.comparison.mean.cosine, 3),
          fmt(r.comparison.mean.spearman, 3),
          fmt(r.comparison.mean.topKIntersection, 3),
          escapeHtml(String(r.comparison.topK)),
          pct(r.predictionAgreement),
        ]),
      ),
    );
  }

  if (data.faithfulness && data.faithfulness.length > 0) {
    body.push(
      heading('faithfulness'),
      note('faithfulness'),
      table(
        'faithfulness',
        ['model', 'deletion AUC ↓', 'deletion, random order', 'insertion AUC ↑', 'insertion, random order'],
        data.faithfulness.map((r) => [
          escapeHtml(r.model),
          fmt(r.deletion.meanAuc, 3),
          fmt(r.deletion.control?.meanAuc, 3),
          fmt(r.insertion.meanAuc, 3),
          fmt(r.insertion.control?.meanAuc, 3),
        ]),
      ),
    );
  }

  const runs = data.training ?? [];
  if (runs.length > 0) {
    const series = (key: 'loss' | 'valAccuracy') =>
      runs
        // one colour per run in both charts, also when a run has no validation accuracy
        .map((r, k) => ({ name: r.name, colour: SERIES_COLOURS[k % SERIES_COLOURS.length]!, points: r.epochs.map((e, i): [number, number] => [i + 1, e[key] ?? NaN]) }))
        .filter((s) => s.points.some((p) => Number.isFinite(p[1])));
    const charts = [lineChart({ title: 'Training loss', xLabel: 'epoch', yLabel: 'loss', series: series('loss') })];
    const acc = series('valAccuracy');
    if (acc.length > 0) {
      charts.push(
        lineChart({
          title: 'Validation accuracy',
          xLabel: 'epoch',
          yLabel: 'accuracy',
          series: acc,
          yLimits: [0, 1],
          yFormat: (v, step) => `${(100 * v).toFixed(Math.max(0, decimals(step) - 2))}%`,
        }),
      );
    }
    body.push(heading('training'), note('training'), `<div class="charts" id="training">${charts.join('\n')}</div>`);
  }

  body.push(...(data.extraSections ?? []));

  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeHtml(title)}</title>`,
    `<style>${CSS}</style>`,
    '</head>',
    '<body>',
    ...body,
    '</body>',
    '</html>',
    '',
  ].join('\n');
}
