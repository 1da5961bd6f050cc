/** The fuzz tallies a child process sends its parent (fuzz/child.ts, fuzz/main.ts). */

export interface Finding {
  index: number;
  entry: string;
  errorClass: string;
  message: string;
  /** calls with the same signature (export, class, message with numbers masked) */
  count: number;
}

/** Findings with the same export, class and message (numbers masked) are one, counted. */
export function signature(f: Pick<Finding, 'entry' | 'errorClass' | 'message'>): string {
  return `${f.entry} ${f.errorClass} ${f.message.replace(/-?\d+(\.\d+)?(e[-+]?\d+)?/g, '#')}`;
}

export function record(tally: Tally, f: Omit<Finding, 'count'>): void {
  const k = signature(f);
  const old = tally.findings.find((x) => signature(x) === k);
  if (old) old.count++;
  else if (tally.findings.length < 200) tally.findings.push({ ...f, count: 1 });
}

export interface Tally {
  calls: number;
  /** outcome -> count: 'ok', 'TypeError', 'RangeError', 'GetterBomb' (the caller's own getter), or any other class */
  outcomes: Record<string, number>;
  findings: Finding[];
  lastIndex: number;
}

