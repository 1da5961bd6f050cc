/**
 * What the run was measured on, for the header and the JSON: the CPU as /proc/cpuinfo names it (the
 * family tells Zen 3 from Zen 5, which os.cpus() does not), its vector extensions, and the commit
 * of the code measured. A figure is only comparable with one from the same kind of machine.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';

export interface Machine {
  cpu: string;
  /** "AMD family 25 model 1" and the like, where /proc/cpuinfo says (Linux); else undefined. */
  cpuFamily: string | undefined;
  /** The vector extensions kdfuse can use or that matter for reading the figures. */
  simd: string[];
  cores: number;
  memoryGiB: number;
  node: string;
  platform: string;
  /** `git rev-parse HEAD` of the checkout, with "+changes" when the tree differs from it; undefined outside git. */
  commit: string | undefined;
}

function cpuinfo(): Map<string, string> {
  const m = new Map<string, string>();
  try {
    // the first processor's block
    for (const line of readFileSync('/proc/cpuinfo', 'utf8').split('\n\n')[0]!.split('\n')) {
      const i = line.indexOf(':');
      if (i > 0) m.set(line.slice(0, i).trim(), line.slice(i + 1).trim());
    }
  } catch {
    // not Linux: the family stays unknown
  }
  return m;
}

function gitCommit(): string | undefined {
  try {
    const opts = { encoding: 'utf8' as const, stdio: ['ignore', 'pipe', 'ignore'] as ['ignore', 'pipe', 'ignore'] };
    const head = execFileSync('git', ['rev-parse', 'HEAD'], opts).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], opts).trim() !== '';
    return dirty ? `${head}+changes` : head;
  } catch {
    return undefined;
  }
}

export function machine(): Machine {
  const info = cpuinfo();
  const c = cpus();
  const flags = new Set((info.get('flags') ?? '').split(/\s+/));
  const vendor = info.get('vendor_id')?.replace(/^Authentic|^Genuine/, '');
  return {
    cpu: info.get('model name') ?? c[0]?.model ?? 'unknown',
    cpuFamily: info.has('cpu family') ? `${vendor ?? ''} family ${info.get('cpu family')} model ${info.get('model')}`.trim() : undefined,
    simd: ['avx2', 'fma', 'avx512f'].filter((f) => flags.has(f)),
    cores: c.length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    commit: gitCommit(),
  };
}
