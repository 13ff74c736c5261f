// Generates an ImageNet-layout JPEG tree for tests, benchmarks and smoke runs:
//   OUT/train/<class>/*.JPEG, OUT/val/<class>/*.JPEG (or a flat OUT/val/ + OUT/val_labels.txt),
// images of ImageNet's typical 500x375 size with class-dependent content (tinted oriented stripes
// plus noise, so a network can learn them and JPEG sizes are realistic), optionally some corrupt files.
//   npx tsx scripts/make-jpeg-tree.ts OUT [--classes 4] [--train 16] [--val 4] [--width 500] [--height 375] [--corrupt 0] [--flat-val]
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { Rng } from '../src/util/rng.js';

export interface TreeOptions {
  classes: number;
  train: number; // images per class
  val: number; // images per class
  width: number;
  height: number;
  corrupt: number; // corrupt files added to train/ (garbage, empty, truncated to half: readable header, in turn)
  flatVal: boolean; // original ILSVRC layout: val/*.JPEG + val_labels.txt ('FILE wnid' lines)
  sizes?: 'fixed' | 'varied'; // varied: each image's size drawn around width x height
  quality?: number;
}

export const TREE_DEFAULTS: TreeOptions = { classes: 4, train: 16, val: 4, width: 500, height: 375, corrupt: 0, flatVal: false };

export const className = (k: number) => `n${String(1440764 + k * 1111).padStart(8, '0')}`; // wnid-like

export async function image(k: number, K: number, i: number, w: number, h: number, quality = 90): Promise<Buffer> {
  const rng = new Rng(0x1ee7, k, i);
  const px = Buffer.alloc(w * h * 3);
  const theta = (Math.PI * k) / K + 0.3 * (rng.next() - 0.5);
  const freq = (2 * Math.PI * (3 + (k % 3) * 2)) / Math.min(w, h);
  const phase = rng.next() * 6.28;
  const [ct, st] = [Math.cos(theta), Math.sin(theta)];
  const tint = [0, 1, 2].map((c) => 0.6 + 0.4 * Math.cos((2 * Math.PI * k) / K + 2.1 * c));
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const wave = Math.cos(freq * (x * ct + y * st) + phase);
      for (let c = 0; c < 3; c++) px[(y * w + x) * 3 + c] = Math.max(0, Math.min(255, 128 + 90 * tint[c] * wave + 48 * (rng.next() - 0.5)));
    }
  }
  return sharp(px, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality }).toBuffer();
}

export async function makeJpegTree(out: string, o: Partial<TreeOptions> = {}): Promise<{ root: string; corrupt: string[] }> {
  const t = { ...TREE_DEFAULTS, ...o };
  const root = resolve(out);
  const corrupt: string[] = [];
  const size = (rng: Rng) =>
    t.sizes === 'varied' ? [Math.round(t.width * (0.6 + 0.8 * rng.next())), Math.round(t.height * (0.6 + 0.8 * rng.next()))] : [t.width, t.height];
  const labels: string[] = [];
  for (let k = 0; k < t.classes; k++) {
    const td = join(root, 'train', className(k));
    mkdirSync(td, { recursive: true });
    for (let i = 0; i < t.train; i++) {
      const [w, h] = size(new Rng(7, k, i));
      writeFileSync(join(td, `${className(k)}_${i}.JPEG`), await image(k, t.classes, i, w, h, t.quality));
    }
    const vd = t.flatVal ? join(root, 'val') : join(root, 'val', className(k));
    mkdirSync(vd, { recursive: true });
    for (let i = 0; i < t.val; i++) {
      const name = t.flatVal ? `ILSVRC2012_val_${String(k * t.val + i + 1).padStart(8, '0')}.JPEG` : `val_${i}.JPEG`;
      const [w, h] = size(new Rng(8, k, i));
      writeFileSync(join(vd, name), await image(k, t.classes, 100000 + i, w, h, t.quality));
      if (t.flatVal) labels.push(`${name} ${className(k)}`);
    }
  }
  if (t.flatVal) writeFileSync(join(root, 'val_labels.txt'), labels.sort().join('\n') + '\n');
  const good = await image(0, t.classes, 999, 64, 48);
  for (let j = 0; j < t.corrupt; j++) {
    const f = join(root, 'train', className(j % t.classes), `corrupt_${j}.JPEG`);
    const kind = j % 3;
    writeFileSync(f, kind === 0 ? Buffer.from('this is not an image at all, just text pretending to be a JPEG') : kind === 1 ? Buffer.alloc(0) : good.subarray(0, good.length >> 1));
    corrupt.push(f);
  }
  return { root, corrupt };
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const args = process.argv.slice(2);
  const valued = new Set(['--classes', '--train', '--val', '--width', '--height', '--corrupt']);
  const out = args.find((a, i) => !a.startsWith('-') && !valued.has(args[i - 1]));
  const usage = 'usage: npx tsx scripts/make-jpeg-tree.ts OUT [--classes K] [--train N] [--val N] [--width W] [--height H] [--corrupt N] [--flat-val] [--varied]\n';
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(usage);
    process.exit(0);
  }
  if (!out) {
    process.stderr.write(usage);
    process.exit(2);
  }
  const num = (flag: string, d: number) => (args.includes(flag) ? Number(args[args.indexOf(flag) + 1]) : d);
  const o: TreeOptions = {
    classes: num('--classes', TREE_DEFAULTS.classes),
    train: num('--train', TREE_DEFAULTS.train),
    val: num('--val', TREE_DEFAULTS.val),
    width: num('--width', TREE_DEFAULTS.width),
    height: num('--height', TREE_DEFAULTS.height),
    corrupt: num('--corrupt', 0),
    flatVal: args.includes('--flat-val'),
    sizes: args.includes('--varied') ? 'varied' : 'fixed',
  };
  const t0 = Date.now();
  const r = await makeJpegTree(out, o);
  process.stdout.write(`wrote ${o.classes} classes x (${o.train} train + ${o.val} val) ${o.width}x${o.height} JPEGs${o.corrupt ? ` + ${o.corrupt} corrupt` : ''} to ${r.root} in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
}
