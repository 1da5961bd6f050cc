/** Command-line options of `npm run bench -- [options]`. */
import { parseShape, QUICK_SHAPES, SHAPES, SUITES, type Shape, type Suite } from './workload.js';

export interface BenchOptions {
  suites: Suite[];
  shapes: Shape[];
  /** Peer ids to run (all when undefined). */
  peers: string[] | undefined;
  json: string | undefined;
  maxTimeS: number;
  maxCallS: number;
  /** Run the fused-head suite (bench/head.ts) after the kernel suites. */
  head: boolean;
  /** Run only the large fused-head entry (2048 x 1024 -> 128000, peak RSS). */
  headLarge: boolean;
}

export const USAGE = `npm run bench -- [options]

  --quick            only the two small shapes (${QUICK_SHAPES.map((s) => `${s.rows}x${s.cols}`).join(', ')})
  --filter LIST      suites to run, comma-separated: ${SUITES.map((s) => s.id).join(', ')}, head (default: all)
  --head-large       only the large fused-head entry: 2048x1024 -> 128000 classes, peak RSS of one call (tens of seconds)
  --shapes LIST      shapes to run, e.g. 256x10,512x32000 (default: ${SHAPES.map((s) => `${s.rows}x${s.cols}`).join(', ')})
  --peers LIST       peers to run, by id: kdfuse, kdfuse-out, kdfuse-dense-out (top-k suite), kdfuse-1t, kdfuse-async, kdfuse-async-borrow,
                     kdfuse-reference,
                     tfjs-cpu, tfjs-wasm, plain-js (default: all)
  --json FILE        also write the results as JSON
  --max-call-s S     skip a peer at a shape where its estimated time per call exceeds S seconds (default 10)
  --max-time S       time spent per fast measurement by the benchmark package, in seconds (default 0.5)
  --help`;

export function parseArgs(argv: readonly string[]): BenchOptions | 'help' {
  const o: BenchOptions = { suites: [...SUITES], shapes: [...SHAPES], peers: undefined, json: undefined, maxTimeS: 0.5, maxCallS: 10, head: true, headLarge: false };
  const list = (v: string) => v.split(',').map((x) => x.trim()).filter(Boolean);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new RangeError(`${flag} needs a value`);
      return v;
    };
    const seconds = (): number => {
      const v = Number(value());
      if (!(v > 0)) throw new RangeError(`${flag} must be a positive number of seconds`);
      return v;
    };
    switch (flag) {
      case '--help': case '-h': return 'help';
      case '--quick': o.shapes = [...QUICK_SHAPES]; break;
      case '--head-large': o.headLarge = true; break;
      case '--filter': {
        const ids = list(value());
        o.head = ids.includes('head');
        const unknown = ids.filter((id) => id !== 'head' && !SUITES.some((s) => s.id === id));
        if (unknown.length) throw new RangeError(`unknown suite ${unknown.join(', ')}; suites are ${SUITES.map((s) => s.id).join(', ')}`);
        o.suites = SUITES.filter((s) => ids.includes(s.id));
        break;
      }
      case '--shapes': o.shapes = list(value()).map(parseShape).sort((a, b) => a.rows * a.cols - b.rows * b.cols); break;
      case '--peers': o.peers = list(value()); break;
      case '--json': o.json = value(); break;
      case '--max-call-s': o.maxCallS = seconds(); break;
      case '--max-time': o.maxTimeS = seconds(); break;
      default: throw new RangeError(`unknown option '${arg}'\n\n${USAGE}`);
    }
  }
  return o;
}
