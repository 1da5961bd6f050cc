#!/usr/bin/env bash
# Packs kdfuse, installs the tarball into an empty project (timed, as a consumer would: no
# KDFUSE_CUDA, so CUDA only with a driver), imports it with ESM and CJS (both must get the native
# backend and the same numbers as the reference formula), and type-checks consumer files
# (test/consumer) against the shipped declarations under TypeScript 5 and 7, strict, without
# skipLibCheck and without Node's types.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$root"
tarball="$(npm pack --silent --pack-destination "$work" | tail -n 1)"
cd "$work"
npm init -y >/dev/null
# @tensorflow/tfjs: the optional peer that kdfuse/tfjs, kdfuse/train and kdfuse/explain run on
npm install --no-audit --no-fund @tensorflow/tfjs@^4.22.0 ts5@npm:typescript@^5.9 ts7@npm:typescript@^7 >/dev/null
start=$(date +%s%N)
env -u KDFUSE_CUDA KDFUSE_REQUIRE_NATIVE=1 npm install --no-audit --no-fund "$work/$tarball" >/dev/null
echo "pack-check: npm install of the tarball took $(( ($(date +%s%N) - start) / 1000000 )) ms; $(node -p "const s=require('./node_modules/kdfuse/build-info/kdfuse-build.json'); s.build+', '+s.seconds+' s of build, CUDA '+(s.cuda.built?'built':'not built: '+s.cuda.reason)")"
# the CLI as a user runs it: info --json names the version, backend, addon and how it was built
npx --no-install kdfuse info --json > info.json
node -e '
const i = require("./info.json"), want = require("./node_modules/kdfuse/package.json").version;
const keys = ["version", "backend", "simd", "threads", "addonPath", "build", "buildLog", "cuda"];
const bad = keys.filter((k) => !(k in i));
if (bad.length || i.version !== want || i.build !== "cmake-js" || !i.addonPath || !i.backend.startsWith("native")) { console.error("kdfuse info --json:", i); process.exit(1); }
console.log(`pack-check: npx kdfuse info --json: ${i.backend}, built by ${i.build}, SIMD ${i.simd}`);'
if npx --no-install kdfuse infoo >/dev/null 2>&1; then echo "pack-check: an unknown command exited 0"; exit 1; fi
cat > check.mjs <<'JS'
import * as kd from 'kdfuse';
const s = new Float32Array([1, 2, 3, 4]), t = new Float32Array([4, 3, 2, 1]);
const r = kd.distillationLoss({ student: s, teacher: t, rows: 1, cols: 4, temperature: 2 });
console.log(JSON.stringify({ esm: kd.backend().name, loss: r.loss }));
JS
cat > check.cjs <<'JS'
const kd = require('kdfuse');
const s = new Float32Array([1, 2, 3, 4]), t = new Float32Array([4, 3, 2, 1]);
const r = kd.distillationLoss({ student: s, teacher: t, rows: 1, cols: 4, temperature: 2 });
console.log(JSON.stringify({ cjs: kd.backend().name, loss: r.loss }));
JS
# the subpath exports, with their own dependencies (pngjs) resolved from the installed package
cat > subpaths.mjs <<'JS'
import * as tf from '@tensorflow/tfjs';
import { distillationLoss } from 'kdfuse/tfjs';
import { Distiller } from 'kdfuse/train';
import { attributionHeatmap, integratedGradients } from 'kdfuse/explain';
const png = attributionHeatmap(new Float32Array([1, -1, 0, 0.5]), { shape: [2, 2] });
const loss = distillationLoss(tf.tensor2d([[1, 2]]), tf.tensor2d([[2, 1]]), undefined, { temperature: 1 }).dataSync()[0];
const ok = png.subarray(1, 4).toString() === 'PNG' && typeof Distiller === 'function' && typeof integratedGradients === 'function' && loss > 0;
console.log(JSON.stringify({ esmSubpaths: ok }));
JS
cat > subpaths.cjs <<'JS'
const { attributionHeatmap } = require('kdfuse/explain');
const { Distiller } = require('kdfuse/train');
const { distillationLoss } = require('kdfuse/tfjs');
const png = attributionHeatmap(new Float32Array([1, -1, 0, 0.5]), { shape: [2, 2] });
console.log(JSON.stringify({ cjsSubpaths: png.subarray(1, 4).toString() === 'PNG' && typeof Distiller === 'function' && typeof distillationLoss === 'function' }));
JS
for f in subpaths.mjs subpaths.cjs; do
  out="$(node "$f" 2>/dev/null | tail -n 1)"; echo "$out"
  case "$out" in *true*) ;; *) echo "pack-check: $f failed"; node "$f"; exit 1 ;; esac
