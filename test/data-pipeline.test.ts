// The file-backed pipeline: ImageNet-layout folders (index, labels, cache), the paper's
// augmentation geometry, determinism across decoding threads, corrupt files, CIFAR-10 and MNIST
// readers on files in the real formats, and the ImageNet-C corruptions against their definitions.
import { mkdtempSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evalPlan, randomResizedCropBox, trainPlan } from '../src/data/augment.js';
import { corrupt, SEVERITY } from '../src/data/corrupt.js';
import { loadDataset, type DatasetSpec, type Dataset } from '../src/data/dataset.js';
import { loadIndex, readValLabels } from '../src/data/imagefolder.js';
import { writeIdx } from '../src/data/idx.js';
import { Rng } from '../src/util/rng.js';
import { className, makeJpegTree } from '../scripts/make-jpeg-tree.js';

const tmp = mkdtempSync(join(tmpdir(), 'bnlab-pipe-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const cache = join(tmp, 'cache');

const cfg = (over: Partial<DatasetSpec> = {}): DatasetSpec => ({
  name: 'imagefolder',
  path: join(tmp, 'tree'),
  train_limit: null,
  val_limit: null,
  augment: { pad_crop: 4, flip: true },
  synthetic: { classes: 2, train: 1, val: 1, size: 8, channels: 1, seed: 0 },
  image_size: 32,
  workers: 2,
  cache_dir: cache,
  on_error: 'skip',
  corruption: null,
  ...over,
});

let tree: { root: string; corrupt: string[] };
beforeAll(async () => {
  // 3 classes x 6 train (varied sizes) + 3 corrupt files; class-folder val; and a flat-val copy.
  tree = await makeJpegTree(join(tmp, 'tree'), { classes: 3, train: 6, val: 2, width: 120, height: 90, corrupt: 3, sizes: 'varied' });
  await makeJpegTree(join(tmp, 'flat'), { classes: 3, train: 2, val: 2, width: 80, height: 60, flatVal: true });
}, 20_000);

describe('imagefolder', () => {
  it('indexes classes from sorted folders and labels every image', async () => {
    const ds = await loadDataset(cfg());
    expect(ds.classNames).toEqual([0, 1, 2].map(className));
    expect([ds.train.n, ds.val.n]).toEqual([3 * 6 + 3, 3 * 2]);
    expect(Array.from(ds.val.labels)).toEqual([0, 0, 1, 1, 2, 2]);
    expect(ds.mean).toEqual([0.485, 0.456, 0.406]);
  });

  it('reads a flat val/ with a label file, and the label-file formats', async () => {
    const ds = await loadDataset(cfg({ path: join(tmp, 'flat'), val_labels: 'val_labels.txt' }));
    expect(Array.from(ds.val.labels)).toEqual([0, 0, 1, 1, 2, 2]);
    const names = ['a.JPEG', 'b.JPEG'];
    const lf = join(tmp, 'labels.txt');
    writeFileSync(lf, 'ImageId,PredictionString\nb,y 1 2 3 4\na,x 5 6 7 8\n');
    expect(readValLabels(lf, names, ['x', 'y'])).toEqual([0, 1]);
    writeFileSync(lf, '1\n0\n');
    expect(readValLabels(lf, names, ['x', 'y'])).toEqual([1, 0]);
    writeFileSync(lf, 'a.JPEG 7\nb.JPEG 0\n');
    expect(() => readValLabels(lf, names, ['x', 'y'])).toThrow(/label '7'/);
    await expect(loadDataset(cfg({ path: join(tmp, 'flat'), val_labels: null, cache_dir: join(tmp, 'c2') }))).rejects.toThrow(/data.val_labels/);
  });

  it('gives the same batches whatever the number of decoding threads or request order', async () => {
    const idx = [5, 0, 20, 3, 11, 19, 7];
    const o = { augment: true, seed: 3, epoch: 1 };
    const a = await (await loadDataset(cfg({ workers: 1 }))).train.load(idx, o);
    const ds3 = await loadDataset(cfg({ workers: 3 }));
    const [b] = await Promise.all([ds3.train.load(idx, o), ds3.train.load([...idx].reverse(), o)]);
    expect(b.y).toEqual(a.y);
    expect(b.x).toEqual(a.x);
    const c = await ds3.train.load(idx, { ...o, epoch: 2 });
    expect(c.x).not.toEqual(a.x); // a new epoch draws new crops
  });

  it('replaces corrupt files by the next readable image and reports them; on_error fail names the file', async () => {
    const ds = await loadDataset(cfg());
    const all = Array.from({ length: ds.train.n }, (_, i) => i);
    const b = await ds.train.load(all, { augment: false, seed: 0, epoch: 0 });
    expect(b.n).toBe(ds.train.n);
    const failures = ds.train.failures!();
    expect(failures.map((f) => f.file).sort()).toEqual([...tree.corrupt].sort());
    expect(failures.every((f) => f.error.length > 0)).toBe(true);
    const dsFail = await loadDataset(cfg({ on_error: 'fail' }));
    await expect(dsFail.train.load(all, { augment: false, seed: 0, epoch: 0 })).rejects.toThrow(/corrupt_\d\.JPEG/);
  });

  it('rebuilds the cached index when the tree changes', async () => {
    const c = cfg({ path: join(tmp, 'flat'), val_labels: 'val_labels.txt', cache_dir: join(tmp, 'c3') });
    expect((await loadIndex(c.path!, { valLabels: c.val_labels, cacheDir: c.cache_dir })).cached).toBe(false);
    expect((await loadIndex(c.path!, { valLabels: c.val_labels, cacheDir: c.cache_dir })).cached).toBe(true);
    const dir = join(tmp, 'flat', 'train', className(1));
    const src = readdirSync(dir)[0];
    writeFileSync(join(dir, 'extra.JPEG'), await sharp({ create: { width: 40, height: 30, channels: 3, background: '#808080' } }).jpeg().toBuffer());
    utimesSync(dir, new Date(), new Date(Date.now() + 5000)); // coarse-mtime filesystems
    const r = await loadIndex(c.path!, { valLabels: c.val_labels, cacheDir: c.cache_dir });
    expect(r.cached).toBe(false);
    expect(r.index.train.files.some((f) => f.endsWith('extra.JPEG'))).toBe(true);
    expect(src).toBeTruthy();
    // Overwritten in place (no directory changes): its entry is re-read, the rest kept.
    const dirMtime = statSync(dir).mtime;
    writeFileSync(join(dir, 'extra.JPEG'), await sharp({ create: { width: 24, height: 18, channels: 3, background: '#404040' } }).jpeg().toBuffer());
    utimesSync(dir, dirMtime, dirMtime);
    const k = r.index.train.files.findIndex((f) => f.endsWith('extra.JPEG'));
    const r2 = await loadIndex(c.path!, { valLabels: c.val_labels, cacheDir: c.cache_dir });
    expect(r2.cached).toBe(false);
    expect([r2.index.train.widths[k], r2.index.train.heights[k]]).toEqual([24, 18]);
    expect(r2.index.train.files).toEqual(r.index.train.files);
    const r3 = await loadIndex(c.path!, { valLabels: c.val_labels, cacheDir: c.cache_dir });
    expect(r3.cached).toBe(true); // the refreshed index was saved
    expect([r3.index.train.widths[k], r3.index.train.heights[k]]).toEqual([24, 18]);
    const ds = await loadDataset(cfg({ path: join(tmp, 'flat'), val_labels: 'val_labels.txt', cache_dir: join(tmp, 'c3') }));
    const b = await ds.train.load([k], { augment: true, seed: 0, epoch: 0 });
    expect(ds.train.failures!()).toEqual([]);
    expect(b.n).toBe(1);
  });

  it('normalizes with ImageNet mean/std and flips by mirroring columns', async () => {
    // A left-dark/right-bright image: the flip must mirror it exactly.
    const px = Buffer.alloc(64 * 48 * 3);
    for (let y = 0; y < 48; y++) for (let x = 0; x < 64; x++) px.fill(x < 32 ? 20 : 230, (y * 64 + x) * 3, (y * 64 + x) * 3 + 3);
    const root = join(tmp, 'lr');
    for (const k of ['a', 'b']) for (const s of ['train', 'val']) {
      const d = join(root, s, k);
      (await import('node:fs')).mkdirSync(d, { recursive: true });
      writeFileSync(join(d, 'x.png'), await sharp(px, { raw: { width: 64, height: 48, channels: 3 } }).png().toBuffer());
    }
    const ds = await loadDataset(cfg({ path: root, image_size: 16, augment: { pad_crop: 0, flip: true, scale: [1, 1], ratio: [4 / 3, 4 / 3] } }));
    const flips = [0, 1, 2, 3, 4, 5, 6, 7].map((e) => trainPlan(64, 48, 16, new Rng(0, e, 0), { scale: [1, 1], ratio: [4 / 3, 4 / 3] }).flip);
    expect(flips).toContain(true);
    expect(flips).toContain(false);
    for (let e = 0; e < 8; e++) {
      const b = await ds.train.load([0], { augment: true, seed: 0, epoch: e });
      const left = b.x[(8 * 16 + 0) * 3];
      const right = b.x[(8 * 16 + 15) * 3];
      expect(left).toBeCloseTo(((flips[e] ? 230 : 20) / 255 - 0.485) / 0.229, 1);
      expect(right).toBeCloseTo(((flips[e] ? 20 : 230) / 255 - 0.485) / 0.229, 1);
    }
  });
});

describe('augmentation geometry', () => {
  it('RandomResizedCrop boxes lie inside the image with area and aspect in range', () => {
    for (const [W, H] of [[500, 375], [375, 500], [64, 64], [1000, 120]]) {
      for (let i = 0; i < 400; i++) {
        const b = randomResizedCropBox(W, H, new Rng(1, i));
        expect(b.left >= 0 && b.top >= 0 && b.left + b.width <= W && b.top + b.height <= H).toBe(true);
        const fallback = b.left === Math.floor((W - b.width) / 2) && b.top === Math.floor((H - b.height) / 2) && (b.width === W || b.height === H);
        if (!fallback) {
          // rounding to whole pixels moves area and ratio slightly past the bounds
          expect((b.width * b.height) / (W * H)).toBeGreaterThan(0.08 * 0.9);
          expect(b.width / b.height).toBeGreaterThan((3 / 4) * 0.9);
          expect(b.width / b.height).toBeLessThan((4 / 3) * 1.1);
        }
      }
    }
  });

  it('falls back to a ratio-clamped center crop when 10 attempts fail', () => {
    // A 1000x10 strip cannot hold any box with aspect <= 4/3 of area >= 8%.
    expect(randomResizedCropBox(1000, 10, new Rng(0))).toEqual({ left: 493, top: 0, width: 13, height: 10 });
  });

  it('evaluation resizes the short side to size*256/224 and center-crops', () => {
    expect(evalPlan(500, 375, 224)).toEqual({ extract: null, resize: { width: 341, height: 256 }, extract2: { left: 58, top: 16, width: 224, height: 224 }, flip: false });
    expect(evalPlan(375, 500, 224).resize).toEqual({ width: 256, height: 341 });
  });
});

describe('corruptions (ImageNet-C definitions)', () => {
  const W = 40, H = 30;
  const img = Uint8Array.from({ length: W * H * 3 }, (_, i) => 60 + ((i * 7919) % 140));
  const chanMean = (a: Uint8Array, c: number) => a.filter((_, i) => i % 3 === c).reduce((s, v) => s + v, 0) / (W * H);

  it.each([1, 3, 5])('contrast severity %i scales deviations from the per-channel mean by c', async (s) => {
    const out = await corrupt(img, W, H, 3, { type: 'contrast', severity: s }, 0);
    const c = SEVERITY.contrast[s - 1];
    for (let i = 0; i < img.length; i += 97) {
      const m = chanMean(img, i % 3);
      expect(Math.abs(out[i] - ((img[i] - m) * c + m))).toBeLessThan(1); // truncation to uint8
    }
  });

  it('gaussian noise has the specified std, is seeded by the image index only', async () => {
    const flat = new Uint8Array(100 * 100 * 3).fill(128);
    const out = await corrupt(flat, 100, 100, 3, { type: 'gaussian_noise', severity: 2 }, 5);
    const d = Array.from(out, (v) => (v - 128) / 255);
    const mean = d.reduce((a, b) => a + b, 0) / d.length;
    const sd = Math.sqrt(d.reduce((a, b) => a + (b - mean) ** 2, 0) / d.length);
    expect(sd).toBeCloseTo(0.12, 2);
    expect(await corrupt(flat, 100, 100, 3, { type: 'gaussian_noise', severity: 2 }, 5)).toEqual(out);
    expect(await corrupt(flat, 100, 100, 3, { type: 'gaussian_noise', severity: 2 }, 6)).not.toEqual(out);
  });

  it('jpeg compression changes the image, keeps its shape, and degrades with severity', async () => {
    // A smooth image with mild texture: JPEG error grows as the quality drops.
    const smooth = Uint8Array.from({ length: 64 * 64 * 3 }, (_, i) => 60 + ((i / 3) % 64) * 2 + (i % 3) * 20 + ((i * 31) % 9));
    const err = async (s: number) => {
      const out = await corrupt(smooth, 64, 64, 3, { type: 'jpeg_compression', severity: s }, 0);
      expect(out.length).toBe(smooth.length);
      return out.reduce((a, v, i) => a + Math.abs(v - smooth[i]), 0) / smooth.length;
    };
    const [e1, e5] = [await err(1), await err(5)];
    expect(e1).toBeGreaterThan(1);
    expect(e5).toBeGreaterThan(e1);
  });

  it('jpeg compression works on one-channel (Fashion-MNIST) images', async () => {
    const grey = Uint8Array.from({ length: 28 * 28 }, (_, i) => 40 + ((i * 7) % 180));
    const out = await corrupt(grey, 28, 28, 1, { type: 'jpeg_compression', severity: 5 }, 0);
    expect(out.length).toBe(grey.length);
    expect(out.reduce((a, v, i) => a + Math.abs(v - grey[i]), 0) / grey.length).toBeGreaterThan(1);
  });

  it('brightness adds c to the HSV value', async () => {
    const px = Uint8Array.from([100, 50, 0, 0, 0, 0]);
    const out = await corrupt(px, 2, 1, 3, { type: 'brightness', severity: 1 }, 0);
    const v2 = (100 / 255 + 0.1) * 255;
    expect(Array.from(out)).toEqual([Math.floor(v2), Math.floor(v2 / 2), 0, 25, 25, 25]);
  });

  it('is applied by the loader as a derived dataset', async () => {
    const clean = (await loadDataset(cfg())).val;
    const low = (await loadDataset(cfg({ corruption: { type: 'contrast', severity: 5 } }))).val;
    const o = { augment: false, seed: 0, epoch: 0 };
    // std of the red channel of image 0: contrast severity 5 scales deviations by 0.05
    const sd = (b: { x: Float32Array }) => {
      const r = b.x.subarray(0, 32 * 32 * 3).filter((_, i) => i % 3 === 0);
      const m = r.reduce((a, v) => a + v, 0) / r.length;
      return Math.sqrt(r.reduce((a, v) => a + (v - m) ** 2, 0) / r.length);
    };
    const ratio = sd(await low.load([0], o)) / sd(await clean.load([0], o));
    expect(ratio).toBeGreaterThan(0.03);
    expect(ratio).toBeLessThan(0.08);
  });
});

describe('CIFAR-10 and MNIST readers', () => {
  it('reads CIFAR-10 binary batches (planar CHW records) into HWC', async () => {
    const dir = join(tmp, 'cifar');
    (await import('node:fs')).mkdirSync(dir, { recursive: true });
    const rec = (label: number, seed: number) => {
      const b = Buffer.alloc(3073);
      b[0] = label;
      for (let i = 1; i < 3073; i++) b[i] = (i * seed) % 251;
      return b;
    };
    for (let k = 1; k <= 5; k++) writeFileSync(join(dir, `data_batch_${k}.bin`), Buffer.concat([rec(k, k), rec(9, 100 + k)]));
    writeFileSync(join(dir, 'test_batch.bin'), rec(3, 7));
    const ds = (await loadDataset({ ...cfg(), name: 'cifar10', path: dir })) as Dataset<import('../src/data/dataset.js').MemorySplit>;
    expect([ds.train.n, ds.val.n, ds.train.height, ds.train.channels]).toEqual([10, 1, 32, 3]);
    expect(Array.from(ds.train.labels)).toEqual([1, 9, 2, 9, 3, 9, 4, 9, 5, 9]);
    // pixel (r=1, c=2), channel G of the test image = byte 1 + 1024 + 34
    expect(ds.val.images[(1 * 32 + 2) * 3 + 1]).toBe(((1 + 1024 + 34) * 7) % 251);
    writeFileSync(join(dir, 'test_batch.bin'), rec(3, 7).subarray(0, 3000));
    await expect(loadDataset({ ...cfg(), name: 'cifar10', path: dir })).rejects.toThrow(/test_batch.bin: 3000 bytes/);
    await expect(loadDataset({ ...cfg(), name: 'cifar10', path: join(tmp, 'nope') })).rejects.toThrow(/data_batch_1.bin.*\n.*data.path/s);
  });

  it('reads MNIST IDX files (gzipped)', async () => {
    const dir = join(tmp, 'mnist');
    const imgs = Uint8Array.from({ length: 3 * 28 * 28 }, (_, i) => i % 256);
    writeIdx(join(dir, 'train-images-idx3-ubyte.gz'), [3, 28, 28], imgs, { gzip: true });
    writeIdx(join(dir, 'train-labels-idx1-ubyte.gz'), [3], Uint8Array.from([7, 1, 0]), { gzip: true });
    writeIdx(join(dir, 't10k-images-idx3-ubyte.gz'), [1, 28, 28], imgs.subarray(0, 784), { gzip: true });
    writeIdx(join(dir, 't10k-labels-idx1-ubyte.gz'), [1], Uint8Array.from([4]), { gzip: true });
    const ds = await loadDataset({ ...cfg(), name: 'mnist', path: dir });
    expect([ds.train.n, ds.val.n, ds.classNames[7]]).toEqual([3, 1, '7']);
    expect(Array.from(ds.train.labels)).toEqual([7, 1, 0]);
  });
});
