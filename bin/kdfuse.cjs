#!/usr/bin/env node
// `npx kdfuse rebuild` rebuilds the native addon; `npx kdfuse info` shows the backend in use;
// `npx kdfuse topk-convert in.jsonl out.parquet` converts a vLLM prompt_logprobs dump (docs/served-teacher.md).
'use strict';
const { spawnSync } = require('node:child_process');
const { join } = require('node:path');

const cmd = process.argv[2];
if (cmd === 'rebuild') {
  const r = spawnSync(process.execPath, [join(__dirname, '..', 'scripts', 'build-addon.cjs'), '--force'], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
} else if (cmd === 'info') {
  const kd = require('..');
  console.log(JSON.stringify(kd.backend(), null, 2));
} else if (cmd === 'topk-convert') {
  require('../dist/topk-cli.cjs').topkConvertCli(process.argv.slice(3)).then(
    (code) => { process.exitCode = code; },
    (e) => { console.error(e); process.exitCode = 1; },
  );
} else {
  console.log('usage: kdfuse rebuild        rebuild the native addon\n       kdfuse info           show the backend in use\n       kdfuse topk-convert   convert a vLLM prompt_logprobs dump to a top-k teacher file (--help for more)');
  process.exit(cmd === undefined || cmd === '--help' || cmd === '-h' ? 0 : 2);
}
