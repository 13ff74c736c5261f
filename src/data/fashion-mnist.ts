// Fashion-MNIST (Zalando Research, MIT): finding the full IDX files on this machine and reading a
// directory of them. The shipped mini subset uses the same file names, so one reader serves both.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { readIdx } from './idx.js';
import type { ImageSet } from './types.js';

export const FASHION_MNIST_CLASSES = [
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
];

export const FASHION_MNIST_FILES = {
  trainImages: 'train-images-idx3-ubyte',
  trainLabels: 'train-labels-idx1-ubyte',
  testImages: 't10k-images-idx3-ubyte',
  testLabels: 't10k-labels-idx1-ubyte',
} as const;

export const ENV_VAR = 'BNLAB_FASHION_MNIST';
// Where Debian's dataset-fashion-mnist puts the files (dpkg -L), plus likely local variants.
export const KNOWN_DIRS = [
  '/usr/share/datasets/fashion-mnist',
  '/usr/local/share/datasets/fashion-mnist',
  '/usr/share/fashion-mnist',
];

/** The path of one IDX file in dir, gzipped or not, or null. */
function idxFile(dir: string, base: string): string | null {
  for (const name of [`${base}.gz`, base]) {
    const p = join(dir, name);
    if (existsSync(p)) return p;
  }
  return null;
}

function missingFiles(dir: string): string[] {
  return Object.values(FASHION_MNIST_FILES).filter((b) => idxFile(dir, b) === null);
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

// MNIST (digits) uses the very same file names, so a scan only trusts directories named *fashion*.
function scanShare(root = '/usr/share'): string[] {
  const found: string[] = [];
  const list = (d: string) => {
    try {
      return readdirSync(d).map((n) => join(d, n)).filter(isDir);
    } catch {
      return [];
    }
  };
  for (const a of list(root)) {
    for (const d of [a, ...list(a)]) {
      if (/fashion/i.test(d.slice(root.length)) && missingFiles(d).length === 0) found.push(d);
    }
  }
  return found;
}

const HOW_TO_FIX =
  'Fix: `apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or put the four IDX files ' +
  `(${Object.values(FASHION_MNIST_FILES).map((b) => b + '.gz').join(', ')}) in a directory and pass ` +
  `\`--set data.path=DIR\` (or set ${ENV_VAR}=DIR). data.name=fashion-mnist-mini needs no download.`;

/**
 * The directory holding the full Fashion-MNIST. An explicit dir (or the env variable) is final:
 * falling back silently would train on different data than the user asked for.
 */
export function locateFashionMnist(dir?: string | null, env: NodeJS.ProcessEnv = process.env): string {
  const explicit = dir ? { dir, why: 'data.path' } : env[ENV_VAR] ? { dir: env[ENV_VAR]!, why: `env ${ENV_VAR}` } : null;
  if (explicit) {
    const d = resolve(explicit.dir);
    if (!isDir(d)) throw new Error(`Fashion-MNIST directory ${d} (from ${explicit.why}) does not exist.\n${HOW_TO_FIX}`);
    const miss = missingFiles(d);
    if (miss.length) {
      throw new Error(`Fashion-MNIST directory ${d} (from ${explicit.why}) lacks ${miss.map((m) => m + '[.gz]').join(', ')}.\n${HOW_TO_FIX}`);
    }
    return d;
  }
  for (const d of KNOWN_DIRS) if (isDir(d) && missingFiles(d).length === 0) return d;
  const scanned = scanShare();
  if (scanned.length) return scanned[0];
  throw new Error(
    'Full Fashion-MNIST not found. Looked in: data.path (not set); ' +
      `env ${ENV_VAR} (not set); ${KNOWN_DIRS.join(', ')}; directories named *fashion* in /usr/share/*/.\n${HOW_TO_FIX}`,
  );
}

function readSplit(dir: string, imagesBase: string, labelsBase: string): ImageSet {
  const ip = idxFile(dir, imagesBase);
  const lp = idxFile(dir, labelsBase);
  if (!ip || !lp) throw new Error(`Fashion-MNIST directory ${dir} lacks ${ip ? labelsBase : imagesBase}[.gz].\n${HOW_TO_FIX}`);
  const img = readIdx(ip);
  const lab = readIdx(lp);
  if (img.dims.length !== 3) throw new Error(`${ip}: expected dims [n, height, width], got [${img.dims.join(', ')}]`);
  if (lab.dims.length !== 1) throw new Error(`${lp}: expected dims [n], got [${lab.dims.join(', ')}]`);
  const [n, height, width] = img.dims;
  if (lab.dims[0] !== n) throw new Error(`${lp}: ${lab.dims[0]} labels for ${n} images in ${ip}`);
  const labels = Int32Array.from(lab.data);
  const bad = labels.findIndex((l) => l >= FASHION_MNIST_CLASSES.length);
  if (bad >= 0) throw new Error(`${lp}: label ${labels[bad]} at index ${bad} is not a class 0..9`);
  return { images: img.data, labels, n, height, width, channels: 1 };
}

/** Reads train (60k in the full set) and test (10k) from a directory of the four IDX files. */
export function readFashionMnistDir(dir: string): { train: ImageSet; test: ImageSet } {
  const f = FASHION_MNIST_FILES;
  return { train: readSplit(dir, f.trainImages, f.trainLabels), test: readSplit(dir, f.testImages, f.testLabels) };
}
