/**
 * One fuzz worker process (started by fuzz/main.ts): runs cases from..from+count of a seed, each
 * case one call of one export. Before each call it writes the case index into the progress file
 * (one pwrite), so when the process dies on a signal or an abort, the parent knows which call did
 * it and can print its arguments (`--describe INDEX`, which prepares the case and prints it without
 * calling). It sends its tallies to the parent over IPC every few hundred cases and at the end.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import util, { inspect } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { exportsOf, templates, type Prepared } from './entries.js';
import { record, type Tally } from './tally.js';
import { Gen } from './values.js';

/** Accepted outcomes: a result, a TypeError / RangeError, the error the caller's own getter threw, no CUDA device, a path naming no readable file. */
export const ACCEPTED = new Set(['ok', 'TypeError', 'RangeError', 'GetterBomb', 'DeviceUnavailableError', 'FileSystemError']);
const CALL_TIMEOUT_MS = 10_000;

function mix(seed: number, index: number): number {
  return (Math.imul(seed ^ 0x2545f491, 0x9e3779b1) + Math.imul(index + 1, 0x85ebca6b)) >>> 0;
}

/** Case `index` of `seed`: which export and with which arguments (deterministic). */
export function prepare(seed: number, index: number, names: string[], fns: Map<string, (...a: unknown[]) => unknown>): [string, Prepared, Gen] {
  const g = new Gen(mix(seed, index));
  const name = names[g.int(names.length)]!;
  const tpl = templates().get(name);
  if (tpl && g.chance(0.85)) return [name, tpl(g), g];
  const fn = fns.get(name)!;
  const args = Array.from({ length: g.int(5) }, () => g.junk());
  const isClass = /^[A-Z]/.test(name.slice(name.lastIndexOf(':') + 1).replace(/^cuda\./, ''));
  return [name, { args, run: () => (isClass ? Reflect.construct(fn, args) : fn(...args)) }, g];
}

/** Tensors as `tf.Tensor([2, 3] float32)` (disposed or not) instead of their internals. */
function compact(v: unknown, depth: number): unknown {
  if (v instanceof tf.Tensor) return { [inspect.custom]: () => `tf.Tensor(${JSON.stringify(v.shape)} ${v.dtype}${v.isDisposed ? ', disposed' : ''})` };
  if (v instanceof tf.LayersModel) return { [inspect.custom]: () => `tf.LayersModel(${v.name}: ${JSON.stringify(v.inputs[0]?.shape)} -> ${JSON.stringify(v.outputs[0]?.shape)})` };
  if (depth > 3 || !v || typeof v !== 'object' || ArrayBuffer.isView(v) || util.types.isProxy(v)) return v;
  if (Array.isArray(v)) return v.length > 50 ? v : v.map((x) => compact(x, depth + 1));
  if (Object.getPrototypeOf(v) !== Object.prototype) return v;
  const o: Record<string, unknown> = {};
  for (const k of Object.keys(v)) {
    const d = Object.getOwnPropertyDescriptor(v, k)!;
    if (d.get) Object.defineProperty(o, k, { ...d, configurable: true });
    else o[k] = compact(d.value, depth + 1);
  }
  return o;
}

export function describeCase(name: string, p: Prepared): string {
  let args: string;
  try {
    args = inspect(compact(p.args, 0), { depth: 3, maxArrayLength: 8, breakLength: 140, showProxy: true, getters: false });
  } catch (e) {
    args = `(arguments could not be printed: ${String(e)})`;
  }
  return `${name}(...${args})`;
}

function classOf(e: unknown): string {
  // a path that names no readable file fails as Node's own fs calls do, with its errno code (the
  // README's error policy): counted apart, not as a finding
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (e instanceof Error && typeof code === 'string' && /^E[A-Z]+$/.test(code)) return 'FileSystemError';
  if (e instanceof Error) return e.constructor?.name ?? e.name;
  return `non-Error thrown (${typeof e})`;
}

