/**
 * `npm run bench`: kdfuse against tfjs (cpu and wasm), a plain-JS loop and its own reference
 * backend, per suite and shape, beside the memory bandwidth of a STREAM triad from the same run.
 * Progress goes to stderr, the tables (Markdown) to stdout, `--json FILE` writes everything.
 */
import { writeFileSync } from 'node:fs';
import * as kd from '../src/index.js';
import { parseArgs, USAGE, type BenchOptions } from './cli.js';
import { machine } from './machine.js';
import { formatDuration } from './measure.js';
import { kdfuseAsync, kdfuseAsyncBorrow, kdfuseDenseOut, kdfuseNative, kdfuseOneThread, kdfuseOut, kdfuseReference, expectedOutput } from './peers/kdfuse.js';
import type { Peer } from './peers/peer.js';
import { plainJs } from './peers/plain-js.js';
import { tfjsPeer, type TfjsPeer } from './peers/tfjs.js';
import { derive, renderSuite, type ShapeResult, type SuiteResult } from './table.js';
import { measureTriad, type TriadRate, type TriadResult } from './triad.js';
import { makeData, shapeLabel, LOSS } from './workload.js';
import { summary } from './summary.js';
import { renderHead, runHead, runHeadLarge, type HeadResult } from './head.js';

const gc = (globalThis as { gc?: () => void }).gc;

async function run(o: BenchOptions): Promise<void> {
  const started = performance.now();
  const options = { maxTimeS: o.maxTimeS, maxCallS: o.maxCallS };
  const tfWasm = tfjsPeer('wasm'), tfCpu = tfjsPeer('cpu');
  const all: Peer[] = [kdfuseNative, kdfuseOut, kdfuseDenseOut, kdfuseOneThread, kdfuseAsync, kdfuseAsyncBorrow, kdfuseReference, tfWasm, tfCpu, plainJs];
  const peers = o.peers ? all.filter((p) => o.peers!.includes(p.id)) : all;
  if (o.peers && peers.length !== o.peers.length) {
    throw new RangeError(`unknown peer among ${o.peers.join(', ')}; peers are ${all.map((p) => p.id).join(', ')}`);
  }

  if (o.headLarge) {
    process.stdout.write(`${runHeadLarge((s) => process.stderr.write(s))}\n`);
    return;
  }
  const triads: (TriadResult | { error: string })[] = [];
  const triad = async (oneThread: boolean) => {
    process.stderr.write('triad... ');
    const t = await measureTriad(options, oneThread);
    process.stderr.write('error' in t ? `${t.error}\n` : `${t.gbps.toFixed(1)} GB/s\n`);
    triads.push(t);
  };
  await triad(true);

  const results: SuiteResult[] = o.suites.map((s) => ({ ...s, shapes: [] }));
  /** Each peer's last measured time per suite, to estimate the next (larger) shape. */
  const last = new Map<string, { ms: number; elements: number }>();
  for (const shape of results.length ? o.shapes : []) {
    const data = makeData(shape);
    const elements = shape.rows * shape.cols;
    for (const suite of results) {
      const expected = expectedOutput(suite.id, data);
      const sr: ShapeResult = { shape: shapeLabel(shape), rows: shape.rows, cols: shape.cols, peers: [] };
      for (const peer of peers) {
        if (peer.only && !peer.only.includes(suite.id)) continue;
        const key = `${peer.id}/${suite.id}`;
        const prev = last.get(key);
        const estimateMs = prev ? (prev.ms * elements) / prev.elements : undefined;
        gc?.();
        const t0 = performance.now();
        const outcome = await peer.measureAt({ suite: suite.id, data, estimateMs, options, expected });
        const took = (performance.now() - t0) / 1000;
        if (outcome.status === 'ok') last.set(key, { ms: outcome.medianMs, elements });
        sr.peers.push({ peer: peer.id, label: peer.label, outcome });
        process.stderr.write(`[${suite.id} ${sr.shape}] ${peer.label}: ${outcome.status === 'ok' ? formatDuration(outcome.medianMs) : outcome.reason} (${took.toFixed(1)} s)\n`);
      }
      suite.shapes.push(sr);
    }
  }
  // The bandwidth this VM gets varies from one process and moment to the next: the triad runs at the
  // start and at the end, and the higher all-thread median is what the % triad column divides by
  // (the median, not STREAM's best sample, which single fast outliers decide here).
  gc?.();
  await triad(false);
  const rates = triads.flatMap((t) => ('gbps' in t ? [t.medianGbps] : []));
  const triadGbps = rates.length ? Math.max(...rates) : undefined;
  let head: HeadResult | undefined;
  if (o.head) {
    gc?.();
    head = await runHead(triadGbps, (s) => process.stderr.write(s));
  }
  for (const suite of results) for (const sr of suite.shapes) derive(suite, sr, triadGbps);

  const header = describeRun(triads, triadGbps, [tfWasm, tfCpu]);
  const body = results.map((s) => renderSuite(s, triadGbps)).join('\n');
  const wallS = (performance.now() - started) / 1000;
  const headText = head ? `\n${renderHead(head)}` : '';
  process.stdout.write(`${header}\n${body}\n${summary(results)}${headText}\nWhole run: ${wallS.toFixed(0)} s.\n`);
  if (o.json) {
    const json = { date: new Date().toISOString(), machine: machine(), backend: kd.backend(), tfjs: tfWasm.info, loss: { ...LOSS, divergence: 'kl', labels: true, reduction: 'mean' }, options, triad: { gbps: triadGbps, runs: triads }, suites: results, head, wallS };
    writeFileSync(o.json, `${JSON.stringify(json, null, 2)}\n`);
    process.stderr.write(`wrote ${o.json}\n`);
  }
}


