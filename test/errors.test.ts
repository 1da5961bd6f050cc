/**
 * Bad input for every argument of every export: the right error class (TypeError for wrong types,
 * RangeError for wrong values, lengths and ranges), a message naming the argument (and, for bad
 * data, the index), Promise rejection (never a synchronous throw) for the Async variants, and the
 * same class and argument name from the raw addon, which checks everything itself because it can
 * be called directly.
 */
import { describe, expect, it } from 'vitest';
import * as kd from '../src/index.js';
import { DISTILL_ARG_NAMES, nativeAddon } from '../src/kernels/native.js';

type ErrorClass = TypeErrorConstructor | RangeErrorConstructor;
type Opts = Record<string, unknown>;
type AnyFn = (...args: unknown[]) => unknown;
type AnyAsyncFn = (...args: unknown[]) => Promise<unknown>;

const NOTHING = Symbol('no error');

function caught(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  return NOTHING;
}

function checkError(err: unknown, cls: ErrorClass, re: RegExp, what: string): void {
  if (err === NOTHING) expect.fail(`${what}: expected a ${cls.name} matching ${String(re)}, but nothing was thrown`);
  expect(err, `${what}: class (message: ${(err as Error)?.message})`).toBeInstanceOf(cls);
  expect((err as Error).name, `${what}: name`).toBe(cls.name);
  expect((err as Error).message, `${what}: message`).toMatch(re);
}

function expectThrows(f: () => unknown, cls: ErrorClass, re: RegExp, what: string): void {
  checkError(caught(f), cls, re, what);
}

async function expectRejects(f: () => Promise<unknown>, cls: ErrorClass, re: RegExp, what: string): Promise<void> {
  let p: Promise<unknown> | undefined;
  const syncErr = caught(() => {
    p = f();
  });
  if (syncErr !== NOTHING) expect.fail(`${what}: threw synchronously instead of rejecting: ${String(syncErr)}`);
  expect(p, `${what}: returns a Promise`).toBeInstanceOf(Promise);
  const err = await p!.then(
    () => NOTHING,
    (e: unknown) => e,
  );
  checkError(err, cls, re, `${what} (rejection)`);
}

/** Float32Array with one element replaced. */
function withValue(x: Float32Array, i: number, v: number): Float32Array {
  const y = x.slice();
  y[i] = v;
  return y;
}

function withRow(x: Float32Array, cols: number, r: number, v: number): Float32Array {
  const y = x.slice();
  y.fill(v, r * cols, (r + 1) * cols);
  return y;
}

function detached(x: Float32Array): Float32Array {
  const y = x.slice();
  structuredClone(y.buffer, { transfer: [y.buffer] });
  return y;
}

interface Case {
  what: string;
  /** The argument list the export is called with (one options object unless noted). */
  args: (base: Opts) => unknown[];
  cls: ErrorClass;
  re: RegExp;
  /** false: the case only makes sense for the TypeScript layer (e.g. number[] labels). */
  native?: boolean;
}

const opt = (what: string, patch: (b: Opts) => Opts, cls: ErrorClass, re: RegExp, native = true): Case => ({
  what,
  args: (b) => [{ ...b, ...patch(b) }],
  cls,
  re,
  native,
});

/** Cases for the options object itself (shared by every kernel export). */
function optionsCases(): Case[] {
  return [
    { what: 'options missing', args: () => [], cls: TypeError, re: /^options must be an object, got undefined/ },
    { what: 'options undefined', args: () => [undefined], cls: TypeError, re: /^options must be an object/ },
    { what: 'options null', args: () => [null], cls: TypeError, re: /^options must be an object, got null/ },
    { what: 'options a string', args: () => ['student'], cls: TypeError, re: /^options must be an object, got string/ },
    { what: 'options a number', args: () => [3], cls: TypeError, re: /^options must be an object, got number 3/ },
    { what: 'options an Array', args: () => [[]], cls: TypeError, re: /^options must be an object, got Array/ },
    {
      what: 'options a Float32Array',
      args: () => [new Float32Array(6)],
      cls: TypeError,
      re: /^options must be an object, got Float32Array/,
    },
  ];
}

/** rows / cols: missing, wrong type, 0, -1, 1.5, NaN, Infinity, '3', beyond 2^53 - 1. */
function dimCases(): Case[] {
  const cases: Case[] = [];
  for (const dim of ['rows', 'cols']) {
    const re = (s: string) => new RegExp(`^${dim} must ${s}`);
    cases.push(
      opt(`${dim} missing`, () => ({ [dim]: undefined }), TypeError, re('be a number, got undefined')),
      opt(`${dim} null`, () => ({ [dim]: null }), TypeError, re('be a number, got null')),
      opt(`${dim} '3'`, () => ({ [dim]: '3' }), TypeError, re("be a number, got string '3'")),
      opt(`${dim} an object`, () => ({ [dim]: { valueOf: () => 3 } }), TypeError, re('be a number, got object')),
      opt(`${dim} 0`, () => ({ [dim]: 0 }), RangeError, re('be an integer >= 1, got 0')),
      opt(`${dim} -1`, () => ({ [dim]: -1 }), RangeError, re('be an integer >= 1, got -1')),
      opt(`${dim} 1.5`, () => ({ [dim]: 1.5 }), RangeError, re('be an integer >= 1, got 1.5')),
      opt(`${dim} NaN`, () => ({ [dim]: NaN }), RangeError, re('be an integer >= 1, got NaN')),
      opt(`${dim} Infinity`, () => ({ [dim]: Infinity }), RangeError, re('be an integer >= 1, got Infinity')),
      opt(`${dim} 2^53`, () => ({ [dim]: 2 ** 53 }), RangeError, re('be an integer >= 1')),
    );
  }
  return cases;
}

