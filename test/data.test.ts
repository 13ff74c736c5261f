import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { readIdx, writeIdx } from '../src/data/idx.js';
import { loadDataset as loadAnyDataset, MINI_DIR, PACKAGE_ROOT, type DatasetSpec, type Dataset, type ImageSet, type MemorySplit } from '../src/data/dataset.js';
import { locateFashionMnist } from '../src/data/fashion-mnist.js';
import { batches, makeBatch, permutation, sampleWithoutReplacement } from '../src/data/loader.js';

// The in-memory datasets tested here come back as MemorySplits (imagefolder ones do not).
const loadDataset = (c: DatasetSpec) => loadAnyDataset(c) as Promise<Dataset<MemorySplit>>;
const tmp = mkdtempSync(join(tmpdir(), 'bnlab-data-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const cfg = (over: Partial<DatasetSpec> = {}): DatasetSpec => ({
  name: 'synthetic',
  path: null,
  train_limit: null,
  val_limit: null,
  augment: { pad_crop: 2, flip: true },
  synthetic: { classes: 4, train: 64, val: 32, size: 12, channels: 2, seed: 7 },
  ...over,
});
const counts = (labels: Int32Array, k: number) => labels.reduce((a, l) => (a[l]++, a), new Array(k).fill(0));

describe('IDX', () => {
  const dims = [3, 4, 5];
  const data = Uint8Array.from({ length: 60 }, (_, i) => (i * 37) % 256);

  it.each([true, false])('round-trips (gzip=%s), detecting gzip by content', (gzip) => {
    const p = join(tmp, `rt-${gzip}.idx`); // no .gz suffix on purpose
    writeIdx(p, dims, data, { gzip });
    expect(readFileSync(p)[0] === 0x1f).toBe(gzip);
    expect(readIdx(p)).toEqual({ dims, data });
  });

  it('rejects bad headers and sizes, naming the file and problem', () => {
    const good = join(tmp, 'good.idx');
    writeIdx(good, dims, data, { gzip: false });
    const raw = readFileSync(good);
    const bad = (name: string, bytes: Uint8Array) => (writeFileSync(join(tmp, name), bytes), join(tmp, name));
    const cut = bad('cut.idx', raw.subarray(0, raw.length - 1));
    expect(() => readIdx(cut)).toThrow(new RegExp(`${cut}.*truncated.*need 60 data bytes, found 59`));
    expect(() => readIdx(bad('hdr.idx', raw.subarray(0, 10)))).toThrow(/truncated header/);
    expect(() => readIdx(bad('long.idx', Buffer.concat([raw, Buffer.from([1])])))).toThrow(/1 trailing bytes/);
    expect(() => readIdx(bad('magic.idx', Buffer.concat([Buffer.from([1, 2]), raw.subarray(2)])))).toThrow(/magic.*magic\.idx|magic\.idx.*bad magic/);
    expect(() => readIdx(bad('float.idx', Buffer.concat([Buffer.from([0, 0, 0x0d]), raw.subarray(3)])))).toThrow(/unsupported data type 0x0d/);
    const gz = gzipSync(raw);
    expect(() => readIdx(bad('cut.gz', gz.subarray(0, gz.length - 10)))).toThrow(/cut\.gz.*gzip/);
    expect(() => readIdx(join(tmp, 'nope.gz'))).toThrow(/nope\.gz.*ENOENT/);
    expect(() => writeIdx(join(tmp, 'x.idx'), [2, 2], new Uint8Array(3))).toThrow(/need 4 bytes, data has 3/);
  });
});

