/**
 * The demo's HTML report, built from synthetic data with real heatmap PNGs, checked as text
 * (self-contained, escaped) and rendered in headless Chromium (playwright-core driving the Debian
 * chromium at /usr/bin/chromium, or $CHROMIUM_PATH): every image decodes, every chart line has an
 * extent, every table has its rows, the console stays clean, nothing is fetched, and a screenshot
 * is a real picture. Without Chromium the browser tests are skipped, unless CI is set: then they fail.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PNG } from 'pngjs';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { attributionHeatmap } from '../src/explain/index.js';
import { escapeHtml, lineChart, renderReport, tickStep, type ReportData } from '../src/demo/report.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
const inCI = !!process.env.CI && !/^(0|false)$/i.test(process.env.CI);
const skipBrowser = !haveChromium && !inCI;
if (skipBrowser) {
  console.warn(`report.test.ts: SKIPPING the headless-Chromium checks: ${CHROMIUM} not found (apt-get install chromium, or set CHROMIUM_PATH). With CI set this is a failure.`);
}

/**
 * The little of the DOM these checks use, typed here: the project compiles without lib "dom", and
 * the $$eval callbacks run in the page (serialised: they may use nothing from this file's scope),
 * where these are real elements.
 */
interface Dom {
  textContent: string | null;
  getAttribute(name: string): string | null;
  querySelector(selector: string): Dom | null;
  querySelectorAll(selector: string): ArrayLike<Dom>;
  getBBox(): { width: number; height: number };
  getBoundingClientRect(): { width: number; height: number };
  points: { numberOfItems: number };
  complete: boolean;
  naturalWidth: number;
  naturalHeight: number;
  decode(): Promise<void>;
}

const NASTY = `<script>alert("x")</script> & 'quoted'`;
const EPOCHS = 30;

/** A digit-like 8 × 8 image in [0, 1] and an attribution map over it. */
function digit(k: number): { image: Float32Array; attr: Float32Array } {
  const image = new Float32Array(64), attr = new Float32Array(64);
  for (let i = 0; i < 64; i++) {
    const y = Math.floor(i / 8), x = i % 8;
    image[i] = Math.max(0, 1 - Math.abs(Math.hypot(x - 3.5, y - 3.5) - 2.2 - 0.3 * k) / 1.2);
    attr[i] = image[i]! * Math.sin(x + k) - 0.2 * Math.cos(y * (k + 1));
  }
  return { image, attr };
}

function syntheticData(): ReportData {
  const groups = [0, 1, 2].map((k) => {
    const { image, attr } = digit(k);
    const opts = { shape: [8, 8] as const, scale: 16 };
    return {
      caption: `test digit ${k} ${k === 2 ? NASTY : ''}`,
      pngs: [
        // the input in grayscale, dark ink on white: a zero map under an opaque overlay
        { label: 'input', png: attributionHeatmap(new Float32Array(64), { ...opts, overlay: image.map((v) => 1 - v), overlayAlpha: 1 }) },
        { label: 'teacher', png: attributionHeatmap(attr, { ...opts, overlay: image.map((v) => 1 - v), overlayAlpha: 0.3 }) },
        { label: 'student, plain KD', png: attributionHeatmap(attr.map((v, i) => v * 0.7 + 0.1 * Math.sin(i)), opts) },
        { label: 'student, explanation-aligned KD', png: attributionHeatmap(attr.map((v) => v * 0.9), opts) },
      ],
    };
  });
  const curve = (a: number, b: number) => Array.from({ length: EPOCHS }, (_, e) => ({ loss: a * Math.exp(-e / 8) + b, valAccuracy: 0.98 - 0.3 * Math.exp(-e / 5) * a }));
  const faith = (d: number, i: number) => ({ deletion: { meanAuc: d, control: { meanAuc: d + 0.2 } }, insertion: { meanAuc: i, control: { meanAuc: i - 0.2 } } });
  return {
    title: 'kdfuse demo report (synthetic)',
    notes: ['UCI digits, seed 1', `a note with ${NASTY}`],
    models: [
      { model: 'teacher 64-256-256-10', parameters: 84_746, testAccuracy: 0.9777, teacherAgreement: 1, ece: 0.0123, trainSeconds: 12.34 },
      { model: 'student, scratch 64-16-10', parameters: 1_210, testAccuracy: 0.95, teacherAgreement: 0.955, ece: 0.031, trainSeconds: 3.2 },
      { model: 'student, plain KD', parameters: 1_210, testAccuracy: 0.96, teacherAgreement: 0.97, ece: 0.02, trainSeconds: 4 },
      { model: `student, aligned ${NASTY}`, parameters: 1_210, testAccuracy: 0.962, teacherAgreement: 0.975, ece: NaN, trainSeconds: 5.5 },
    ],
    heatmaps: { groups },
    agreement: [
      { student: 'student, plain KD', comparison: { topK: 6, mean: { cosine: 0.61, spearman: 0.52, topKIntersection: 0.5 } }, predictionAgreement: 0.97 },
      { student: 'student, explanation-aligned KD', comparison: { topK: 6, mean: { cosine: 0.83, spearman: 0.71, topKIntersection: NaN } } },
    ],
    faithfulness: [
      { model: 'teacher', ...faith(0.21, 0.74) },
      { model: 'student, plain KD', ...faith(0.3, 0.66) },
      { model: 'student, explanation-aligned KD', ...faith(0.25, 0.7) },
    ],
    training: [
      { name: 'teacher', epochs: curve(2, 0.05) },
      { name: 'student, scratch', epochs: curve(2.3, 0.15).map(({ loss }) => ({ loss })) },
      { name: 'student, plain KD', epochs: curve(1.5, 0.3) },
      { name: `student, aligned ${NASTY}`, epochs: curve(1.6, 0.35) },
    ],
  };
}