/** A required Float32Array argument `name` of length rows * cols (data checks included when `data`). */
function f32Cases(name: string, b: () => Opts, data: boolean, kind = 'rows \\* cols'): Case[] {
  const cols = b().cols as number;
  const re = (s: string) => new RegExp(`^${name} must ${s}`);
  const cases: Case[] = [
    opt(`${name} missing`, () => ({ [name]: undefined }), TypeError, re('be a Float32Array, got undefined')),
    opt(`${name} null`, () => ({ [name]: null }), TypeError, re('be a Float32Array, got null')),
    opt(`${name} an Array`, (o) => ({ [name]: Array.from(o[name] as Float32Array) }), TypeError, re('be a Float32Array, got Array')),
    opt(`${name} a Float64Array`, (o) => ({ [name]: Float64Array.from(o[name] as Float32Array) }), TypeError, re('be a Float32Array, got Float64Array')),
    opt(`${name} an Int32Array`, (o) => ({ [name]: new Int32Array((o[name] as Float32Array).length) }), TypeError, re('be a Float32Array, got Int32Array')),
    opt(`${name} a string`, () => ({ [name]: 'abc' }), TypeError, re("be a Float32Array, got string 'abc'")),
    opt(`${name} an object`, () => ({ [name]: { length: 6 } }), TypeError, re('be a Float32Array, got object')),
    opt(`${name} an ArrayBuffer`, () => ({ [name]: new ArrayBuffer(24) }), TypeError, re('be a Float32Array, got ArrayBuffer')),
    opt(`${name} detached`, (o) => ({ [name]: detached(o[name] as Float32Array) }), TypeError, re('be a usable Float32Array.*detached')),
    opt(`${name} too short`, (o) => ({ [name]: (o[name] as Float32Array).subarray(1) }), RangeError, re(`have ${kind} = \\d+ elements, got \\d+`)),
    opt(`${name} too long`, (o) => ({ [name]: new Float32Array((o[name] as Float32Array).length + 1) }), RangeError, re(`have ${kind} = \\d+ elements, got \\d+`)),
    opt(`${name} empty`, () => ({ [name]: new Float32Array(0) }), RangeError, re(`have ${kind} = \\d+ elements, got 0`)),
  ];
  if (data) {
    cases.push(
      opt(`NaN in ${name}`, (o) => ({ [name]: withValue(o[name] as Float32Array, 4, NaN) }), RangeError,
        new RegExp(`^${name} must not contain NaN, got NaN at index 4 \\(row ${Math.floor(4 / cols)}, column ${4 % cols}\\)`)),
      opt(`+Infinity in ${name}`, (o) => ({ [name]: withValue(o[name] as Float32Array, 2, Infinity) }), RangeError,
        new RegExp(`^${name} must not contain \\+Infinity, got Infinity at index 2 \\(row ${Math.floor(2 / cols)}, column ${2 % cols}\\)`)),
      opt(`NaN in the last element of ${name}`, (o) => {
        const x = o[name] as Float32Array;
        return { [name]: withValue(x, x.length - 1, NaN) };
      }, RangeError, new RegExp(`^${name} must not contain NaN.* at index ${(b()[name] as Float32Array).length - 1}`)),
    );
  }
  return cases;
}

function numberCases(name: string, bad: number[], badRe: string, cls: ErrorClass = RangeError): Case[] {
  return [
    opt(`${name} '1'`, () => ({ [name]: '1' }), TypeError, new RegExp(`^${name} must be a number, got string '1'`)),
    opt(`${name} null`, () => ({ [name]: null }), TypeError, new RegExp(`^${name} must be a number, got null`)),
    opt(`${name} true`, () => ({ [name]: true }), TypeError, new RegExp(`^${name} must be a number, got boolean true`)),
    ...bad.map((v) => opt(`${name} ${String(v)}`, () => ({ [name]: v }), cls, new RegExp(`^${name} must ${badRe}, got ${String(v).replace('+', '\\+')}`))),
  ];
}

const temperatureCases = (): Case[] => numberCases('temperature', [0, -1, -0.5, NaN, Infinity, -Infinity], 'be a finite number > 0');

function boolCases(name: string): Case[] {
  return [
    opt(`${name} 1`, () => ({ [name]: 1 }), TypeError, new RegExp(`^${name} must be a boolean, got number 1`)),
    opt(`${name} 'true'`, () => ({ [name]: 'true' }), TypeError, new RegExp(`^${name} must be a boolean, got string 'true'`)),
    opt(`${name} null`, () => ({ [name]: null }), TypeError, new RegExp(`^${name} must be a boolean, got null`)),
  ];
}