done
# the declarations: errors inside tfjs's own .d.ts files (they need lib dom and do not pass strict
# checks themselves) are tfjs's; any error in kdfuse's declarations or the consumer files fails
cp "$root"/test/consumer/* .
for ts in ts5 ts7; do
  for cfg in tsconfig.core.json tsconfig.json; do
    out="$(node "node_modules/$ts/bin/tsc" -p "$cfg" 2>&1 || true)"
    ours="$(printf '%s\n' "$out" | grep -E '^[^ ]+\([0-9]+,[0-9]+\): error' | grep -v -E '^node_modules/(@tensorflow|@webgpu|@types|@typescript|typescript|ts5|ts7)/' || true)"
    theirs="$(printf '%s\n' "$out" | grep -cE '^[^ ]+\([0-9]+,[0-9]+\): error' || true)"
    if [ -n "$ours" ]; then echo "pack-check: $ts $cfg: type errors in kdfuse's declarations or the consumer:"; echo "$ours"; exit 1; fi
    echo "pack-check: $(node "node_modules/$ts/bin/tsc" --version), $cfg: no errors in kdfuse's declarations or the consumer ($theirs inside tfjs / lib.dom ignored)"
  done
done
# the README's complete programs, as written, in this ESM project (the package's README is the one packed)
node -e '
const fs = require("fs"), readme = fs.readFileSync("node_modules/kdfuse/README.md", "utf8");
for (const [heading, file] of [["## Ten lines", "readme-ten-lines.mjs"], ["## Use it in your project", "readme-first.mjs"]]) {
  const i = readme.indexOf(heading); if (i < 0) { console.error("README lacks " + heading); process.exit(1); }
  const start = readme.indexOf("\n```js\n", i) >= 0 && (readme.indexOf("\n```js\n", i) < readme.indexOf("\n```ts\n", i) || readme.indexOf("\n```ts\n", i) < 0)
    ? readme.indexOf("\n```js\n", i) + 7 : readme.indexOf("\n```ts\n", i) + 7;
  fs.writeFileSync(file, readme.slice(start, readme.indexOf("```", start)));
}'
for f in readme-ten-lines.mjs readme-first.mjs; do
  if ! out="$(node "$f" 2>&1)"; then echo "pack-check: the README program $f failed:"; echo "$out"; exit 1; fi
  echo "pack-check: README program $f ran: $(printf '%s' "$out" | grep -v -e '^=*$' -e 'Hi, looks like' | tr -s ' \n' ' ' | cut -c1-160)"
done
esm="$(node check.mjs)"; cjs="$(node check.cjs)"
echo "$esm"; echo "$cjs"
# T^2 KL(softmax(t/2) || softmax(s/2)) for these rows, computed in float64 by hand: 2.338305953847457
node -e '
const [e, c] = process.argv.slice(1).map(JSON.parse);
const want = 2.338305953847457;
for (const r of [e, c]) if (Math.abs(r.loss - want) > 1e-5 * want) { console.error("wrong loss", r); process.exit(1); }
if (!e.esm.startsWith("native") || !c.cjs.startsWith("native")) { console.error("not native", e, c); process.exit(1); }
console.log("pack-check: 4 runtime checks passed, 0 failed");
' "$esm" "$cjs"
