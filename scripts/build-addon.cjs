#!/usr/bin/env node
// Builds the native addon: with cmake-js where the `cmake` program exists, else with node-gyp
// (which ships with npm) from binding.gyp. A failed build never fails `npm install` unless
// KDFUSE_REQUIRE_NATIVE=1 (CI sets it): kdfuse then runs on its reference backend and says why.
'use strict';
const { spawnSync } = require('node:child_process');
const { existsSync, rmSync } = require('node:fs');
const { join, dirname } = require('node:path');

const root = join(__dirname, '..');
const addon = join(root, 'build', 'Release', 'kdfuse.node');
const strict = process.env.KDFUSE_REQUIRE_NATIVE === '1';

function run(cmd, args) {
  console.log(`kdfuse: ${[cmd, ...args].join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: process.env });
  return r.status === 0;
}

function has(cmd) {
  const r = spawnSync(cmd, ['--version'], { stdio: 'ignore' });
  return r.status === 0;
}

function withCmakeJs() {
  let bin;
  try {
    bin = require.resolve('cmake-js/bin/cmake-js', { paths: [root] });
  } catch {
    console.log('kdfuse: cmake-js is not installed');
    return false;
  }
  const args = [bin, 'build', '-O', 'build'];
  if (process.env.KDFUSE_CUDA === 'OFF') args.push('--CDKDFUSE_CUDA=OFF');
  // The C++ tests are for the project's own checkout (npm test runs them); an installed package skips them.
  if (!existsSync(join(root, '.git'))) args.push('--CDKDFUSE_TESTS=OFF');
  return run(process.execPath, args);
}

function withNodeGyp() {
  // npm exposes its bundled node-gyp to install scripts; otherwise look next to npm itself.
  let gyp = process.env.npm_config_node_gyp;
  if (!gyp || !existsSync(gyp)) {
    const npmDir = dirname(dirname(process.execPath));
    for (const p of [join(npmDir, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')]) {
      if (existsSync(p)) gyp = p;
    }
  }
  if (!gyp || !existsSync(gyp)) {
    console.log('kdfuse: node-gyp was not found either');
    return false;
  }
  // Build against the headers of the Node that runs us when they are installed beside it, so
  // node-gyp does not try to download them (machines without internet access).
  const args = [gyp, 'rebuild'];
  const nodedir = process.env.npm_config_nodedir || dirname(dirname(process.execPath));
  if (existsSync(join(nodedir, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${nodedir}`);
  return run(process.execPath, args);
}

function main() {
  if (process.env.KDFUSE_SKIP_BUILD === '1') {
    console.log('kdfuse: KDFUSE_SKIP_BUILD=1, not building the native addon');
    return 0;
  }
  const force = process.argv.includes('--force');
  if (force) rmSync(join(root, 'build'), { recursive: true, force: true });
  let ok = false;
  if (has('cmake')) ok = withCmakeJs();
  else console.log('kdfuse: the cmake program is not installed; building the CPU kernels with node-gyp instead');
  if (!ok && !has('cmake')) ok = withNodeGyp();
  if (ok && existsSync(addon)) {
    console.log(`kdfuse: native addon built at ${addon}`);
    return 0;
  }
  const msg = 'kdfuse: the native addon could not be built; kdfuse will run on its plain-TypeScript reference ' +
    'backend (correct, much slower). Install cmake and a C++17 compiler, then run `npx kdfuse rebuild`.';
  console.warn(msg);
  return strict ? 1 : 0;
}

process.exit(main());