function choiceCases(name: string, bad: string): Case[] {
  return [
    opt(`${name} '${bad}'`, () => ({ [name]: bad }), RangeError, new RegExp(`^${name} must be one of .*, got '${bad}'`)),
    opt(`${name} ''`, () => ({ [name]: '' }), RangeError, new RegExp(`^${name} must be one of .*, got ''`)),
    opt(`${name} 'MEAN'/'KL' (case matters)`, () => ({ [name]: name === 'reduction' ? 'MEAN' : 'KL' }), RangeError, new RegExp(`^${name} must be one of`)),
    opt(`${name} 1`, () => ({ [name]: 1 }), TypeError, new RegExp(`^${name} must be one of .*, got number 1`)),
    opt(`${name} null`, () => ({ [name]: null }), TypeError, new RegExp(`^${name} must be one of .*, got null`)),
    opt(`${name} an object`, () => ({ [name]: { toString: () => 'mean' } }), TypeError, new RegExp(`^${name} must be one of .*, got object`)),
  ];
}

// ------------------------------------------------------------------ the exports under test

interface Api {
  name: string;
  sync: AnyFn;
  async: AnyAsyncFn;
  /** The raw addon's entry points and how the export's options map onto them. */
  nativeSync?: AnyFn;
  nativeAsync?: AnyAsyncFn;
  toNative?: (o: unknown) => unknown;
  /** The addon's positional entry (distillationLossArgs), given the native options object. */
  nativePositional?: (o: Opts) => unknown;
  base: () => Opts;
  cases: Case[];
}

const ROWS = 2, COLS = 3;
const S = [0.5, -1, 2, 1, 0, -0.5];
const T = [1, 0.2, -0.3, 0, 2, 1];

const distillBase = (): Opts => ({
  student: Float32Array.from(S),
  teacher: Float32Array.from(T),
  rows: ROWS,
  cols: COLS,
  labels: Int32Array.from([0, 2]),
  temperature: 2,
  alpha: 0.4,
});