describe('fashion-mnist-mini (shipped)', async () => {
  const ds = await loadDataset(cfg({ name: 'fashion-mnist-mini' }));

  it('has 10 classes x 1000 train / 200 val of 28x28x1', () => {
    expect(ds.numClasses).toBe(10);
    expect(ds.classNames[9]).toBe('Ankle boot');
    for (const [set, per] of [[ds.train, 1000], [ds.val, 200]] as const) {
      expect([set.n, set.height, set.width, set.channels, set.images.length]).toEqual([per * 10, 28, 28, 1, per * 10 * 784]);
      expect(counts(set.labels, 10)).toEqual(new Array(10).fill(per));
    }
    expect(ds.mean[0]).toBeGreaterThan(0.25); // Fashion-MNIST: mean ~0.286, std ~0.353
    expect(ds.mean[0]).toBeLessThan(0.32);
    expect(ds.std[0]).toBeGreaterThan(0.32);
    expect(ds.std[0]).toBeLessThan(0.38);
  });

  it('matches the sha256 sums in its README', () => {
    const dir = join(PACKAGE_ROOT, MINI_DIR);
    const sums = [...readFileSync(join(dir, 'README.md'), 'utf8').matchAll(/^([0-9a-f]{64}) {2}(\S+)$/gm)];
    expect(sums.map((m) => m[2]).sort()).toEqual(
      ['t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz', 'train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'],
    );
    for (const [, sha, name] of sums) expect(createHash('sha256').update(readFileSync(join(dir, name))).digest('hex'), name).toBe(sha);
  });

  it('limits keep classes balanced, are deterministic and nest', async () => {
    const a = await loadDataset(cfg({ name: 'fashion-mnist-mini', train_limit: 95, val_limit: 30 }));
    const b = await loadDataset(cfg({ name: 'fashion-mnist-mini', train_limit: 500 }));
    const c = await loadDataset(cfg({ name: 'fashion-mnist-mini', train_limit: 95 }));
    expect(a.train.n).toBe(95);
    for (const n of counts(a.train.labels, 10)) expect([9, 10]).toContain(n);
    expect(counts(a.val.labels, 10)).toEqual(new Array(10).fill(3));
    expect(counts(b.train.labels, 10)).toEqual(new Array(10).fill(50));
    expect(c.train.images).toEqual(a.train.images);
    expect(c.val.n).toBe(2000);
    expect(a.mean[0]).not.toBe(ds.mean[0]); // stats come from the limited train set
    // Every image of the 95 is among the 500.
    const key = (s: ImageSet, i: number) => Buffer.from(s.images.subarray(i * 784, (i + 1) * 784)).toString('base64');
    const big = new Set(Array.from({ length: b.train.n }, (_, i) => key(b.train, i)));
    for (let i = 0; i < a.train.n; i++) expect(big.has(key(a.train, i))).toBe(true);
  });
});

describe('full fashion-mnist location', () => {
  it('fails clearly for a missing path', async () => {
    const p = join(tmp, 'no-such-dir');
    await expect(loadDataset(cfg({ name: 'fashion-mnist', path: p }))).rejects.toThrow(
      new RegExp(`${p}.*does not exist[^]*apt-get install dataset-fashion-mnist[^]*--set data\\.path=DIR`),
    );
    expect(() => locateFashionMnist(null, { BNLAB_FASHION_MNIST: tmp })).toThrow(/BNLAB_FASHION_MNIST.*lacks train-images-idx3-ubyte/);
  });

  it('reads any directory holding the four files (here: the mini subset)', async () => {
    const ds = await loadDataset(cfg({ name: 'fashion-mnist', path: join(PACKAGE_ROOT, MINI_DIR), val_limit: 20 }));
    expect([ds.train.n, ds.val.n, ds.name]).toEqual([10000, 20, 'fashion-mnist']);
  });
});

describe('synthetic', () => {
  it('is deterministic in the seed, balanced and shaped as asked', async () => {
    const [a, b, c] = await Promise.all([loadDataset(cfg()), loadDataset(cfg()), loadDataset(cfg({ synthetic: { ...cfg().synthetic, seed: 8 } }))]);
    expect(a.train.images).toEqual(b.train.images);
    expect(a.val.labels).toEqual(b.val.labels);
    expect(a.train.images).not.toEqual(c.train.images);
    expect(a.val.images).not.toEqual(a.train.images.subarray(0, a.val.images.length));
    expect([a.train.n, a.val.n, a.train.height, a.train.width, a.train.channels, a.numClasses]).toEqual([64, 32, 12, 12, 2, 4]);
    expect(counts(a.train.labels, 4)).toEqual([16, 16, 16, 16]);
    expect(a.mean).toHaveLength(2);
  });

  it('is learnable: a fixed oriented-energy detector already separates the classes', async () => {
    const s = { classes: 6, train: 8, val: 300, size: 16, channels: 1, seed: 3 };
    const { val } = await loadDataset(cfg({ synthetic: s }));
    let right = 0;
    for (let i = 0; i < val.n; i++) {
      const energy = Array.from({ length: s.classes }, (_, k) => {
        const th = (Math.PI * k) / s.classes;
        const f = (2 * Math.PI * (1.5 + (k % 3) * 0.75)) / s.size;
        let re = 0, im = 0;
        for (let r = 0; r < s.size; r++) for (let c = 0; c < s.size; c++) {
          const v = val.images[i * 256 + r * 16 + c] - 127.5;
          const a = f * (c * Math.cos(th) + r * Math.sin(th));
          re += v * Math.cos(a);
          im += v * Math.sin(a);
        }
        return re * re + im * im;
      });
      if (energy.indexOf(Math.max(...energy)) === val.labels[i]) right++;
    }
    expect(right / val.n).toBeGreaterThan(0.9);
  });
});

