/**
 * `npm run fuzz -- [--seconds N] [--seed S] [--chunk N]`: calls every export of kdfuse, kdfuse/tfjs,
 * kdfuse/train and kdfuse/explain with junk, detached / shared / aliased buffers, disposed tensors,
 * throwing getters and huge dimensions (fuzz/values.ts, fuzz/entries.ts) for a bounded time, in
 * child processes (fuzz/child.ts) so a crash is counted and reported with the call that caused it.
 *
 * A result, a TypeError or a RangeError is fine (as is the error a caller's own throwing getter
 * raised); any other error class, an unhandled rejection, a call with no answer in 10 s, or a crash
 * (a signal, an abort, a non-zero exit) is a finding. Prints calls, outcomes by error class,
 * findings grouped by signature, and each crash with its arguments and the command that replays it.
 * Exits 1 when there are findings or crashes. See docs/reliability.md.
 */
import { fork } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { signature, type Finding, type Tally } from './tally.js';

const USAGE = `npm run fuzz -- [--seconds N] [--seed S] [--chunk N]
  --seconds N  how long to fuzz (default 60)
  --seed S     the seed of src/explain/random.ts's generator (default 1); a case is (seed, index)
  --chunk N    cases per child process before a fresh one starts (default 5000)`;

interface Crash {
  index: number;
  how: string;
  call: string;
  stderr: string;
}

/** A call that has not returned after this many seconds is a hang: the child is killed. */
const HANG_S = 10;
const here = dirname(fileURLToPath(import.meta.url));
const childPath = join(here, 'fuzz-child.js');

function positive(v: string | undefined, name: string, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!(Number.isFinite(n) && n > 0)) throw new RangeError(`--${name} must be a positive number, got ${v}`);
  return n;
}

async function runChild(seed: number, from: number, count: number, deadline: number, progress: string, work: string) {
  return new Promise<{ tally: Tally | undefined; code: number | null; signal: NodeJS.Signals | null; hung: boolean; stderr: string }>((resolve) => {
    const child = fork(childPath, ['--seed', String(seed), '--from', String(from), '--count', String(count), '--deadline', String(deadline), '--progress', progress], {
      cwd: work,  // functions that write files (saveTeacherLogits, fileSystemHandler) write into a scratch folder
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '3' },
    });
    let tally: Tally | undefined;
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    let ready = false;  // loading tfjs and kdfuse can take seconds on a busy machine: not a hang
    child.on('message', (m: { tally?: Tally; ready?: boolean }) => {
      if (m.ready) ready = true;
      if (m.tally) tally = m.tally;
    });
    // a call that neither returns nor crashes: the progress file stops moving
    let last = '', still = 0;
    const watch = setInterval(() => {
      let now = '';
      try {
        now = readFileSync(progress, 'utf8');
      } catch {
        // not written yet
      }
      still = ready && now === last ? still + 1 : 0;
      last = now;
      if (still >= HANG_S) child.kill('SIGKILL');
    }, 1000);
    child.on('exit', (code, signal) => {
      clearInterval(watch);
      resolve({ tally, code, signal, hung: still >= HANG_S, stderr });
    });
  });
}

function describeCase(seed: number, index: number): Promise<string> {
  return new Promise<string>((resolve) => {
    const child = fork(childPath, ['--seed', String(seed), '--describe', String(index)], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', () => resolve(out.trim()));
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { seconds: { type: 'string' }, seed: { type: 'string' }, chunk: { type: 'string' }, help: { type: 'boolean' } },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const seconds = positive(values.seconds, 'seconds', 60);
  const seed = Math.floor(positive(values.seed, 'seed', 1));
  const chunk = Math.floor(positive(values.chunk, 'chunk', 5000));
  const work = mkdtempSync(join(tmpdir(), 'kdfuse-fuzz-'));
  const progress = join(work, 'progress');
  const end = Date.now() + seconds * 1000;
  const outcomes: Record<string, number> = {};
  const findings = new Map<string, Finding>();
  const crashes: Crash[] = [];
  let calls = 0, children = 0, next = 0;
  const t0 = Date.now();

  while (Date.now() < end) {
    children++;
    writeFileSync(progress, '');  // a child that dies before its first call must not inherit the last index
    const r = await runChild(seed, next, chunk, end, progress, work);
    const t = r.tally;
    if (t) {
      calls += t.calls;
      for (const [k, v] of Object.entries(t.outcomes)) outcomes[k] = (outcomes[k] ?? 0) + v;
      for (const f of t.findings) {
        const k = signature(f), old = findings.get(k);
        if (old) old.count += f.count;
        else findings.set(k, { ...f });
      }
    }
    const clean = r.code === 0 && r.signal === null;
    if (clean) {
      next = (t?.lastIndex ?? next) + 1;
      continue;
    }
    // a crash: the progress file holds the index of the call in flight
    let index = t ? t.lastIndex + 1 : next;
    let started = false;
    try {
      const v = Number.parseInt(readFileSync(progress, 'utf8').replace(/\0/g, ''), 10);
      if (Number.isFinite(v)) [index, started] = [v, true];
    } catch {
      // no progress file: the child died before its first call
    }
    if (!started) {
      console.error(`kdfuse fuzz: a child process died before its first call (${r.signal ?? r.code}): ${r.stderr.slice(-500)}`);
      outcomes['child failed to start'] = (outcomes['child failed to start'] ?? 0) + 1;
      continue;
    }
    calls += index - (t ? t.lastIndex + 1 : next) + 1;  // the calls since its last report, the crashing one included
    const how = r.hung ? `hang: no answer in ${HANG_S} s, killed` : r.signal ? `crash: signal ${r.signal}` : `crash: exit code ${r.code}`;
    const stderr = r.stderr.split('\n').filter((l) => l.trim() && !/TensorFlow\.js in Node|^=+$/.test(l.trim()));
    crashes.push({ index, how, call: await describeCase(seed, index), stderr: stderr.slice(-6).join('\n') });
    const kind = r.hung ? 'hang' : 'crash';
    outcomes[kind] = (outcomes[kind] ?? 0) + 1;
    next = index + 1;
  }
  rmSync(work, { recursive: true, force: true });

  const secs = (Date.now() - t0) / 1000;
  console.log(`kdfuse fuzz: seed ${seed}, ${calls} calls in ${secs.toFixed(1)} s over ${children} child processes`);
  console.log('\noutcomes (calls reported before a crash or hang; those are counted below):');
  for (const [k, v] of Object.entries(outcomes).sort((a, b) => b[1] - a[1])) console.log(`  ${k.padEnd(28)} ${v}`);
  console.log(`\nfindings (not TypeError / RangeError): ${[...findings.values()].reduce((n, f) => n + f.count, 0)} calls, ${findings.size} signatures`);
  for (const f of [...findings.values()].sort((a, b) => b.count - a.count)) {
    console.log(`  ${String(f.count).padStart(6)}  ${f.entry}: ${f.errorClass}: ${f.message.slice(0, 160)}`);
    console.log(`          replay: node dist-fuzz/fuzz-child.js --seed ${seed} --describe ${f.index}`);
  }
  console.log(`\ncrashes and hangs: ${crashes.length}`);
  for (const c of crashes) {
    console.log(`  case ${c.index} (${c.how}): ${c.call.slice(0, 1200)}`);
    if (c.stderr) console.log(`    stderr: ${c.stderr.replace(/\n/g, '\n            ')}`);
  }
  process.exitCode = findings.size || crashes.length ? 1 : 0;
}

void main();
