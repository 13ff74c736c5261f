#!/bin/sh
# Builds bnlab's own WebAssembly kernels (src/backend/native/*.c) into committed .wasm files.
# Needs clang + wasm-ld (Debian: apt-get install -y clang lld; tested with clang 14).
# Two variants of each module: *.shared.wasm imports a shared memory (the threaded tfjs build),
# *.wasm imports a plain memory (the single-threaded SIMD build). The modules own no memory:
# they import tfjs-backend-wasm's and work on its tensors in place (see bn.c).
set -eu
cd "$(dirname "$0")/../src/backend/native"
CLANG=${CLANG:-clang}
FLAGS="--target=wasm32 -O3 -msimd128 -mbulk-memory -nostdlib -ffreestanding -fno-builtin -Wall -Werror"
LDFLAGS="-Wl,--no-entry -Wl,--import-memory -Wl,--strip-all -Wl,-z,stack-size=0 -Wl,--initial-memory=65536 -Wl,--max-memory=4294967296"
for src in *.c; do
  name=${src%.c}
  $CLANG $FLAGS $LDFLAGS -o "$name.wasm" "$src"
  $CLANG $FLAGS -matomics $LDFLAGS -Wl,--shared-memory -o "$name.shared.wasm" "$src"
  echo "built $name.wasm $name.shared.wasm"
done
