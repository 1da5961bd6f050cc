/**
 * The install's side: the build script's diagnosis when there is no toolchain (a PATH with nothing
 * but node), the record it leaves and the reason the loader then gives, the CUDA decision, and the
 * `kdfuse` command's --version, unknown commands and `info --json`.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { missingAddonReason, readBuildStatus } from '../src/kernels/native.js';

const root = join(import.meta.dirname, '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
const require = createRequire(import.meta.url);
const { cudaDecision } = require('../scripts/cuda-probe.cjs') as { cudaDecision: (env: Record<string, string | undefined>) => { build: boolean; required: boolean; reason: string } };
const temps: string[] = [];
afterAll(() => { for (const d of temps) rmSync(d, { recursive: true, force: true }); });

describe('a build without a toolchain', () => {
  it('fails loudly with the root cause and the fix, records them, and the loader repeats them', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kdfuse-notoolchain-'));
    temps.push(dir);
    for (const f of ['scripts', 'package.json', 'binding.gyp', 'CMakeLists.txt']) cpSync(join(root, f), join(dir, f), { recursive: true });
    symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
    const bin = join(dir, 'bin-only-node');
    mkdirSync(bin);
    symlinkSync(process.execPath, join(bin, 'node'));
    // no cmake, no compiler, no python on PATH; CXX unset so the probe cannot find one elsewhere
    const env: Record<string, string> = { PATH: bin, HOME: dir };
    const r = spawnSync(process.execPath, [join(dir, 'scripts', 'build-addon.cjs'), '--force', '--fail'], { cwd: dir, env, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/the native addon could not be built: no C\+\+ compiler was found .* and the cmake program is not installed/);
    expect(r.stderr).toMatch(/fix: install a C\+\+17 compiler .* then run `npx kdfuse rebuild`/);
    expect(r.stderr).toContain(join(dir, 'build-info', 'kdfuse-build.log'));
    const status = readBuildStatus(dir)!;
    expect(status.ok).toBe(false);
    expect(status.build).toBe('none');
    expect(status.reason).toMatch(/no C\+\+ compiler/);
    const reason = missingAddonReason(dir);
    expect(reason).toMatch(/^the native addon was not built: no C\+\+ compiler was found/);
    expect(reason).toMatch(/Fix: install a C\+\+17 compiler/);
    // without the --fail flag (an npm install) the same failure does not fail the install
    const quiet = spawnSync(process.execPath, [join(dir, 'scripts', 'build-addon.cjs'), '--force'], { cwd: dir, env, encoding: 'utf8' });
    expect(quiet.status).toBe(0);
    // ... unless KDFUSE_REQUIRE_NATIVE=1 (CI)
    const strict = spawnSync(process.execPath, [join(dir, 'scripts', 'build-addon.cjs'), '--force'], { cwd: dir, env: { ...env, KDFUSE_REQUIRE_NATIVE: '1' }, encoding: 'utf8' });
    expect(strict.status).toBe(1);
  }, 60_000);

  it('with no build recorded, the loader says the install script did not run and how npm 11 approves it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kdfuse-noscript-'));
    temps.push(dir);
    expect(readBuildStatus(dir)).toBeNull();
    expect(missingAddonReason(dir)).toMatch(/install script did not run.*npm install-scripts approve kdfuse.*npx kdfuse rebuild/);
    mkdirSync(join(dir, 'build-info'));
    writeFileSync(join(dir, 'build-info', 'kdfuse-build.json'), JSON.stringify({ ok: false, build: 'none', reason: 'KDFUSE_SKIP_BUILD=1 was set', fix: 'unset it', log: 'x' }));
    expect(missingAddonReason(dir)).toMatch(/^the native addon was not built: KDFUSE_SKIP_BUILD=1 was set\. Fix: unset it/);
  });
});

describe('the CUDA decision', () => {
  it('KDFUSE_CUDA=1 asks (and requires), 0 refuses, anything else is off with a reason', () => {
    expect(cudaDecision({ KDFUSE_CUDA: '1' })).toMatchObject({ build: true, required: true });
    expect(cudaDecision({ KDFUSE_CUDA: 'ON' })).toMatchObject({ build: true, required: true });
    expect(cudaDecision({ KDFUSE_CUDA: 'OFF' })).toMatchObject({ build: false, reason: 'KDFUSE_CUDA=OFF' });
    expect(cudaDecision({ KDFUSE_CUDA: 'maybe' })).toMatchObject({ build: false, reason: expect.stringMatching(/not one of/) as unknown as string });
    // unset: only with a driver; nvcc alone does not count
    const auto = cudaDecision({});
    expect(auto.required).toBe(false);
    expect(auto.reason).toMatch(auto.build ? /CUDA driver was found/ : /no CUDA driver on this machine/);
  });
});

describe('npx kdfuse', () => {
  const cli = (...args: string[]) => spawnSync(process.execPath, [join(root, 'bin', 'kdfuse.cjs'), ...args], { encoding: 'utf8', cwd: dirname(root) });

  it('--version prints the package version and exits 0; --help exits 0', () => {
    const v = cli('--version');
    expect(v.status).toBe(0);
    expect(v.stdout.trim()).toBe(pkg.version);
    const h = cli('--help');
    expect(h.status).toBe(0);
    expect(h.stdout).toMatch(/info \[options\]/);
    expect(h.stdout).toMatch(/rebuild \[options\]/);
  });

  it('an unknown command or option is an error with a non-zero exit', () => {
    const u = cli('infoo');
    expect(u.status).not.toBe(0);
    expect(u.stderr).toMatch(/unknown command 'infoo'/);
    expect(u.stderr).toMatch(/Did you mean info\?/);
    const o = cli('info', '--jsno');
    expect(o.status).not.toBe(0);
    expect(o.stderr).toMatch(/unknown option '--jsno'/);
  });
});
