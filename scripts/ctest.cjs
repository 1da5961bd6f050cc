#!/usr/bin/env node
// `npm test`'s last step: builds the C++ tests (an installed package does not: they are for working on
// kdfuse itself) into the addon's CMake build folder, then runs them (native/test, native/cuda) with
// ctest. CI sets KDFUSE_CUDA=1 so the CUDA kernels and their CPU-emulator test are compiled and run
// on a machine without a GPU; the build log is build-info/kdfuse-build.log.
'use strict';
const { spawnSync } = require('node:child_process');
const { existsSync } = require('node:fs');
const { join } = require('node:path');

const root = join(__dirname, '..');
const build = join(root, 'build');
const made = spawnSync(process.execPath, [join(__dirname, 'build-addon.cjs'), '--fail'], {
  stdio: 'inherit',
  env: { ...process.env, KDFUSE_TESTS: '1' },
});
if (made.status !== 0) {
  console.error('kdfuse: the C++ tests could not be built (see the reason above)');
  process.exit(1);
}
if (!existsSync(join(build, 'CTestTestfile.cmake'))) {
  console.error('kdfuse: no CMake build with tests in build/ (see build-info/kdfuse-build.log; without cmake the addon is built by node-gyp, which builds no tests)');
  process.exit(1);
}
const r = spawnSync('ctest', ['--test-dir', build, '--output-on-failure'], { stdio: 'inherit' });
process.exit(r.status ?? 1);
