#!/usr/bin/env node
// The kdfuse command: `kdfuse info [--json]` says which backend runs the kernels and how the native
// addon was built; `kdfuse rebuild` builds it again and exits non-zero when that fails;
// `kdfuse topk-convert in.jsonl out.parquet` converts a vLLM prompt_logprobs dump (docs/served-teacher.md). Arguments
// are parsed by commander (a dependency already), which gives --help, --version and the errors for
// unknown commands and options.
'use strict';
const { spawnSync } = require('node:child_process');
const { existsSync, readFileSync } = require('node:fs');
const { join } = require('node:path');
const { Command } = require('commander');

const root = join(__dirname, '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const addonPath = join(root, 'build', 'Release', 'kdfuse.node');
const statusPath = join(root, 'build-info', 'kdfuse-build.json');

function readStatus() {
  try {
    return JSON.parse(readFileSync(statusPath, 'utf8'));
  } catch {
    return null;
  }
}

/** How a loaded addon was built when the install left no record (a build from before the record existed). */
function builtBy() {
  if (existsSync(join(root, 'build', 'CMakeCache.txt'))) return 'cmake-js';
  if (existsSync(join(root, 'build', 'config.gypi'))) return 'node-gyp';
  return 'none';
}

/** The `info --json` object: { version, backend, simd, threads, addonPath, build, buildLog, cuda }. */
function collectInfo() {
  let kd;
  try {
    kd = require('..');
  } catch (e) {
    // only in a kdfuse checkout before `npm run build`: a published package ships dist/
    console.error(`kdfuse: cannot load kdfuse's JavaScript (${e.message.split('\n')[0]}); in a checkout, run \`npm run build\` first`);
    process.exit(1);
  }
  const b = kd.backend();
  const status = readStatus();
  const native = b.name !== 'reference';
  return {
    version: pkg.version,
    backend: b.name,
    reason: b.reason,
    simd: b.name === 'native-avx2' ? 'avx2' : b.name === 'native-generic' ? 'generic' : native ? 'unknown' : 'none',
    threads: b.threads,
    addonPath: native && existsSync(addonPath) ? addonPath : null,
    build: status && status.ok ? status.build : native ? builtBy() : 'none',
    buildLog: status ? status.log : null,
    buildSeconds: status ? status.seconds : null,
    buildFix: status && !status.ok ? status.fix : null,
    cuda: { ...b.cuda, compiledAtInstall: status && status.cuda ? status.cuda : null },
  };
}

function printInfo(i) {
  const lines = [
    `kdfuse ${i.version}`,
    `backend:   ${i.backend} (${i.reason})`,
    `SIMD:      ${i.simd}`,
    `threads:   ${i.threads}`,
    `addon:     ${i.addonPath ?? 'not loaded'}`,
    `built by:  ${i.build}${i.buildSeconds !== null && i.build !== 'none' ? ` in ${i.buildSeconds} s` : ''}`,
    `build log: ${i.buildLog ?? 'none (the install script did not run)'}`,
    `CUDA:      ${i.cuda.built ? 'built' : 'not built'}${i.cuda.compiledAtInstall ? ` (${i.cuda.compiledAtInstall.reason})` : ''}; ` +
      `${i.cuda.available ? `device ${i.cuda.device ?? ''}` : 'no device in use'}`,
  ];
  if (i.buildFix) lines.push(`fix:       ${i.buildFix}`);
  console.log(lines.join('\n'));
}

const program = new Command('kdfuse')
  .description('Fused knowledge-distillation kernels for TensorFlow.js on Node: inspect or rebuild the native addon')
  .version(pkg.version, '-v, --version')
  .showHelpAfterError()
  .showSuggestionAfterError();

program.command('info')
  .description('show the backend in use and how the native addon was built')
  .option('--json', 'print { version, backend, simd, threads, addonPath, build, buildLog, cuda } as JSON')
  .action((opts) => {
    const i = collectInfo();
    if (opts.json) console.log(JSON.stringify(i, null, 2));
    else printInfo(i);
  });

program.command('rebuild')
  .description('build the native addon again (exits non-zero when it cannot be built); see docs/install.md for the environment variables')
  .option('--verbose', "show the compilers' output as well as logging it")
  .action((opts) => {
    const args = [join(root, 'scripts', 'build-addon.cjs'), '--force', '--fail'];
    if (opts.verbose) args.push('--verbose');
    const r = spawnSync(process.execPath, args, { stdio: 'inherit' });
    process.exit(r.status ?? 1);
  });

program.command('topk-convert')
  .description('convert a vLLM prompt_logprobs dump (JSON lines) to a top-k teacher file; `kdfuse topk-convert --help` for its options')
  .helpOption(false)
  .allowUnknownOption()
  .allowExcessArguments()
  .argument('[args...]')
  .action(async () => {
    // its own parser (src/train/topk-cli.ts), in a build entry that does not load tfjs
    process.exitCode = await require(join(root, 'dist', 'topk-cli.cjs')).topkConvertCli(process.argv.slice(3));
  });

program.parseAsync().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
