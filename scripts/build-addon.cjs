#!/usr/bin/env node
// Builds the native addon: with cmake-js where the `cmake` program exists, else with node-gyp
// (which ships with npm) from binding.gyp. npm hides an install script's output and fails the whole
// install when the script fails, so this script never fails `npm install` (unless
// KDFUSE_REQUIRE_NATIVE=1, as CI sets): it writes the compilers' output to build-info/kdfuse-build.log and
// what it decided and why to build-info/kdfuse-build.json, which `npx kdfuse info` and the first-load
// warning read. Every environment variable it reads is documented in docs/install.md.
//
//   --force    start from an empty build/ folder (`npx kdfuse rebuild`)
//   --verbose  show the compilers' output on the terminal as well as in the log
//   --fail     exit 1 when the addon cannot be built (`npx kdfuse rebuild`, `npm test`)
//   --if-missing  do nothing when the addon exists (`npm run bench`)
'use strict';
const { spawnSync } = require('node:child_process');
const { existsSync, mkdirSync, rmSync, writeFileSync, openSync, closeSync, readFileSync, appendFileSync } = require('node:fs');
const { join, dirname } = require('node:path');
const { cudaDecision } = require('./cuda-probe.cjs');
const { diagnose, commandWorks } = require('./build-diagnosis.cjs');

const root = join(__dirname, '..');
const buildDir = join(root, 'build');
const addon = join(buildDir, 'Release', 'kdfuse.node');
// beside build/, not in it: node-gyp's rebuild deletes build/ while its output is being logged
const infoDir = join(root, 'build-info');
const logFile = join(infoDir, 'kdfuse-build.log');
const statusFile = join(infoDir, 'kdfuse-build.json');
const env = process.env;
const strict = env.KDFUSE_REQUIRE_NATIVE === '1';
const verbose = process.argv.includes('--verbose') || env.KDFUSE_BUILD_VERBOSE === '1';
const on = (v) => v !== undefined && /^(1|on|true|yes)$/i.test(v);

