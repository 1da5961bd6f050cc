#!/usr/bin/env node
// Runs the C++ tests (native/test, native/cuda) with ctest from the addon's CMake build folder.
'use strict';
const { spawnSync } = require('node:child_process');
const { existsSync } = require('node:fs');
const { join } = require('node:path');

const build = join(__dirname, '..', 'build');
if (!existsSync(join(build, 'CTestTestfile.cmake'))) {
  console.error('kdfuse: no CMake build with tests in build/ (was the addon built with node-gyp?); run `npx kdfuse rebuild` with cmake installed');
  process.exit(1);
}
const r = spawnSync('ctest', ['--test-dir', build, '--output-on-failure'], { stdio: 'inherit' });
process.exit(r.status ?? 1);
