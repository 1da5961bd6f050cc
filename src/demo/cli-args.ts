/** The demos' command-line value parsers: commander shows an InvalidArgumentError with the option's name. */
import { InvalidArgumentError } from 'commander';

const number = (v: string, ok: (n: number) => boolean, expected: string): number => {
  const n = Number(v);
  if (!ok(n)) throw new InvalidArgumentError(`expected ${expected}`);
  return n;
};

export const positiveInt = (v: string): number => number(v, (n) => Number.isInteger(n) && n >= 1, 'an integer >= 1');
export const positive = (v: string): number => number(v, (n) => Number.isFinite(n) && n > 0, 'a number > 0');
export const nonNegative = (v: string): number => number(v, (n) => Number.isFinite(n) && n >= 0, 'a number >= 0');
export const unit = (v: string): number => number(v, (n) => Number.isFinite(n) && n >= 0 && n <= 1, 'a number in [0, 1]');
