import { existsSync, statSync } from 'node:fs';
// The datasets bnlab trains on, in one in-memory form: uint8 NHWC images plus int labels.
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FASHION_MNIST_CLASSES, locateFashionMnist, readFashionMnistDir } from './fashion-mnist.js';
import { CIFAR10_CLASSES, locateCifar10, readCifar10Dir } from './cifar10.js';
import { corrupt, type Corruption } from './corrupt.js';
import { RRC_DEFAULT } from './augment.js';
import { folderSplit, IMAGENET_MEAN, IMAGENET_STD, loadIndex } from './imagefolder.js';
import { chooseDecoder } from './jpeg-native.js';
import { hashSeed, mulberry32 } from '../util/rng.js';
import { makeBatch } from './loader.js';
import type { Dataset, ImageSet, MemorySplit } from './types.js';

export type { Dataset, ImageSet, MemorySplit, Split } from './types.js';

/**
 * What loadDataset reads: which dataset, where, how much of it, how to augment and decode it. The
 * config's data section (config/schema's DataConfig) is one; tests write smaller ones by hand.
 */
export interface DatasetSpec {
  name: 'fashion-mnist-mini' | 'fashion-mnist' | 'mnist' | 'cifar10' | 'imagefolder' | 'synthetic';
  path: string | null; // directory for full datasets (null = auto-locate)
  train_limit: number | null; // first K of a fixed class-balanced order (null = all)
  val_limit: number | null;
  augment: { pad_crop: number; flip: boolean; scale?: [number, number]; ratio?: [number, number] }; // used by the loaders
  synthetic: { classes: number; train: number; val: number; size: number; channels: number; seed: number };
  // Optional here so hand-written configs (tests) may omit them; the schema fills every one.
  val_labels?: string | null;
  image_size?: number;
  workers?: number;
  decoder?: 'auto' | 'native' | 'sharp';
  shrink_on_load?: boolean;
  prefetch?: number;
  on_error?: 'skip' | 'fail';
  cache_dir?: string | null;
  corruption?: Corruption | null;
}

export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const MINI_DIR = 'data/fashion-mnist-mini';

// The balanced order must not depend on the run seed: a limit names one fixed subset for all runs.
const LIMIT_SEED = 0x11a117;

/**
 * Indices in a fixed class-balanced order: each class shuffled, then dealt round-robin, so any
 * prefix has class counts within 1 of each other (while classes last).
 */
export function balancedOrder(labels: Int32Array, numClasses: number): Int32Array {
  const byClass: number[][] = Array.from({ length: numClasses }, () => []);
  labels.forEach((l, i) => byClass[l].push(i));
  for (const [c, idx] of byClass.entries()) {
    const rng = mulberry32(hashSeed(LIMIT_SEED, c));
    for (let i = idx.length - 1; i > 0; i--) {
      const j = Math.floor(rng() * (i + 1));
      [idx[i], idx[j]] = [idx[j], idx[i]];
    }
  }
  const out = new Int32Array(labels.length);
  let k = 0;
  for (let round = 0; k < labels.length; round++) {
    for (const idx of byClass) if (round < idx.length) out[k++] = idx[round];
  }
  return out;
}

export function subset(set: ImageSet, indices: ArrayLike<number>): ImageSet {
  const size = set.height * set.width * set.channels;
  const images = new Uint8Array(indices.length * size);
  const labels = new Int32Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    images.set(set.images.subarray(indices[i] * size, (indices[i] + 1) * size), i * size);
    labels[i] = set.labels[indices[i]];
  }
  return { ...set, images, labels, n: indices.length };
}

/** The first `limit` images of the balanced order, kept in their original order (so limits nest). */
export function limitSet(set: ImageSet, limit: number | null, numClasses: number): ImageSet {
  if (limit === null || limit >= set.n) return set;
  if (!(Number.isInteger(limit) && limit >= 1)) throw new Error(`data limit must be a positive integer or null, got ${limit}`);
  const chosen = balancedOrder(set.labels, numClasses).slice(0, limit).sort();
  return subset(set, chosen);
}

