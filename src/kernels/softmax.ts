/** Softmax and log-softmax with temperature over the rows of `[rows, cols]`, forward and backward. */
import { native, runsInline } from './backend.js';
import * as reference from './reference.js';
import { checkSoftmaxArgs, type SoftmaxArgs } from './validate.js';
import type { SoftmaxBackwardOptions, SoftmaxOptions } from './types.js';

function forwardArgs(a: SoftmaxArgs, log: boolean): object {
  return { logits: a.x, rows: a.rows, cols: a.cols, temperature: a.temperature, log, out: a.out };
}

function backwardArgs(a: SoftmaxArgs, log: boolean): object {
  return { output: a.x, gradOutput: a.dy, rows: a.rows, cols: a.cols, temperature: a.temperature, log, out: a.out };
}

function forward(options: SoftmaxOptions, log: boolean): Float32Array {
  const a = checkSoftmaxArgs(options, false, log ? 'logSoftmaxWithTemperature' : 'softmaxWithTemperature');
  const n = native();
  return n ? n.softmax(forwardArgs(a, log)) : reference.softmaxForward(a, log);
}

async function forwardAsync(options: SoftmaxOptions, log: boolean): Promise<Float32Array> {
  const a = checkSoftmaxArgs(options, false, log ? 'logSoftmaxWithTemperature' : 'softmaxWithTemperature');
  const n = native();
  if (!n) return reference.softmaxForward(a, log);
  // small calls compute at once (see INLINE_ASYNC_MAX_ELEMENTS)
  return runsInline(a.rows, a.cols) && !a.out ? n.softmax(forwardArgs(a, log)) : n.softmaxAsync(forwardArgs(a, log));
}

function backward(options: SoftmaxBackwardOptions, log: boolean): Float32Array {
  const a = checkSoftmaxArgs(options, true, log ? 'logSoftmaxWithTemperatureBackward' : 'softmaxWithTemperatureBackward');
  const n = native();
  return n ? n.softmaxBackward(backwardArgs(a, log)) : reference.softmaxBackward(a, log);
}

async function backwardAsync(options: SoftmaxBackwardOptions, log: boolean): Promise<Float32Array> {
  const a = checkSoftmaxArgs(options, true, log ? 'logSoftmaxWithTemperatureBackward' : 'softmaxWithTemperatureBackward');
  const n = native();
  if (!n) return reference.softmaxBackward(a, log);
  return runsInline(a.rows, a.cols) && !a.out ? n.softmaxBackward(backwardArgs(a, log)) : n.softmaxBackwardAsync(backwardArgs(a, log));
}

/** `softmax(logits / T)` per row. */
export const softmaxWithTemperature = (o: SoftmaxOptions): Float32Array => forward(o, false);
/** `log(softmax(logits / T))` per row. */
export const logSoftmaxWithTemperature = (o: SoftmaxOptions): Float32Array => forward(o, true);
/** Gradient with respect to the logits, given the softmax output `y` and dL/dy: `y (dy - sum(dy y)) / T`. */
export const softmaxWithTemperatureBackward = (o: SoftmaxBackwardOptions): Float32Array => backward(o, false);
/** Gradient with respect to the logits, given the log-softmax output and dL/dy: `(dy - softmax sum(dy)) / T`. */
export const logSoftmaxWithTemperatureBackward = (o: SoftmaxBackwardOptions): Float32Array => backward(o, true);

export const softmaxWithTemperatureAsync = (o: SoftmaxOptions): Promise<Float32Array> => forwardAsync(o, false);
export const logSoftmaxWithTemperatureAsync = (o: SoftmaxOptions): Promise<Float32Array> => forwardAsync(o, true);
export const softmaxWithTemperatureBackwardAsync = (o: SoftmaxBackwardOptions): Promise<Float32Array> => backwardAsync(o, false);
export const logSoftmaxWithTemperatureBackwardAsync = (o: SoftmaxBackwardOptions): Promise<Float32Array> => backwardAsync(o, true);
