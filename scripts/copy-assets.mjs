// After tsc: the files beside the sources that the compiled code loads by relative URL (bnlab's
// BN kernels as wasm, the JPEG decoding worker) copied into dist/, then dist/.build-stamp, whose
// time bin/bnlab.js compares with src/ to know the build is current.
import { copyFileSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
for (const rel of readdirSync(join(root, 'src'), { recursive: true })) {
  if (!/\.(wasm|mjs)$/.test(rel)) continue;
  mkdirSync(dirname(join(root, 'dist', rel)), { recursive: true });
  copyFileSync(join(root, 'src', rel), join(root, 'dist', rel));
}
writeFileSync(join(root, 'dist', '.build-stamp'), `${new Date().toISOString()}\n`);