export function channelStats(set: ImageSet): { mean: number[]; std: number[] } {
  const C = set.channels;
  const sum = new Float64Array(C);
  const sq = new Float64Array(C);
  const img = set.images;
  for (let i = 0; i < img.length; i++) {
    const v = img[i] / 255;
    sum[i % C] += v;
    sq[i % C] += v * v;
  }
  const count = img.length / C;
  const mean = Array.from(sum, (s) => s / count);
  // Floor the std so a constant channel cannot divide by zero downstream.
  const std = Array.from(sq, (s, c) => Math.max(Math.sqrt(Math.max(s / count - mean[c] ** 2, 0)), 1e-6));
  return { mean, std };
}

/**
 * Oriented gratings (one orientation and frequency per class) with random phase, contrast, per-channel
 * tint and Gaussian noise: a small CNN learns it in a few epochs, a linear model cannot shortcut it.
 */
export function syntheticSet(cfg: DatasetSpec['synthetic'], split: 'train' | 'val'): ImageSet {
  const { classes: K, size: S, channels: C, seed } = cfg;
  const n = split === 'train' ? cfg.train : cfg.val;
  const images = new Uint8Array(n * S * S * C);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const rng = mulberry32(hashSeed(seed, split === 'train' ? 1 : 2, i));
    const k = i % K;
    labels[i] = k;
    const theta = (Math.PI * k) / K;
    const freq = (2 * Math.PI * (1.5 + (k % 3) * 0.75)) / S;
    const phase = rng() * 2 * Math.PI;
    const contrast = 0.6 + 0.4 * rng();
    const gauss = () => Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
    const [ct, st] = [Math.cos(theta), Math.sin(theta)];
    for (let r = 0; r < S; r++) {
      for (let col = 0; col < S; col++) {
        const wave = Math.cos(freq * (col * ct + r * st) + phase);
        for (let c = 0; c < C; c++) {
          const tint = 0.75 + 0.25 * Math.cos((2 * Math.PI * k) / K + 2.1 * c);
          const v = 127.5 + 90 * (contrast * tint * wave + 0.3 * gauss());
          images[((i * S + r) * S + col) * C + c] = Math.min(255, Math.max(0, Math.round(v)));
        }
      }
    }
  }
  return { images, labels, n, height: S, width: S, channels: C };
}

/** Bind augmentation and normalization to an in-memory image set. */
export function memorySplit(set: ImageSet, aug: DatasetSpec['augment'], norm: { mean: number[]; std: number[] }): MemorySplit {
  return {
    ...set,
    load: async (indices, o) => makeBatch(set, indices, { augment: o.augment, pad_crop: aug.pad_crop, flip: aug.flip, seed: o.seed, epoch: o.epoch, ...norm }),
  };
}

/** A corrupted copy of an in-memory set (whole images: their eval crop is the identity). */
async function corruptSet(set: ImageSet, c: Corruption | null | undefined): Promise<ImageSet> {
  if (!c) return set;
  const size = set.height * set.width * set.channels;
  const images = new Uint8Array(set.images.length);
  for (let i = 0; i < set.n; i++) {
    images.set(await corrupt(set.images.subarray(i * size, (i + 1) * size), set.width, set.height, set.channels, c, i), i * size);
  }
  return { ...set, images };
}

/** An ImageNet-layout folder: splits decode files on demand (see imagefolder.ts). */
async function loadImageFolder(cfg: DatasetSpec, quiet: boolean): Promise<Dataset> {
  if (!cfg.path) throw new Error('imagefolder: data.path is not set; set it to the folder holding train/<class>/ and val/ (e.g. --set data.path=/datasets/imagenet)');
  const fo = { valLabels: cfg.val_labels ?? null, cacheDir: cfg.cache_dir ?? null, quiet };
  const { index, file } = await loadIndex(cfg.path, fo);
  const K = index.classes.length;
  const limit = (labels: number[], lim: number | null) => (lim === null || lim >= labels.length ? null : balancedOrder(Int32Array.from(labels), K).slice(0, lim).sort());
  const so = {
    size: cfg.image_size ?? 224,
    workers: cfg.workers ?? 0,
    decoder: chooseDecoder(cfg.decoder ?? 'auto'),
    shrinkOnLoad: cfg.shrink_on_load ?? true,
    onError: cfg.on_error ?? 'skip',
    corruption: cfg.corruption ?? null,
    rrc: { scale: cfg.augment.scale ?? RRC_DEFAULT.scale, ratio: cfg.augment.ratio ?? RRC_DEFAULT.ratio },
    flip: cfg.augment.flip,
    mean: IMAGENET_MEAN,
    std: IMAGENET_STD,
  };
  return {
    name: cfg.name,
    numClasses: K,
    classNames: index.classes,
    train: folderSplit(index.root, index.train, limit(index.train.labels, cfg.train_limit), so),
    val: folderSplit(index.root, index.val, limit(index.val.labels, cfg.val_limit), so),
    mean: IMAGENET_MEAN,
    std: IMAGENET_STD,
    source: `${index.root} (index ${file})`,
  };
}

