// ImageNet-C-style corruptions (Hendrycks & Dietterich 2019, hendrycks/robustness
// make_imagenet_c.py), applied to a uint8 HWC image after the evaluation resize/crop and before
// normalization, as ImageNet-C corrupts the 224 center crops. Random ones are seeded by the image
// index only, so an image is corrupted the same way in every epoch and run.
import { sharp } from '../util/sharp.js';
import { Rng } from '../util/rng.js';

export const CORRUPTIONS = ['contrast', 'gaussian_noise', 'jpeg_compression', 'brightness'] as const;
export type CorruptionType = (typeof CORRUPTIONS)[number];
export interface Corruption {
  type: CorruptionType;
  severity: number; // 1..5
}

// Severity constants from make_imagenet_c.py.
export const SEVERITY = {
  contrast: [0.4, 0.3, 0.2, 0.1, 0.05], // (x - mean) * c + mean, mean per channel over the image
  gaussian_noise: [0.08, 0.12, 0.18, 0.26, 0.38], // x/255 + N(0, c), clipped to [0, 1]
  jpeg_compression: [25, 18, 15, 10, 7], // JPEG quality of a re-encode
  brightness: [0.1, 0.2, 0.3, 0.4, 0.5], // HSV value + c, clipped
} as const satisfies Record<CorruptionType, readonly number[]>;

const SEED = 0xc022;

export function corruptionParam(c: Corruption): number {
  if (!(CORRUPTIONS as readonly string[]).includes(c.type)) throw new Error(`unknown corruption '${c.type}' (${CORRUPTIONS.join(', ')})`);
  if (!(Number.isInteger(c.severity) && c.severity >= 1 && c.severity <= 5)) throw new Error(`corruption severity must be 1..5, got ${c.severity}`);
  return SEVERITY[c.type][c.severity - 1];
}

// ImageNet-C stores np.uint8(x): values are truncated, not rounded.
const toByte = (v: number) => (v <= 0 ? 0 : v >= 255 ? 255 : Math.floor(v));

/**
 * Corrupts `img` (uint8, HWC with `channels` interleaved) and returns a new array. `index` is the
 * image's index in its split: the noise stream depends on it and the seed only.
 */
export async function corrupt(img: Uint8Array, width: number, height: number, channels: number, c: Corruption, index: number, seed = 0): Promise<Uint8Array> {
  const p = corruptionParam(c);
  const out = new Uint8Array(img.length);
  const C = channels;
  if (c.type === 'contrast') {
    const mean = new Float64Array(C);
    for (let i = 0; i < img.length; i++) mean[i % C] += img[i];
    for (let k = 0; k < C; k++) mean[k] /= img.length / C;
    for (let i = 0; i < img.length; i++) {
      const m = mean[i % C];
      out[i] = toByte((img[i] - m) * p + m);
    }
  } else if (c.type === 'gaussian_noise') {
    const rng = new Rng(SEED, seed, index);
    for (let i = 0; i < img.length; i++) out[i] = toByte((img[i] / 255 + p * rng.normal()) * 255);
  } else if (c.type === 'brightness') {
    // In HSV only V = max(r,g,b) changes; r,g,b are V times factors of (H, S), so each channel
    // scales by V'/V. Black (V = 0, S = 0) becomes grey V'. One channel: V is the pixel itself.
    for (let i = 0; i < img.length; i += C) {
      let v = 0;
      for (let k = 0; k < C; k++) v = Math.max(v, img[i + k]);
      const v2 = Math.min(1, v / 255 + p) * 255;
      for (let k = 0; k < C; k++) out[i + k] = toByte(v === 0 ? v2 : (img[i + k] * v2) / v);
    }
  } else {
    // PIL's save(quality=q) and sharp both use the standard (Annex K) tables with 4:2:0 chroma.
    const raw = { width, height, channels: C as 1 | 2 | 3 | 4 };
    const jpg = await (await sharp(img, { raw })).jpeg({ quality: p, chromaSubsampling: '4:2:0' }).toBuffer();
    let dec = await sharp(jpg);
    if (C === 3) dec = dec.toColourspace('srgb');
    // A 1-channel raw image is encoded as a 3-channel JPEG by libvips; read it back as grey.
    if (C === 1) dec = dec.toColourspace('b-w').extractChannel(0);
    const { data, info } = await dec.raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== C) throw new Error(`jpeg_compression: decoded ${info.channels} channels, expected ${C}`);
    out.set(data);
  }
  return out;
}