/** Runs a build command with its output appended to the log (and shown too with --verbose). */
function run(cmd, args, extraEnv = {}) {
  appendFileSync(logFile, `\n$ ${[cmd, ...args].join(' ')}\n`);
  if (verbose) console.log(`kdfuse: ${[cmd, ...args].join(' ')}`);
  const fd = verbose ? null : openSync(logFile, 'a');
  try {
    const r = spawnSync(cmd, args, {
      cwd: root,
      stdio: verbose ? 'inherit' : ['ignore', fd, fd],
      env: { ...env, ...extraEnv },
    });
    return r.status === 0;
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

/** KDFUSE_BLAS=auto|on|off (default off): whether the fused head links a BLAS found at build time. */
function blasSetting() {
  const v = String(env.KDFUSE_BLAS ?? 'off').toLowerCase();
  return v === 'on' || v === '1' ? 'ON' : v === 'auto' ? 'AUTO' : 'OFF';
}

function withCmakeJs(cuda, tests) {
  let bin;
  try {
    bin = require.resolve('cmake-js/bin/cmake-js', { paths: [root] });
  } catch {
    appendFileSync(logFile, 'cmake-js is not installed\n');
    return false;
  }
  const defs = ['-O', 'build', `--CDKDFUSE_CUDA=${cuda.build ? 'ON' : 'OFF'}`, `--CDKDFUSE_TESTS=${tests ? 'ON' : 'OFF'}`,
    // asked for explicitly: a missing CUDA compiler is an error, not a quiet CPU-only build
    `--CDKDFUSE_CUDA_REQUIRED=${cuda.build && cuda.required ? 'ON' : 'OFF'}`,
    // the fused head's GEMM: kdfuse's own unless KDFUSE_BLAS=auto|on asks for a BLAS (docs/fused-head.md)
    `--CDKDFUSE_BLAS=${blasSetting()}`];
  // cmake-js builds with one job unless told; the build has a dozen independent files
  const jobs = env.CMAKE_BUILD_PARALLEL_LEVEL || String(Math.max(1, require('node:os').availableParallelism?.() ?? 2));
  // configure first, always: `cmake-js build` alone reuses an existing build folder's options, so a
  // build for `npm test` (tests on) or with KDFUSE_CUDA changed would keep the old ones. Reconfiguring
  // an existing folder keeps its compiled objects.
  return run(process.execPath, [bin, 'configure', ...defs]) && run(process.execPath, [bin, 'build', ...defs], { CMAKE_BUILD_PARALLEL_LEVEL: jobs });
}

/** npm's bundled node-gyp: npm tells install scripts where it is; otherwise look beside npm itself. */
function findNodeGyp() {
  let gyp = env.npm_config_node_gyp;
  if (gyp && existsSync(gyp)) return gyp;
  const npmDir = dirname(dirname(process.execPath));
  gyp = join(npmDir, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  return existsSync(gyp) ? gyp : null;
}

/** The folder of this Node's own headers when they are installed beside it (no download needed). */
function localNodeDir() {
  const nodedir = env.npm_config_nodedir || dirname(dirname(process.execPath));
  return existsSync(join(nodedir, 'include', 'node', 'node_api.h')) ? nodedir : null;
}

function withNodeGyp() {
  const gyp = findNodeGyp();
  if (!gyp) {
    appendFileSync(logFile, 'node-gyp was not found\n');
    return false;
  }
  const args = [gyp, 'rebuild', `--jobs=${Math.max(1, require('node:os').availableParallelism?.() ?? 2)}`];
  const nodedir = localNodeDir();
  if (nodedir) args.push(`--nodedir=${nodedir}`);
  return run(process.execPath, args);
}

function writeStatus(status) {
  mkdirSync(infoDir, { recursive: true });
  writeFileSync(statusFile, JSON.stringify(status, null, 2) + '\n');
}

function main() {
  // `npm run bench`: build only when there is no addon yet (the benchmark needs it, not a rebuild)
  if (process.argv.includes('--if-missing') && existsSync(addon)) return 0;
  const started = Date.now();
  const force = process.argv.includes('--force');
  if (force) rmSync(buildDir, { recursive: true, force: true });
  mkdirSync(infoDir, { recursive: true });
  writeFileSync(logFile, `kdfuse native build, ${new Date().toISOString()}, node ${process.version}, ${process.platform}-${process.arch}\n`);

  if (env.KDFUSE_SKIP_BUILD === '1') {
    writeStatus({ ok: false, build: 'none', reason: 'KDFUSE_SKIP_BUILD=1 was set, so the install did not build the native addon',
      fix: 'unset KDFUSE_SKIP_BUILD and run `npx kdfuse rebuild`', log: logFile, cuda: null, tests: false, seconds: 0 });
    console.log('kdfuse: KDFUSE_SKIP_BUILD=1, not building the native addon (kdfuse runs on its reference backend)');
    return 0;
  }

  const cuda = cudaDecision(env);
  // The C++ tests and benches are for working on kdfuse itself: `npm test` asks for them (scripts/ctest.cjs).
  const tests = on(env.KDFUSE_TESTS);
  const haveCmake = commandWorks('cmake', ['--version']);
  let build = 'none';
  let ok = false;
  if (haveCmake) {
    build = 'cmake-js';
    ok = withCmakeJs(cuda, tests) && existsSync(addon);
  }
  if (!ok && !haveCmake) {
    build = 'node-gyp';
    ok = withNodeGyp() && existsSync(addon);
  }
  const seconds = Math.round((Date.now() - started) / 100) / 10;
  const cudaBuilt = ok && build === 'cmake-js' && cuda.build && builtWithCuda();
  if (ok) {
    const what = `${build}${build === 'node-gyp' ? ' (cmake not found; CPU kernels only)' : ''}`;
    const cudaLine = cudaBuilt ? 'with CUDA' : `without CUDA (${cuda.build ? 'no CUDA compiler found' : cuda.reason})`;
    writeStatus({ ok: true, build, reason: 'built', fix: null, log: logFile, addon, seconds, tests,
      cuda: { requested: cuda.build, built: cudaBuilt, reason: cudaBuilt ? cuda.reason : cuda.build ? 'no CUDA compiler found' : cuda.reason } });
    console.log(`kdfuse: native addon built with ${what}, ${cudaLine}, in ${seconds} s (log: ${logFile})`);
    return 0;
  }
  const d = diagnose({ haveCmake, build, logFile, nodeGypFound: findNodeGyp() !== null, localNodeDir: localNodeDir() !== null });
  writeStatus({ ok: false, build: 'none', attempted: build, reason: d.reason, fix: d.fix, log: logFile, seconds, tests,
    cuda: { requested: cuda.build, built: false, reason: cuda.reason } });
  console.warn(`kdfuse: the native addon could not be built: ${d.reason}.\n` +
    `kdfuse: it will run on its plain-TypeScript reference backend (correct, much slower).\n` +
    `kdfuse: fix: ${d.fix}\n` +
    `kdfuse: build log: ${logFile}`);
  // an unrecognised failure: the compiler's last words are the best clue
  if (!verbose && !d.known) {
    const tail = readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-12);
    console.warn(tail.map((l) => `  | ${l}`).join('\n'));
  }
  return strict || process.argv.includes('--fail') ? 1 : 0;
}

/** Whether CMake configured the CUDA library (the addon then links it). */
function builtWithCuda() {
  try {
    return /KDFUSE_HAVE_CUDA:INTERNAL=ON|KDFUSE_CUDA_BUILT:INTERNAL=ON/.test(readFileSync(join(buildDir, 'CMakeCache.txt'), 'utf8'));
  } catch {
    return false;
  }
}

process.exit(main());