/**
 * Why the data a config names cannot be found (null: it can), from cheap checks of data.path
 * alone: `bnlab train` asks before it starts a backend or creates a run folder.
 */
export function dataSourceProblem(cfg: DatasetSpec): string | null {
  try {
    if (cfg.name === 'imagefolder' || cfg.name === 'mnist') {
      const what = cfg.name === 'imagefolder' ? 'the folder holding train/<class>/ and val/ (e.g. --set data.path=/datasets/imagenet)' : "the folder with the four MNIST IDX files (e.g. from Debian's dataset-mnist package)";
      if (!cfg.path) return `data.name ${cfg.name} needs data.path: set it to ${what}`;
      if (!existsSync(cfg.path) || !statSync(cfg.path).isDirectory()) return `data.path ${cfg.path} is not a folder; set it to ${what}`;
    } else if (cfg.name === 'cifar10') locateCifar10(cfg.path);
    else if (cfg.name === 'fashion-mnist') locateFashionMnist(cfg.path);
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

export async function loadDataset(cfg: DatasetSpec, opts: { root?: string; quiet?: boolean } = {}): Promise<Dataset> {
  if (cfg.name === 'imagefolder') return loadImageFolder(cfg, !!opts.quiet);
  let train: ImageSet, val: ImageSet, classNames: string[], source: string;
  if (cfg.name === 'synthetic') {
    const s = cfg.synthetic;
    if (s.classes < 2 || s.train < 1 || s.val < 1 || s.size < 1 || s.channels < 1) {
      throw new Error(`synthetic dataset: need classes >= 2 and positive sizes, got ${JSON.stringify(s)}`);
    }
    train = syntheticSet(s, 'train');
    val = syntheticSet(s, 'val');
    classNames = Array.from({ length: s.classes }, (_, k) => `class${k}`);
    source = `synthetic(seed=${s.seed})`;
  } else if (cfg.name === 'fashion-mnist' || cfg.name === 'fashion-mnist-mini') {
    source = cfg.name === 'fashion-mnist' ? locateFashionMnist(cfg.path) : resolve(opts.root ?? PACKAGE_ROOT, MINI_DIR);
    ({ train, test: val } = readFashionMnistDir(source));
    classNames = FASHION_MNIST_CLASSES;
  } else if (cfg.name === 'mnist') {
    // MNIST uses the very same IDX file names as Fashion-MNIST.
    if (!cfg.path) throw new Error('mnist: data.path is not set; point it at the folder with the four MNIST IDX files (train-images-idx3-ubyte[.gz], ...), e.g. from Debian\'s dataset-mnist package');
    source = resolve(cfg.path);
    ({ train, test: val } = readFashionMnistDir(source));
    classNames = Array.from({ length: 10 }, (_, k) => String(k));
  } else if (cfg.name === 'cifar10') {
    source = locateCifar10(cfg.path);
    ({ train, test: val } = readCifar10Dir(source));
    classNames = CIFAR10_CLASSES;
  } else {
    throw new Error(`unknown dataset '${(cfg as { name: string }).name}' (fashion-mnist-mini, fashion-mnist, mnist, cifar10, imagefolder, synthetic)`);
  }
  const numClasses = classNames.length;
  train = limitSet(train, cfg.train_limit, numClasses);
  val = limitSet(val, cfg.val_limit, numClasses);
  // Statistics of the clean training set: a corrupted copy is normalized as the model expects clean data.
  const norm = channelStats(train);
  train = await corruptSet(train, cfg.corruption);
  val = await corruptSet(val, cfg.corruption);
  return {
    name: cfg.name,
    numClasses,
    classNames: [...classNames],
    train: memorySplit(train, cfg.augment, norm),
    val: memorySplit(val, cfg.augment, norm),
    ...norm,
    source,
  };
}
