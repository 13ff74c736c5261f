// CIFAR-10 "binary version" (cifar-10-binary.tar.gz): data_batch_1..5.bin and test_batch.bin, each
// record 1 label byte + 3072 bytes (1024 R, 1024 G, 1024 B planes, rows of 32). Read whole into memory.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ImageSet } from './types.js';

export const CIFAR10_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
export const CIFAR10_TRAIN = [1, 2, 3, 4, 5].map((k) => `data_batch_${k}.bin`);
export const CIFAR10_TEST = 'test_batch.bin';
const REC = 1 + 3072;

export const CIFAR10_HOW_TO =
  'Fix: download cifar-10-binary.tar.gz (https://www.cs.toronto.edu/~kriz/cifar.html, or `bnlab data fetch cifar10` with network), ' +
  'unpack it and set data.path to the folder holding data_batch_1.bin..data_batch_5.bin and test_batch.bin (cifar-10-batches-bin/).';

/** The folder with the .bin files: data.path itself or its cifar-10-batches-bin/ child. */
export function locateCifar10(path: string | null): string {
  if (!path) throw new Error(`cifar10: data.path is not set.\n${CIFAR10_HOW_TO}`);
  for (const d of [resolve(path), resolve(path, 'cifar-10-batches-bin')]) {
    if ([...CIFAR10_TRAIN, CIFAR10_TEST].every((f) => existsSync(join(d, f)))) return d;
  }
  const d = resolve(path);
  const miss = [...CIFAR10_TRAIN, CIFAR10_TEST].filter((f) => !existsSync(join(d, f)));
  throw new Error(`cifar10: ${d} lacks ${miss.join(', ')}.\n${CIFAR10_HOW_TO}`);
}

export function readCifarBins(files: string[]): ImageSet {
  const bufs = files.map((f) => {
    const b = readFileSync(f);
    if (b.length === 0 || b.length % REC !== 0) throw new Error(`${f}: ${b.length} bytes is not a whole number of ${REC}-byte CIFAR-10 records (truncated or not the binary version?)`);
    return b;
  });
  const n = bufs.reduce((s, b) => s + b.length / REC, 0);
  const images = new Uint8Array(n * 3072);
  const labels = new Int32Array(n);
  let k = 0;
  for (const [fi, b] of bufs.entries()) {
    for (let r = 0; r < b.length; r += REC, k++) {
      const l = b[r];
      if (l > 9) throw new Error(`${files[fi]}: record ${r / REC} has label ${l}; CIFAR-10 labels are 0..9 (is this CIFAR-100?)`);
      labels[k] = l;
      // planar CHW -> interleaved HWC
      for (let p = 0; p < 1024; p++) for (let c = 0; c < 3; c++) images[k * 3072 + p * 3 + c] = b[r + 1 + c * 1024 + p];
    }
  }
  return { images, labels, n, height: 32, width: 32, channels: 3 };
}

export function readCifar10Dir(dir: string): { train: ImageSet; test: ImageSet } {
  return { train: readCifarBins(CIFAR10_TRAIN.map((f) => join(dir, f))), test: readCifarBins([join(dir, CIFAR10_TEST)]) };
}