describe('loader', () => {
  it('permutation is a deterministic permutation that changes with seed and epoch', () => {
    const p = permutation(1000, 1, 0);
    expect(Array.from(p).sort((a, b) => a - b)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(permutation(1000, 1, 0)).toEqual(p);
    expect(permutation(1000, 1, 1)).not.toEqual(p);
    expect(permutation(1000, 2, 0)).not.toEqual(p);
    expect(permutation(0, 1, 0)).toHaveLength(0);
  });

  it('sampleWithoutReplacement draws k distinct indices deterministically', () => {
    const s = sampleWithoutReplacement(100, 30, 5);
    expect(new Set(s).size).toBe(30);
    expect(Math.max(...s)).toBeLessThan(100);
    expect(sampleWithoutReplacement(100, 30, 5)).toEqual(s);
    expect(sampleWithoutReplacement(100, 30, 6)).not.toEqual(s);
    expect(() => sampleWithoutReplacement(3, 4, 0)).toThrow();
  });

  // 3 images 6x5x2: each pixel distinct so positions can be recovered.
  const set: ImageSet = { images: Uint8Array.from({ length: 180 }, (_, i) => i), labels: Int32Array.from([2, 0, 1]), n: 3, height: 6, width: 5, channels: 2 };
  const mean = [0.2, 0.5];
  const std = [0.3, 0.25];
  const base = { augment: false, pad_crop: 2, flip: true, seed: 1, epoch: 0, mean, std };

  it('without augmentation gives exactly the normalized pixels', () => {
    const b = makeBatch(set, [2, 0], base);
    expect([b.n, b.height, b.width, b.channels]).toEqual([2, 6, 5, 2]);
    expect(Array.from(b.y)).toEqual([1, 2]);
    const want = new Float32Array(120);
    for (let j = 0; j < 2; j++) for (let k = 0; k < 60; k++) {
      const c = k % 2;
      want[j * 60 + k] = (set.images[[2, 0][j] * 60 + k] / 255 - mean[c]) / std[c];
    }
    expect(b.x).toEqual(want);
  });

  // Recover, for every output pixel, which source (row, col) it came from (or -1 for padding).
  const sourceOf = (x: Float32Array, b: number, idx: number) =>
    Array.from({ length: 30 }, (_, k) => {
      const raw = Math.round((x[(b * 30 + k) * 2] * std[0] + mean[0]) * 255);
      return raw === 0 && idx !== 0 ? -1 : (raw - idx * 60) / 2;
    });

  it('crop shifts content by at most pad_crop, with zero padding; flip mirrors', () => {
    const seen = new Set<string>();
    for (let epoch = 0; epoch < 40; epoch++) {
      const opts = { ...base, augment: true, epoch };
      const b = makeBatch(set, [1, 2], opts);
      expect(makeBatch(set, [1, 2], opts).x).toEqual(b.x);
      for (const [j, idx] of [1, 2].entries()) {
        const src = sourceOf(b.x, j, idx);
        // One (dy, dx, flip) explains the whole image.
        const first = src.findIndex((s, k) => s >= 0 && k >= 0);
        const [r0, c0, s0] = [Math.floor(first / 5), first % 5, src[first]];
        const [sr, sc] = [Math.floor(s0 / 5), s0 % 5];
        let ok = false;
        for (const flip of [false, true]) for (let dy = -2; dy <= 2; dy++) for (let dx = -2; dx <= 2; dx++) {
          if (sr !== r0 + dy || sc !== (flip ? 4 - c0 : c0) + dx) continue;
          const fits = src.every((s, k) => {
            const r = Math.floor(k / 5) + dy, c = (flip ? 4 - (k % 5) : k % 5) + dx;
            return r >= 0 && r < 6 && c >= 0 && c < 5 ? s === r * 5 + c : s === -1;
          });
          if (fits) (ok = true), seen.add(`${dy},${dx},${flip}`);
        }
        expect(ok).toBe(true);
      }
    }
    expect(seen.size).toBeGreaterThan(15); // crops and flips actually vary
    // Flip only: each image is the original or its mirror, and both occur.
    const kinds = new Set<string>();
    for (let epoch = 0; epoch < 20; epoch++) {
      const src = sourceOf(makeBatch(set, [1], { ...base, augment: true, pad_crop: 0, epoch }).x, 0, 1);
      const id = src.every((s, k) => s === k), mirror = src.every((s, k) => s === Math.floor(k / 5) * 5 + 4 - (k % 5));
      expect(id || mirror).toBe(true);
      kinds.add(id ? 'id' : 'mirror');
    }
    expect(kinds.size).toBe(2);
  });

  it('batches covers the order in chunks, honouring dropLast', () => {
    const opts = { ...base, dropLast: false };
    expect([...batches(set, [2, 1, 0], 2, opts)].map((b) => Array.from(b.y))).toEqual([[1, 0], [2]]);
    expect([...batches(set, [2, 1, 0], 2, { ...opts, dropLast: true })]).toHaveLength(1);
  });
});