function describeRun(triads: (TriadResult | { error: string })[], triadGbps: number | undefined, tf: TfjsPeer[]): string {
  const m = machine(), b = kd.backend();
  const tfInfo = tf.find((p) => p.info.tfjs)?.info;
  const wasm = tf.find((p) => p.info.backend === 'wasm')?.info;
  const ok = triads.filter((t): t is TriadResult => 'gbps' in t);
  const failed = triads.find((t): t is { error: string } => 'error' in t);
  const rate = (r: TriadRate) => `median ${r.medianGbps.toFixed(1)} GB/s (best sample ${r.gbps.toFixed(1)})`;
  const one = ok.find((t) => t.oneThread)?.oneThread;
  return [
    `## kdfuse benchmarks, ${new Date().toISOString().slice(0, 10)}`,
    '',
    `- Machine: ${m.cpu}${m.cpuFamily ? ` (${m.cpuFamily})` : ''}, ${m.cores} cores, ${m.memoryGiB} GiB, ` +
      `${m.simd.length ? m.simd.join('+') : 'no AVX2'}; Node ${m.node} (${m.platform}); commit ${m.commit?.slice(0, 12) ?? 'unknown'}` +
      `${m.commit?.endsWith('+changes') ? ' with uncommitted changes' : ''}`,
    `- kdfuse backend: ${b.name} (SIMD path), ${b.threads} thread${b.threads === 1 ? '' : 's'}; ` +
      `result memory released by ${kd.bufferCacheInfo()?.releasedBy === 'gc' ? 'the garbage collector' : 'a task after it (Node-API finalizers)'}; tfjs ${String(tfInfo?.tfjs ?? '(not run)')}` +
      (wasm ? ` (wasm: SIMD ${wasm.simd ? 'on' : 'off'}, threads ${wasm.threads ? 'on' : 'off'})` : ''),
    failed || !triadGbps ? `- STREAM triad: not measured (${failed?.error ?? 'no result'})`
      : `- STREAM triad (${(ok[0]!.elements / 2 ** 20).toFixed(0)}M floats, 12 bytes/element): all threads ` +
        (ok.length === 2 ? `${rate(ok[0]!)} at the start, ${rate(ok[1]!)} at the end` : rate(ok[0]!)) +
        `${one ? `; one thread ${rate(one)}` : ''}. ` +
        `% triad is relative to ${triadGbps.toFixed(1)} GB/s`,
    `- Loss: KL, T = ${LOSS.temperature}, alpha = ${LOSS.alpha}, with labels, mean over rows; inputs uniform in [-4, 4)`,
    '',
  ].join('\n');
}

try {
  const o = parseArgs(process.argv.slice(2));
  if (o === 'help') console.log(USAGE);
  else await run(o);
} catch (e) {
  console.error(e instanceof RangeError ? e.message : e);
  process.exitCode = 1;
}