function distillCases(kl: boolean): Case[] {
  const cases: Case[] = [
    ...optionsCases(),
    ...dimCases(),
    ...f32Cases('student', distillBase, true),
    ...f32Cases('teacher', distillBase, true),
    opt('student row 1 all -Infinity', (o) => ({ student: withRow(o.student as Float32Array, COLS, 1, -Infinity) }), RangeError,
      /^student row 1 must have at least one finite logit, got all -Infinity/),
    opt('teacher row 0 all -Infinity', (o) => ({ teacher: withRow(o.teacher as Float32Array, COLS, 0, -Infinity) }), RangeError,
      /^teacher row 0 must have at least one finite logit, got all -Infinity/),
    // finite logits that 1/T carries past float32 (every backend rejects them: the kernels would give NaN)
    opt('student logit 3e38 at T 0.5', (o) => ({ student: withValue(o.student as Float32Array, 4, 3e38), temperature: 0.5 }), RangeError,
      /^temperature must be large enough that student logits \/ temperature stay below 2\^127 = 1\.7014118346046923e\+38 in magnitude \(half of float32's range\), got 0\.5 with student row 1$/),
    opt('teacher logit 3e38 at T 0.5', (o) => ({ teacher: withValue(o.teacher as Float32Array, 0, 3e38), temperature: 0.5 }), RangeError,
      /^temperature must be large enough that teacher logits \/ temperature stay below 2\^127 = 1\.7014118346046923e\+38 in magnitude \(half of float32's range\), got 0\.5 with teacher row 0$/),
    opt('student and teacher sharing one buffer of the wrong size', () => {
      const buf = new Float32Array(10);
      return { student: buf.subarray(0, 5), teacher: buf.subarray(5) };
    }, RangeError, /^student must have rows \* cols = 6 elements, got 5/),
    opt('rows * cols overflowing 64 bits (2^33 x 2^31, empty arrays)', () => ({
      rows: 2 ** 33, cols: 2 ** 31, student: new Float32Array(0), teacher: new Float32Array(0), labels: undefined, reduction: 'none',
    }), RangeError, /rows \* cols/),
    ...temperatureCases(),
    ...numberCases('beta', [-0.1, 1.1, 2, NaN, Infinity], 'be in \\[0, 1\\]'),
    ...boolCases('scaleByTemperatureSquared'),
    ...choiceCases('reduction', 'avg'),
    ...choiceCases('divergence', 'js'),
  ];
  if (kl) {
    cases.push(
      opt('out a string', () => ({ out: 'x' }), TypeError, /^out must be an object/),
      opt('out a Float32Array', () => ({ out: new Float32Array(2) }), TypeError, /^out must be an object.*got Float32Array/),
      opt('out.losses too small', () => ({ reduction: 'none', out: { losses: new Float32Array(1) } }), RangeError,
        /^out\.losses must have at least rows = 2 elements, got 1/),
      opt('out.losses an Array', () => ({ reduction: 'none', out: { losses: [0, 0] } }), TypeError,
        /^out\.losses must be a Float32Array, got Array/),
      opt('out.losses a Float64Array', () => ({ reduction: 'none', out: { losses: new Float64Array(2) } }), TypeError,
        /^out\.losses must be a Float32Array, got Float64Array/),
    );
    return cases;
  }
  const cs = (v: Opts): Opts => ({ computeTeacherGrad: true, ...v });
  cases.push(
    // labels
    opt('labels a string', () => ({ labels: 'ab' }), TypeError, /^labels must be an Int32Array.*got string 'ab'/),
    opt('labels an object', () => ({ labels: { 0: 1, 1: 0 } }), TypeError, /^labels must be an Int32Array.*got object/),
    opt('labels a number', () => ({ labels: 1 }), TypeError, /^labels must be an Int32Array.*got number 1/),
    opt('labels out of range (= cols)', () => ({ labels: Int32Array.from([0, 3]) }), RangeError,
      /^labels\[1\] must be an integer in \[0, 3\) or ignoreIndex \(-100\), got 3/),
    opt('labels negative (not ignoreIndex)', () => ({ labels: Int32Array.from([-1, 0]) }), RangeError,
      /^labels\[0\] must be an integer in \[0, 3\) or ignoreIndex \(-100\), got -1/),
    opt('labels -100 with another ignoreIndex', () => ({ labels: Int32Array.from([1, -100]), ignoreIndex: -1 }), RangeError,
      /^labels\[1\] must be an integer in \[0, 3\) or ignoreIndex \(-1\), got -100/),
    opt('labels too long', () => ({ labels: Int32Array.from([0, 1, 2]) }), RangeError, /^labels must have rows = 2 elements, got 3/),
    opt('labels too short', () => ({ labels: Int32Array.from([0]) }), RangeError, /^labels must have rows = 2 elements, got 1/),
    opt('labels detached', () => {
      const l = Int32Array.from([0, 1]);
      structuredClone(l.buffer, { transfer: [l.buffer] });
      return { labels: l };
    }, TypeError, /^labels must be a usable Int32Array.*detached/),
    // number[] labels exist only in the TypeScript API (the addon takes an Int32Array)
    opt('labels number[] with 1.5', () => ({ labels: [0, 1.5] }), RangeError, /^labels\[1\] must be an integer, got 1\.5/, false),
    opt('labels number[] with NaN', () => ({ labels: [NaN, 1] }), RangeError, /^labels\[0\] must be an integer, got NaN/, false),
    opt('labels number[] with a string', () => ({ labels: ['0', 1] }), TypeError, /^labels\[0\] must be a number, got string '0'/, false),
    opt('labels number[] with 2^31', () => ({ labels: [2 ** 31, 1] }), RangeError, /^labels\[0\] must be a 32-bit integer/, false),
    opt('labels number[] out of range', () => ({ labels: [0, 7] }), RangeError, /^labels\[1\] must be an integer in \[0, 3\)/, false),
    opt('labels number[] too long', () => ({ labels: [0, 1, 2] }), RangeError, /^labels must have rows = 2 elements, got 3/, false),
    opt('labels Float64Array with 0.5', () => ({ labels: Float64Array.from([0.5, 1]) }), RangeError, /^labels\[0\] must be an integer, got 0\.5/, false),
    // scalar options
    ...numberCases('alpha', [-0.1, 1.1, NaN, Infinity], 'be in \\[0, 1\\]'),
    ...numberCases('labelSmoothing', [1, -0.1, 1.5, NaN], 'be in \\[0, 1\\)'),
    ...numberCases('ignoreIndex', [1.5, 2 ** 31, -(2 ** 31) - 1, NaN, Infinity], 'be a 32-bit integer'),
    ...boolCases('computeStudentGrad'),
    ...boolCases('computeTeacherGrad'),
    // gradOutput
    opt('gradOutput NaN', () => ({ gradOutput: NaN }), RangeError, /^gradOutput must be a finite number, got NaN/),
    opt('gradOutput Infinity', () => ({ gradOutput: Infinity }), RangeError, /^gradOutput must be a finite number, got Infinity/),
    opt('gradOutput -Infinity (reduction sum)', () => ({ gradOutput: -Infinity, reduction: 'sum' }), RangeError, /^gradOutput must be a finite number, got -Infinity/),
    opt("gradOutput '1'", () => ({ gradOutput: '1' }), TypeError, /^gradOutput must be a number.*got string '1'/),
    opt('gradOutput null', () => ({ gradOutput: null }), TypeError, /^gradOutput must be a number.*got null/),
    opt("gradOutput a Float32Array with reduction 'mean'", () => ({ gradOutput: new Float32Array(2) }), TypeError, /^gradOutput must be a number.*got Float32Array/),
    opt("gradOutput a Float32Array with reduction 'sum'", () => ({ gradOutput: new Float32Array(2), reduction: 'sum' }), TypeError, /^gradOutput must be a number.*got Float32Array/),
    opt("gradOutput too short (reduction 'none')", () => ({ gradOutput: new Float32Array(1), reduction: 'none' }), RangeError, /^gradOutput must have rows = 2 elements, got 1/),
    opt("gradOutput too long (reduction 'none')", () => ({ gradOutput: new Float32Array(3), reduction: 'none' }), RangeError, /^gradOutput must have rows = 2 elements, got 3/),
    opt("gradOutput a Float64Array (reduction 'none')", () => ({ gradOutput: new Float64Array(2), reduction: 'none' }), TypeError, /^gradOutput must be a Float32Array, got Float64Array/),
    opt("gradOutput an Array (reduction 'none')", () => ({ gradOutput: [1, 1], reduction: 'none' }), TypeError, /^gradOutput must be a Float32Array, got Array/),
    opt("gradOutput a string (reduction 'none')", () => ({ gradOutput: 'x', reduction: 'none' }), TypeError, /^gradOutput must be a Float32Array, got string/),
    opt("gradOutput detached (reduction 'none')", () => ({ gradOutput: detached(new Float32Array(2)), reduction: 'none' }), TypeError, /^gradOutput must be a usable Float32Array.*detached/),
    opt("NaN in gradOutput[1] (reduction 'none')", () => ({ gradOutput: Float32Array.from([1, NaN]), reduction: 'none' }), RangeError, /^gradOutput\[1\] must be a finite number, got NaN/),
    opt("+Infinity in gradOutput[0] (reduction 'none')", () => ({ gradOutput: Float32Array.from([Infinity, 1]), reduction: 'none' }), RangeError, /^gradOutput\[0\] must be a finite number, got Infinity/),
    opt("NaN gradOutput number (reduction 'none')", () => ({ gradOutput: NaN, reduction: 'none' }), RangeError, /^gradOutput must be a finite number, got NaN/),
    // out
    opt('out a string', () => ({ out: 'x' }), TypeError, /^out must be an object.*got string 'x'/),
    opt('out null', () => ({ out: null }), TypeError, /^out must be an object.*got null/),
    opt('out an Array', () => ({ out: [] }), TypeError, /^out must be an object.*got Array/),
    opt('out a Float32Array', () => ({ out: new Float32Array(6) }), TypeError, /^out must be an object.*got Float32Array/),
    opt('out.gradStudent an Array', () => ({ out: { gradStudent: new Array(6).fill(0) } }), TypeError, /^out\.gradStudent must be a Float32Array, got Array/),
    opt('out.gradStudent a Float64Array', () => ({ out: { gradStudent: new Float64Array(6) } }), TypeError, /^out\.gradStudent must be a Float32Array, got Float64Array/),
    opt('out.gradStudent a string', () => ({ out: { gradStudent: 'g' } }), TypeError, /^out\.gradStudent must be a Float32Array, got string/),
    opt('out.gradStudent detached', () => ({ out: { gradStudent: detached(new Float32Array(6)) } }), TypeError, /^out\.gradStudent must be a usable Float32Array.*detached/),
    opt('out.gradStudent too small', () => ({ out: { gradStudent: new Float32Array(5) } }), RangeError, /^out\.gradStudent must have at least rows \* cols = 6 elements, got 5/),
    opt('out.gradTeacher a Float64Array', () => cs({ out: { gradTeacher: new Float64Array(6) } }), TypeError, /^out\.gradTeacher must be a Float32Array, got Float64Array/),
    opt('out.gradTeacher too small', () => cs({ out: { gradTeacher: new Float32Array(5) } }), RangeError, /^out\.gradTeacher must have at least rows \* cols = 6 elements, got 5/),
    opt("out.losses too small (reduction 'none')", () => ({ reduction: 'none', out: { losses: new Float32Array(1) } }), RangeError, /^out\.losses must have at least rows = 2 elements, got 1/),
    opt('out.losses an Array', () => ({ reduction: 'none', out: { losses: [0, 0] } }), TypeError, /^out\.losses must be a Float32Array, got Array/),
    opt('out.gradStudent is student', (o) => ({ out: { gradStudent: o.student } }), RangeError, /^out\.gradStudent must not share memory with student/),
    opt('out.gradStudent is teacher', (o) => ({ out: { gradStudent: o.teacher } }), RangeError, /^out\.gradStudent must not share memory with teacher/),
    opt('out.gradStudent overlaps the end of student', () => {
      const buf = new Float32Array(12);
      buf.set(S, 0);
      return { student: buf.subarray(0, 6), out: { gradStudent: buf.subarray(5, 11) } };
    }, RangeError, /^out\.gradStudent must not share memory with student/),
    opt('out.gradTeacher is teacher', (o) => cs({ out: { gradTeacher: o.teacher } }), RangeError, /^out\.gradTeacher must not share memory with teacher/),
    opt('out.gradTeacher is student', (o) => cs({ out: { gradTeacher: o.student } }), RangeError, /^out\.gradTeacher must not share memory with student/),
    opt('out.gradTeacher is out.gradStudent', () => {
      const g = new Float32Array(6);
      return cs({ out: { gradStudent: g, gradTeacher: g } });
    }, RangeError, /^out\.gradTeacher must not share memory with out\.gradStudent/),
  );
  return cases;
}

const softmaxBase = (): Opts => ({ logits: Float32Array.from(S), rows: ROWS, cols: COLS, temperature: 2 });
const backwardBase = (): Opts => ({
  output: Float32Array.from([0.2, 0.3, 0.5, 0.1, 0.6, 0.3]),
  gradOutput: Float32Array.from([1, -1, 0.5, 0.25, 0, 2]),
  rows: ROWS,
  cols: COLS,
  temperature: 2,
});

function outCases(inputs: string[]): Case[] {
  return [
    opt('out an Array', () => ({ out: new Array(6).fill(0) }), TypeError, /^out must be a Float32Array, got Array/),
    opt('out a Float64Array', () => ({ out: new Float64Array(6) }), TypeError, /^out must be a Float32Array, got Float64Array/),
    opt('out a string', () => ({ out: 'o' }), TypeError, /^out must be a Float32Array, got string 'o'/),
    opt('out an object', () => ({ out: { data: new Float32Array(6) } }), TypeError, /^out must be a Float32Array, got object/),
    opt('out detached', () => ({ out: detached(new Float32Array(6)) }), TypeError, /^out must be a usable Float32Array.*detached/),
    opt('out too small', () => ({ out: new Float32Array(5) }), RangeError, /^out must have at least rows \* cols = 6 elements, got 5/),
    ...inputs.map((name) =>
      opt(`out is ${name}`, (o) => ({ out: o[name] }), RangeError, new RegExp(`^out must not share memory with ${name}`))),
    ...inputs.map((name) =>
      opt(`out overlaps the start of ${name}`, (o) => {
        const buf = new Float32Array(12);
        buf.set(o[name] as Float32Array, 4);
        return { [name]: buf.subarray(4, 10), out: buf.subarray(0, 6) };
      }, RangeError, new RegExp(`^out must not share memory with ${name}`))),
  ];
}

function softmaxCases(backward: boolean): Case[] {
  const base = backward ? backwardBase : softmaxBase;
  const cases: Case[] = [...optionsCases(), ...dimCases(), ...temperatureCases()];
  if (backward) {
    cases.push(...f32Cases('output', base, true), ...f32Cases('gradOutput', base, true), ...outCases(['output', 'gradOutput']));
  } else {
    cases.push(
      ...f32Cases('logits', base, true),
      opt('logits row 1 all -Infinity', (o) => ({ logits: withRow(o.logits as Float32Array, COLS, 1, -Infinity) }), RangeError,
        /^logits row 1 must have at least one finite logit, got all -Infinity/),
      opt('logits row 1 all -3e38 at T 0.25', (o) => ({ logits: withRow(o.logits as Float32Array, COLS, 1, -3e38), temperature: 0.25 }),
        RangeError, /^temperature must be large enough that logits \/ temperature stay below 2\^127 = 1\.7014118346046923e\+38 in magnitude \(half of float32's range\), got 0\.25 with logits row 1$/),
      opt('rows * cols overflowing 64 bits (2^32 x 2^32, empty logits)', () => ({ rows: 2 ** 32, cols: 2 ** 32, logits: new Float32Array(0) }),
        RangeError, /rows \* cols/),
      ...outCases(['logits']),
    );
  }
  return cases;
}

const na = nativeAddon;
const isPlain = (o: unknown): o is Opts => typeof o === 'object' && o !== null && !Array.isArray(o) && !ArrayBuffer.isView(o);
/** The options object as the 17 positional arguments of the addon's distillationLossArgs. */
const positional = (o: Opts): unknown[] => DISTILL_ARG_NAMES.map((name) => o[name]);
const distillPositional = na ? (o: Opts) => (na.distillationLossArgs as unknown as AnyFn)(...positional(o)) : undefined;
const apis: Api[] = [
  {
    name: 'distillationLoss',
    sync: kd.distillationLoss as AnyFn,
    async: kd.distillationLossAsync as AnyAsyncFn,
    nativeSync: na ? (na.distillationLoss as AnyFn) : undefined,
    nativeAsync: na ? (na.distillationLossAsync as AnyAsyncFn) : undefined,
    toNative: (o) => o,
    nativePositional: distillPositional,
    base: distillBase,
    cases: distillCases(false),
  },
  {
    name: 'klDivergence',
    sync: kd.klDivergence as AnyFn,
    async: kd.klDivergenceAsync as AnyAsyncFn,
    nativeSync: na ? (na.distillationLoss as AnyFn) : undefined,
    nativeAsync: na ? (na.distillationLossAsync as AnyAsyncFn) : undefined,
    // klDivergence is the addon's distillationLoss without gradients
    toNative: (o) => (typeof o === 'object' && o !== null && !Array.isArray(o) && !ArrayBuffer.isView(o)
      ? { ...o, computeStudentGrad: false } : o),
    nativePositional: distillPositional,
    base: () => {
      const b = distillBase();
      delete b.labels;
      delete b.alpha;
      return b;
    },
    cases: distillCases(true),
  },
  ...[false, true].flatMap((log): Api[] => [
    {
      name: log ? 'logSoftmaxWithTemperature' : 'softmaxWithTemperature',
      sync: (log ? kd.logSoftmaxWithTemperature : kd.softmaxWithTemperature) as AnyFn,
      async: (log ? kd.logSoftmaxWithTemperatureAsync : kd.softmaxWithTemperatureAsync) as AnyAsyncFn,
      nativeSync: na ? (na.softmax as AnyFn) : undefined,
      nativeAsync: na ? (na.softmaxAsync as AnyAsyncFn) : undefined,
      toNative: (o) => (typeof o === 'object' && o !== null && !Array.isArray(o) && !ArrayBuffer.isView(o) ? { ...o, log } : o),
      base: softmaxBase,
      cases: softmaxCases(false),
    },
    {
      name: log ? 'logSoftmaxWithTemperatureBackward' : 'softmaxWithTemperatureBackward',
      sync: (log ? kd.logSoftmaxWithTemperatureBackward : kd.softmaxWithTemperatureBackward) as AnyFn,
      async: (log ? kd.logSoftmaxWithTemperatureBackwardAsync : kd.softmaxWithTemperatureBackwardAsync) as AnyAsyncFn,
      nativeSync: na ? (na.softmaxBackward as AnyFn) : undefined,
      nativeAsync: na ? (na.softmaxBackwardAsync as AnyAsyncFn) : undefined,
      toNative: (o) => (typeof o === 'object' && o !== null && !Array.isArray(o) && !ArrayBuffer.isView(o) ? { ...o, log } : o),
      base: backwardBase,
      cases: softmaxCases(true),
    },
  ]),
];

describe.skipIf(!na)("the addon's positional distillationLossArgs", () => {
  it('takes exactly 17 arguments, and gives the bits of the options-object entry', () => {
    const call = na!.distillationLossArgs as unknown as AnyFn;
    expectThrows(() => call(), TypeError, /^distillationLossArgs takes 17 arguments .*, got 0$/, 'no arguments');
    expectThrows(() => call(...positional(distillBase()).slice(0, 16)), TypeError, /got 16$/, '16 arguments');
    for (const extra of [{}, { reduction: 'none', computeTeacherGrad: true }, { divergence: 'jsd', beta: 0.3, labelSmoothing: 0.1 }]) {
      const o = { ...distillBase(), ...extra };
      const a = call(...positional(o)) as Record<string, unknown>, b = na!.distillationLoss(o) as Record<string, unknown>;
      expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
      for (const k of Object.keys(b)) expect(a[k], `${JSON.stringify(extra)}: ${k}`).toEqual(b[k]);
    }
  });
});

for (const api of apis) {
  describe(`${api.name} rejects bad input`, () => {
    it('accepts the base options (so each case below fails for its own reason)', async () => {
      expect(() => api.sync(api.base())).not.toThrow();
      await expect(api.async(api.base())).resolves.toBeDefined();
      if (api.nativePositional) expect(() => api.nativePositional!(api.toNative!(api.base()) as Opts)).not.toThrow();
      if (api.nativeSync) {
        expect(() => api.nativeSync!(api.toNative!(api.base()))).not.toThrow();
        await expect(api.nativeAsync!(api.toNative!(api.base()))).resolves.toBeDefined();
      }
    });

    for (const c of api.cases) {
      it(c.what, async () => {
        expectThrows(() => api.sync(...c.args(api.base())), c.cls, c.re, `${api.name}`);
        await expectRejects(() => api.async(...c.args(api.base())), c.cls, c.re, `${api.name}Async`);
        if (api.nativeSync && c.native !== false) {
          const args = () => c.args(api.base()).map((a, i) => (i === 0 ? api.toNative!(a) : a));
          expectThrows(() => api.nativeSync!(...args()), c.cls, c.re, `addon ${api.name}`);
          await expectRejects(() => api.nativeAsync!(...args()), c.cls, c.re, `addon ${api.name}Async`);
          // the positional entry, for every case whose options are a plain object (its fields become the arguments)
          const o = args()[0];
          if (api.nativePositional && isPlain(o)) expectThrows(() => api.nativePositional!(o), c.cls, c.re, `addon ${api.name}, positional`);
        }
      });
    }
  });
}

describe('the raw addon on arguments only the TypeScript layer converts', () => {
  it.skipIf(!nativeAddon)('labels must be an Int32Array (number[] and Float64Array are TypeErrors)', async () => {
    const a = nativeAddon!;
    for (const labels of [[0, 1], Float64Array.from([0, 1]), Uint32Array.from([0, 1])]) {
      const o = { ...distillBase(), labels };
      expectThrows(() => a.distillationLoss(o), TypeError, /^labels must be an Int32Array, got (Array|Float64Array|Uint32Array)/, 'addon');
      await expectRejects(() => a.distillationLossAsync(o), TypeError, /^labels must be an Int32Array/, 'addon async');
    }
  });

  it.skipIf(!nativeAddon)('the addon-only option `log` must be a boolean', async () => {
    const a = nativeAddon!;
    expectThrows(() => a.softmax({ ...softmaxBase(), log: 'yes' }), TypeError, /^log must be a boolean, got string 'yes'/, 'addon');
    await expectRejects(() => a.softmaxBackwardAsync({ ...backwardBase(), log: 1 }), TypeError, /^log must be a boolean, got number 1/, 'addon');
  });

  it.skipIf(!nativeAddon)('an array past rows * cols must not be reachable through a huge rows (no out-of-bounds read)', () => {
    const a = nativeAddon!;
    // rows * cols wraps to 0 in 64 bits; the addon must not take the empty arrays as the right size
    const o = { student: new Float32Array(0), teacher: new Float32Array(0), rows: 2 ** 30, cols: 2 ** 34, reduction: 'none' };
    expectThrows(() => a.distillationLoss(o), RangeError, /rows \* cols/, 'addon');
  });
});

const fmt = (a: unknown): string => (typeof a === 'string' ? `'${a}'` : Array.isArray(a) ? JSON.stringify(a) : String(a));

describe('setThreads and setSimd reject bad input', () => {
  const threadCases: [unknown[], ErrorClass, RegExp][] = [
    [[], TypeError, /^threads must be a number, got undefined/],
    [['3'], TypeError, /^threads must be a number, got string '3'/],
    [[null], TypeError, /^threads must be a number, got null/],
    [[{}], TypeError, /^threads must be a number, got object/],
    [[-1], RangeError, /^threads must be an integer in \[0, 256\].*got -1/],
    [[1.5], RangeError, /^threads must be an integer in \[0, 256\].*got 1\.5/],
    [[257], RangeError, /^threads must be an integer in \[0, 256\].*got 257/],
    [[NaN], RangeError, /^threads must be an integer in \[0, 256\].*got NaN/],
    [[Infinity], RangeError, /^threads must be an integer in \[0, 256\].*got Infinity/],
  ];
  for (const [args, cls, re] of threadCases) {
    it(`setThreads(${args.map(fmt).join(', ')})`, () => {
      const before = kd.backend().threads;
      expectThrows(() => (kd.setThreads as AnyFn)(...args), cls, re, 'setThreads');
      if (nativeAddon) expectThrows(() => (nativeAddon!.setThreads as AnyFn)(...args), cls, re, 'addon setThreads');
      expect(kd.backend().threads, 'a rejected setThreads changes nothing').toBe(before);
    });
  }

  const simdCases: [unknown[], ErrorClass, RegExp][] = [
    [[], TypeError, /^mode must be one of 'auto', 'generic'.*got undefined/],
    [[3], TypeError, /^mode must be one of 'auto', 'generic'.*got number 3/],
    [[null], TypeError, /^mode must be one of 'auto', 'generic'.*got null/],
    [[['auto']], TypeError, /^mode must be one of 'auto', 'generic'.*got Array/],
    [['avx512'], RangeError, /^mode must be one of 'auto', 'generic'.*got 'avx512'/],
    [['AUTO'], RangeError, /^mode must be one of 'auto', 'generic'.*got 'AUTO'/],
    [[''], RangeError, /^mode must be one of 'auto', 'generic'.*got ''/],
  ];
  for (const [args, cls, re] of simdCases) {
    it(`setSimd(${args.map(fmt).join(', ')})`, () => {
      const before = kd.backend().name;
      expectThrows(() => (kd.setSimd as AnyFn)(...args), cls, re, 'setSimd');
      if (nativeAddon) expectThrows(() => (nativeAddon!.setSimd as AnyFn)(...args), cls, re, 'addon setSimd');
      expect(kd.backend().name, 'a rejected setSimd changes nothing').toBe(before);
    });
  }
});

describe('after all those errors', () => {
  it('the process still computes finite results, sync and async, on every export', async () => {
    for (let i = 0; i < 3; i++) (globalThis as { gc?: () => void }).gc?.();
    const d = kd.distillationLoss({ ...distillBase(), computeTeacherGrad: true } as unknown as kd.DistillationLossOptions);
    expect(Number.isFinite(d.loss)).toBe(true);
    expect(d.loss).toBeGreaterThan(0);
    expect(Array.from(d.gradStudent!).every(Number.isFinite)).toBe(true);
    expect(Array.from(d.gradTeacher!).every(Number.isFinite)).toBe(true);
    const da = await kd.distillationLossAsync(distillBase() as unknown as kd.DistillationLossOptions);
    expect(da.loss).toBe(kd.distillationLoss(distillBase() as unknown as kd.DistillationLossOptions).loss);
    const kl = kd.klDivergence({ student: Float32Array.from(S), teacher: Float32Array.from(T), rows: ROWS, cols: COLS, reduction: 'none' });
    expect(Number.isFinite(kl.loss)).toBe(true);
    expect(Array.from(kl.losses!).every((v) => Number.isFinite(v) && v >= 0)).toBe(true);
    expect((await kd.klDivergenceAsync({ student: Float32Array.from(S), teacher: Float32Array.from(T), rows: ROWS, cols: COLS })).loss)
      .toBeCloseTo(kl.loss / ROWS, 6);
    const sm = kd.softmaxWithTemperature({ logits: Float32Array.from(S), rows: ROWS, cols: COLS, temperature: 2 });
    for (let r = 0; r < ROWS; r++) expect(sm[r * COLS]! + sm[r * COLS + 1]! + sm[r * COLS + 2]!).toBeCloseTo(1, 6);
    const lsm = await kd.logSoftmaxWithTemperatureAsync({ logits: Float32Array.from(S), rows: ROWS, cols: COLS, temperature: 2 });
    for (let i = 0; i < sm.length; i++) expect(Math.exp(lsm[i]!)).toBeCloseTo(sm[i]!, 6);
    const g = kd.softmaxWithTemperatureBackward({ ...backwardBase(), output: sm } as unknown as kd.SoftmaxBackwardOptions);
    const gl = await kd.logSoftmaxWithTemperatureBackwardAsync({ ...backwardBase(), output: lsm } as unknown as kd.SoftmaxBackwardOptions);
    expect(Array.from(g).every(Number.isFinite)).toBe(true);
    expect(Array.from(gl).every(Number.isFinite)).toBe(true);
    expect(kd.backend().threads).toBeGreaterThanOrEqual(1);
    if (nativeAddon) {
      const r = nativeAddon.distillationLoss({ ...distillBase(), computeTeacherGrad: true });
      expect(r.loss).toBe(d.loss);
      expect(Number.isFinite(r.loss)).toBe(true);
    }
  });
});
