// The ImageNet recipe's geometry as pure functions of (image size, rng): torchvision's
// RandomResizedCrop and Resize(256)+CenterCrop(224), so they can be tested without decoding.
import { Rng } from '../util/rng.js';

export interface Box {
  left: number;
  top: number;
  width: number;
  height: number;
}

/** What the decoder does to one file: crop a source box, resize it to width x height, crop again. */
export interface Plan {
  extract: Box | null; // before resize (RandomResizedCrop's box)
  resize: { width: number; height: number };
  extract2: Box | null; // after resize (the center crop of evaluation)
  flip: boolean; // mirrored horizontally after decoding
}

export interface RrcOptions {
  scale: [number, number]; // fraction of the image area, paper recipe 0.08..1
  ratio: [number, number]; // aspect ratio w/h, 3/4..4/3
}

export const RRC_DEFAULT: RrcOptions = { scale: [0.08, 1], ratio: [3 / 4, 4 / 3] };

/** Python's round (half to even), so boxes match torchvision's int(round(...)). */
const pyRound = (x: number) => {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
};

/**
 * torchvision RandomResizedCrop.get_params: 10 attempts at a box with area fraction in `scale`
 * and log-uniform aspect ratio in `ratio`; else a center crop clamped to the ratio range.
 */
export function randomResizedCropBox(width: number, height: number, rng: Rng, o: RrcOptions = RRC_DEFAULT): Box {
  const area = width * height;
  const [lr0, lr1] = [Math.log(o.ratio[0]), Math.log(o.ratio[1])];
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = area * (o.scale[0] + (o.scale[1] - o.scale[0]) * rng.next());
    const aspect = Math.exp(lr0 + (lr1 - lr0) * rng.next());
    const w = pyRound(Math.sqrt(target * aspect));
    const h = pyRound(Math.sqrt(target / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const top = Math.floor(rng.next() * (height - h + 1));
      const left = Math.floor(rng.next() * (width - w + 1));
      return { left, top, width: w, height: h };
    }
  }
  const inRatio = width / height;
  let w = width;
  let h = height;
  if (inRatio < o.ratio[0]) h = pyRound(w / o.ratio[0]);
  else if (inRatio > o.ratio[1]) w = pyRound(h * o.ratio[1]);
  return { left: Math.floor((width - w) / 2), top: Math.floor((height - h) / 2), width: w, height: h };
}

/** Training: RandomResizedCrop(size) then a horizontal flip with probability 1/2. */
export function trainPlan(width: number, height: number, size: number, rng: Rng, o: RrcOptions = RRC_DEFAULT, flip = true): Plan {
  const box = randomResizedCropBox(width, height, rng, o);
  const f = rng.next() < 0.5; // always drawn, so turning flip off leaves the crops unchanged
  return { extract: box, resize: { width: size, height: size }, extract2: null, flip: flip && f };
}

/**
 * Evaluation: Resize(short side = size*256/224, as torchvision: long side truncated) then
 * CenterCrop(size) with torchvision's rounding of the offsets.
 */
export function evalPlan(width: number, height: number, size: number): Plan {
  const short = Math.floor((size * 256) / 224);
  const [w, h] = width <= height ? [short, Math.floor((short * height) / width)] : [Math.floor((short * width) / height), short];
  const cw = Math.min(size, w);
  const ch = Math.min(size, h);
  const box = { left: pyRound((w - cw) / 2), top: pyRound((h - ch) / 2), width: cw, height: ch };
  return { extract: null, resize: { width: w, height: h }, extract2: box, flip: false };
}