async function settle(v: unknown): Promise<void> {
  if (v && typeof (v as Promise<unknown>).then === 'function') {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(Object.assign(new Error(`no answer in ${CALL_TIMEOUT_MS} ms`), { name: 'Timeout' })), CALL_TIMEOUT_MS);
    });
    try {
      v = await Promise.race([v as Promise<unknown>, timeout]);
    } catch (e) {
      if ((e as Error).name === 'Timeout') throw Object.assign(new Error((e as Error).message), { fuzzClass: 'Timeout' });
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }
  disposeDeep(v, 0);
}

function disposeDeep(v: unknown, depth: number): void {
  if (v instanceof tf.Tensor) {
    if (!v.isDisposed) v.dispose();
  } else if (v && typeof v === 'object' && depth < 2 && !ArrayBuffer.isView(v)) {
    for (const x of Object.values(v)) disposeDeep(x, depth + 1);
  }
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const arg = (k: string, d?: string): string => {
    const i = argv.indexOf(k);
    if (i >= 0 && argv[i + 1] !== undefined) return argv[i + 1]!;
    if (d === undefined) throw new RangeError(`${k} is required`);
    return d;
  };
  const seed = Number(arg('--seed', '1'));
  const fns = exportsOf();
  const names = [...fns.keys()].sort();
  if (argv.includes('--list')) {
    console.log(names.join('\n'));
    return;
  }
  if (argv.includes('--describe')) {
    const index = Number(arg('--describe'));
    const [name, p] = prepare(seed, index, names, fns);
    console.log(describeCase(name, p));
    return;
  }
  const from = Number(arg('--from', '0')), count = Number(arg('--count', '1000000000'));
  const deadline = Number(arg('--deadline', String(Date.now() + 60_000)));
  const progress = openSync(arg('--progress'), 'w');
  const stamp = Buffer.alloc(16);
  const tally: Tally = { calls: 0, outcomes: {}, findings: [], lastIndex: from - 1 };
  const send = (): void => {
    process.send?.({ tally });
  };
  let current = { index: -1, entry: '' };
  process.send?.({ ready: true });
  process.on('unhandledRejection', (e) => {
    tally.outcomes.unhandledRejection = (tally.outcomes.unhandledRejection ?? 0) + 1;
    record(tally, { index: current.index, entry: current.entry, errorClass: 'unhandledRejection', message: String((e as Error)?.message ?? e) });
  });
  for (let index = from; index < from + count && Date.now() < deadline; index++) {
    stamp.fill(0);
    stamp.write(String(index));
    writeSync(progress, stamp, 0, 16, 0);
    let name = '?', outcome = 'ok', message = '';
    const t0 = performance.now();
    let g: Gen | undefined;
    try {
      const [n, p, gen] = prepare(seed, index, names, fns);
      name = n;
      g = gen;
      current = { index, entry: name };
      await settle(p.run());
    } catch (e) {
      outcome = (e as { fuzzClass?: string }).fuzzClass ?? classOf(e);
      message = String((e as Error)?.message ?? e).slice(0, 300);
    } finally {
      g?.dispose();
    }
    const ms = performance.now() - t0;
    if (process.env.KDFUSE_FUZZ_SLOW && ms > Number(process.env.KDFUSE_FUZZ_SLOW)) console.error(`slow case ${index}: ${name} ${ms.toFixed(0)} ms`);
    tally.calls++;
    tally.lastIndex = index;
    tally.outcomes[outcome] = (tally.outcomes[outcome] ?? 0) + 1;
    if (!ACCEPTED.has(outcome)) record(tally, { index, entry: name, errorClass: outcome, message });
    if (tally.calls % 20 === 0) send();
  }
  closeSync(progress);
  // the last tally, then exit at once: a timer or handle some call left behind must not keep the
  // process alive (the parent would take that for a hang)
  await new Promise<void>((resolve) => (process.send ? process.send({ tally }, () => resolve()) : resolve()));
}

void main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(3);
  },
);
