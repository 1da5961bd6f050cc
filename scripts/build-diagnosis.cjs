// Why a native build failed, in one line, and what to do about it: the install's log holds the
// compilers' output, but a user needs the root cause (no cmake, no C++ compiler, no Python for
// node-gyp, no Node headers offline) and the fix without reading it.
'use strict';
const { spawnSync } = require('node:child_process');
const { readFileSync } = require('node:fs');

function commandWorks(cmd, args) {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return r.status === 0;
}

function findCxx() {
  const candidates = [process.env.CXX, 'c++', 'g++', 'clang++'].filter(Boolean);
  if (process.platform === 'win32') return 'cl.exe';  // found by node-gyp / CMake through Visual Studio, not on PATH
  return candidates.find((c) => commandWorks(c, ['--version'])) ?? null;
}

function findPython() {
  const candidates = [process.env.npm_config_python, process.env.PYTHON, 'python3', 'python'].filter(Boolean);
  return candidates.find((c) => commandWorks(c, ['--version'])) ?? null;
}

const INSTALL_CMAKE = process.platform === 'darwin' ? '`brew install cmake`'
  : process.platform === 'win32' ? 'the CMake installer from cmake.org (or `winget install Kitware.CMake`)'
  : '`sudo apt-get install cmake` (Debian/Ubuntu), `sudo dnf install cmake` (Fedora) or `pip install cmake`';
const INSTALL_CXX = process.platform === 'darwin' ? '`xcode-select --install`'
  : process.platform === 'win32' ? 'Visual Studio Build Tools with "Desktop development with C++"'
  : '`sudo apt-get install g++` (Debian/Ubuntu) or `sudo dnf install gcc-c++` (Fedora)';

/** { reason, fix, known } for a failed build; `facts` says what was tried. */
function diagnose(facts) {
  return { known: true, ...findCause(facts) };
}

function findCause(facts) {
  const rebuild = 'then run `npx kdfuse rebuild`';
  const cxx = findCxx();
  if (!cxx) {
    return {
      reason: `no C++ compiler was found (tried ${[process.env.CXX, 'c++', 'g++', 'clang++'].filter(Boolean).join(', ')})` +
        (facts.haveCmake ? '' : ' and the cmake program is not installed'),
      fix: `install a C++17 compiler with ${INSTALL_CXX}${facts.haveCmake ? '' : ` and cmake with ${INSTALL_CMAKE}`}, ${rebuild}`,
    };
  }
  if (!facts.haveCmake) {
    if (!facts.nodeGypFound) {
      return { reason: 'the cmake program is not installed and npm\'s node-gyp was not found', fix: `install cmake with ${INSTALL_CMAKE}, ${rebuild}` };
    }
    if (!findPython()) {
      return {
        reason: 'the cmake program is not installed, and the fallback build (node-gyp) needs Python 3, which was not found',
        fix: `install cmake with ${INSTALL_CMAKE} (or Python 3 for node-gyp), ${rebuild}`,
      };
    }
    if (!facts.localNodeDir && /getaddrinfo|ENOTFOUND|ECONNREFUSED|ETIMEDOUT|EAI_AGAIN|unable to download|fetch failed/i.test(readLog(facts.logFile))) {
      return {
        reason: 'the cmake program is not installed, and node-gyp could not download the Node.js headers (no network access)',
        fix: `install cmake with ${INSTALL_CMAKE} (the CMake build needs no download), ${rebuild}`,
      };
    }
    return { known: false, reason: 'the cmake program is not installed and the fallback build with node-gyp failed', fix: `install cmake with ${INSTALL_CMAKE}, ${rebuild}; the log shows node-gyp's error` };
  }
  const log = readLog(facts.logFile);
  if (/KDFUSE_CUDA=1 was set but no CUDA compiler/.test(log)) {
    return { reason: 'KDFUSE_CUDA=1 asked for the CUDA kernels but CMake found no CUDA compiler (nvcc)', fix: `install the CUDA toolkit or unset KDFUSE_CUDA, ${rebuild}` };
  }
  if (/cmake-js is not installed/.test(log)) {
    return { reason: 'the cmake-js package is missing from node_modules', fix: 'reinstall kdfuse (`npm install kdfuse`), then run `npx kdfuse rebuild`' };
  }
  return { known: false, reason: `the CMake build failed with compiler ${cxx}`, fix: `read the build log for the compiler's error; ${rebuild} after fixing it` };
}

function readLog(file) {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

module.exports = { diagnose, commandWorks };