describe('renderReport as text', () => {
  const html = renderReport(syntheticData());

  it('is self-contained: no external URLs, no scripts, images as data: URIs', () => {
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(html).not.toMatch(/(src|href)\s*=\s*["']?(https?:|\/\/)/i);
    expect(html).not.toMatch(/url\(\s*["']?https?:/i);
    expect(html).not.toMatch(/@import/i);
    expect(html).not.toMatch(/<script/i);
    expect(html).not.toMatch(/<link/i);
    const imgs = html.match(/<img [^>]*>/g) ?? [];
    expect(imgs).toHaveLength(12);
    for (const img of imgs) expect(img).toMatch(/src="data:image\/png;base64,[A-Za-z0-9+/]+=*"/);
  });

  it('escapes all inserted text', () => {
    expect(html).not.toContain(NASTY);
    expect(html).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;quoted&#39;');
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  });

  it('formats the tables as the console does, non-finite values as n/a', () => {
    expect(html).toContain('<td class="num">84,746</td><td class="num">97.8%</td><td class="num">100.0%</td><td class="num">0.012</td><td class="num">12.3</td>');
    expect(html).toMatch(/aligned [^<]*<\/td><td class="num">1,210<\/td><td class="num">96\.2%<\/td><td class="num">97\.5%<\/td><td class="num">n\/a<\/td>/);
  });

  it('rejects non-PNG images, naming where they are', () => {
    const d = syntheticData();
    d.heatmaps!.groups[1]!.pngs[2]!.png = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(() => renderReport(d)).toThrow(new RangeError('data.heatmaps.groups[1].pngs[2].png must be PNG bytes (no PNG signature found)'));
    d.heatmaps!.groups[1]!.pngs[2]!.png = 'abc' as never;
    expect(() => renderReport(d)).toThrow(TypeError);
    expect(() => renderReport({} as never)).toThrow(/^data\.models must be an array/);
  });

  it('tick steps are 1, 2 or 5 times a power of ten', () => {
    expect(tickStep(1, 150, 8)).toBe(20);
    expect(tickStep(0, 1, 6)).toBe(0.2);
    expect(tickStep(0.9, 0.98, 6)).toBeCloseTo(0.01, 12);
    expect(tickStep(1, 1, 6)).toBe(1);
    const svg = lineChart({ title: 'one point', xLabel: 'x', yLabel: 'y', series: [{ name: 'a', points: [[1, 5]] }] });
    expect(svg).toContain('<circle');
    expect(lineChart({ title: 'empty', xLabel: 'x', yLabel: 'y', series: [] })).toContain('no data');
  });
});

describe.skipIf(skipBrowser)('renderReport in headless Chromium', () => {
  let dir: string, context: BrowserContext, page: Page;
  const consoleErrors: string[] = [], requests: string[] = [];

  beforeAll(async () => {
    if (!haveChromium) throw new Error(`CI is set and ${CHROMIUM} is missing: the report must be checked in a browser in CI (.ci/run installs the Debian chromium package)`);
    dir = mkdtempSync(join(tmpdir(), 'kdfuse-report-'));
    writeFileSync(join(dir, 'report.html'), renderReport(syntheticData()));
    context = await chromium.launchPersistentContext(join(dir, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1200, height: 900 },
      timeout: 60_000,
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    page.on('request', (r) => requests.push(r.url()));
    await page.goto(pathToFileURL(join(dir, 'report.html')).href, { waitUntil: 'load' });
  });

  afterAll(async () => {
    await context?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('every image has loaded and decoded at its size', async () => {
    const imgs = await page.$$eval('img', (els) => (els as unknown as Dom[]).map((i) => ({ complete: i.complete, w: i.naturalWidth, h: i.naturalHeight })));
    expect(imgs).toHaveLength(12);
    for (const i of imgs) expect(i).toEqual({ complete: true, w: 128, h: 128 });
    const decoded = await page.$$eval('img', (els) => Promise.all((els as unknown as Dom[]).map((i) => i.decode().then(() => true))));
    expect(decoded.every(Boolean)).toBe(true);
  });

  it('the charts have their lines, ticks and legends, with nonzero extents', async () => {
    const charts = await page.$$eval('svg.chart', (svgs) =>
      (svgs as unknown as Dom[]).map((s) => ({
        title: s.querySelector('title')?.textContent,
        lines: Array.from(s.querySelectorAll('polyline')).map((p) => {
          const b = p.getBBox();
          return { w: b.width, h: b.height, points: p.points.numberOfItems };
        }),
        xTicks: s.querySelectorAll('.x-axis text').length,
        yTicks: s.querySelectorAll('.y-axis text').length,
        legend: Array.from(s.querySelectorAll('.legend-entry text')).map((t) => t.textContent),
        colours: Array.from(s.querySelectorAll('g.series polyline')).map((p) => p.getAttribute('stroke')),
        yLabels: Array.from(s.querySelectorAll('.y-axis text')).map((t) => t.textContent),
        box: (({ width, height }) => ({ width, height }))(s.getBoundingClientRect()),
      })),
    );
    expect(charts.map((c) => c.title)).toEqual(['Training loss', 'Validation accuracy']);
    const [loss, acc] = charts;
    expect(loss!.lines).toHaveLength(4);
    expect(acc!.lines).toHaveLength(3); // the scratch run has no validation accuracy
    for (const c of charts) {
      for (const l of c.lines) {
        expect(l.w).toBeGreaterThan(100);
        expect(l.h).toBeGreaterThan(10);
        expect(l.points).toBe(EPOCHS);
      }
      expect(c.xTicks).toBeGreaterThanOrEqual(3);
      expect(c.yTicks).toBeGreaterThanOrEqual(3);
      expect(c.box.width).toBeGreaterThan(300);
      expect(c.box.height).toBeGreaterThan(200);
    }
    expect(loss!.legend).toEqual(['teacher', 'student, scratch', 'student, plain KD', `student, aligned ${NASTY}`]);
    expect(acc!.legend).toEqual(['teacher', 'student, plain KD', `student, aligned ${NASTY}`]);
    // a run keeps its colour in both charts, though the scratch run is missing from the second
    expect(acc!.colours).toEqual([loss!.colours[0], loss!.colours[2], loss!.colours[3]]);
    expect(new Set(loss!.colours).size).toBe(4);
    expect(acc!.yLabels.at(-1)).toBe('100%');
  });

  it('the tables have their rows, and escaped text reads back as written', async () => {
    const rows = async (id: string) => page.$$eval(`table#${id} tbody tr`, (trs) => (trs as unknown as Dom[]).map((tr) => Array.from(tr.querySelectorAll('td')).map((td) => td.textContent)));
    const models = await rows('models');
    expect(models.map((r) => r[0])).toEqual(['teacher 64-256-256-10', 'student, scratch 64-16-10', 'student, plain KD', `student, aligned ${NASTY}`]);
    // the last two columns: labelled rows seen (blank when not given) and runs summarised (1 when not given)
    expect(models[0]).toEqual(['teacher 64-256-256-10', '84,746', '97.8%', '100.0%', '0.012', '12.3', '', '1']);
    expect(await rows('agreement')).toEqual([
      ['student, plain KD', '0.610', '0.520', '0.500', '6', '97.0%'],
      ['student, explanation-aligned KD', '0.830', '0.710', 'n/a', '6', 'n/a'],
    ]);
    expect(await rows('faithfulness')).toEqual([
      ['teacher', '0.210', '0.410', '0.740', '0.540'],
      ['student, plain KD', '0.300', '0.500', '0.660', '0.460'],
      ['student, explanation-aligned KD', '0.250', '0.450', '0.700', '0.500'],
    ]);
    expect(await page.$$eval('.heatmap-row .caption', (els) => els.map((e) => e.textContent))).toEqual(['test digit 0 ', 'test digit 1 ', `test digit 2 ${NASTY}`]);
    expect(await page.$$eval('script', (els) => els.length)).toBe(0);
  });

  it('logs no console errors and fetches nothing but the page itself', () => {
    expect(consoleErrors).toEqual([]);
    for (const url of requests) expect(url.startsWith('file:') || url.startsWith('data:'), url).toBe(true);
  });

  it('screenshots to a non-trivial PNG', async () => {
    const file = join(dir, 'report.png');
    await page.screenshot({ path: file, fullPage: true });
    const png = PNG.sync.read(readFileSync(file));
    expect(png.width).toBeGreaterThanOrEqual(1000);
    expect(png.height).toBeGreaterThan(1500);
    const colours = new Set<number>();
    let nonWhite = 0;
    for (let i = 0; i < png.data.length; i += 4) {
      const [r, g, b] = [png.data[i]!, png.data[i + 1]!, png.data[i + 2]!];
      colours.add((r << 16) | (g << 8) | b);
      if (r < 240 || g < 240 || b < 240) nonWhite++;
    }
    expect(colours.size).toBeGreaterThan(200);
    expect(nonWhite / (png.width * png.height)).toBeGreaterThan(0.03);
  });
});
