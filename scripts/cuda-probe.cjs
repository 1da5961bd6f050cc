// Whether the install builds the CUDA kernels. Compiling them takes longer than the rest of the
// addon together, so they are built only when asked for (KDFUSE_CUDA=1) or when this machine has a
// CUDA driver, i.e. could run them. A CUDA compiler alone (nvcc on a machine without a GPU, as in
// many CI images) is not a reason: the kernels could never run there.
'use strict';
const { existsSync } = require('node:fs');
const { spawnSync } = require('node:child_process');

const ON = /^(1|on|true|yes)$/i;
const OFF = /^(0|off|false|no)$/i;

/** Where a CUDA driver (libcuda) is, or null. */
function findCudaDriver() {
  if (process.platform === 'linux') {
    // the kernel module announces itself here (also inside containers given the GPU)
    if (existsSync('/proc/driver/nvidia/version')) return '/proc/driver/nvidia/version';
    const ld = spawnSync('ldconfig', ['-p'], { encoding: 'utf8' });
    if (ld.status === 0 && /\blibcuda\.so\.1\b/.test(ld.stdout)) return 'libcuda.so.1 (ldconfig)';
    for (const dir of ['/usr/lib/x86_64-linux-gnu', '/usr/lib64', '/usr/lib/aarch64-linux-gnu', '/usr/lib/wsl/lib']) {
      if (existsSync(`${dir}/libcuda.so.1`)) return `${dir}/libcuda.so.1`;
    }
    return null;
  }
  if (process.platform === 'win32') {
    const sys = `${process.env.SystemRoot || 'C:\\Windows'}\\System32\\nvcuda.dll`;
    return existsSync(sys) ? sys : null;
  }
  return null;  // macOS has had no CUDA driver since 10.13
}

/**
 * { build, required, reason }: build the CUDA kernels? `required` (KDFUSE_CUDA=1) turns a missing
 * CUDA compiler into a build error instead of a CPU-only build.
 */
function cudaDecision(env = process.env) {
  const v = env.KDFUSE_CUDA;
  if (v !== undefined && v !== '' && OFF.test(v)) return { build: false, required: false, reason: `KDFUSE_CUDA=${v}` };
  if (v !== undefined && ON.test(v)) return { build: true, required: true, reason: `KDFUSE_CUDA=${v}` };
  if (v !== undefined && v !== '') {
    return { build: false, required: false, reason: `KDFUSE_CUDA=${v} is not one of 1/on/true or 0/off/false; treated as off` };
  }
  const driver = findCudaDriver();
  return driver
    ? { build: true, required: false, reason: `a CUDA driver was found (${driver})` }
    : { build: false, required: false, reason: 'no CUDA driver on this machine; KDFUSE_CUDA=1 builds the CUDA kernels anyway' };
}

module.exports = { cudaDecision, findCudaDriver };
