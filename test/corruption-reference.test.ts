// ImageNet-C corruptions against Hendrycks & Dietterich's definitions as their code computes
// them (test/helpers/imagenet_c_ref.py: numpy, PIL's JPEG encoder, colorsys), on one image at
// every severity. Gaussian noise draws from another RNG; its distribution is checked in
// data-pipeline.test.ts. Needs Debian's python3 with numpy and PIL (python3-torchvision brings both).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { corrupt, type CorruptionType } from '../src/data/corrupt.js';

const W = 48, H = 40;
const img = new Uint8Array(W * H * 3);
let s = 7;
for (let y = 0; y < H; y++) {
  for (let x = 0; x < W; x++) {
    for (let c = 0; c < 3; c++) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      img[(y * W + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(120 + 90 * Math.sin(x / 5 + c) + 40 * Math.cos(y / 7) + ((s >>> 16) % 40) - 20)));
    }
  }
}

const types: CorruptionType[] = ['contrast', 'jpeg_compression', 'brightness'];
const cases = types.flatMap((type) => [1, 2, 3, 4, 5].map((severity) => ({ type, severity })));

it('contrast, JPEG compression and brightness equal make_imagenet_c.py at severities 1-5', async () => {
  const r = spawnSync('/usr/bin/python3', [join(__dirname, 'helpers', 'imagenet_c_ref.py')], { input: JSON.stringify({ width: W, height: H, img: Array.from(img), cases }), encoding: 'utf8', maxBuffer: 1 << 26 });
  expect(r.status, `reference failed (needs python3-numpy and python3-pil): ${r.stderr}`).toBe(0);
  const ref = JSON.parse(r.stdout) as number[][];
  for (const [i, c] of cases.entries()) {
    const ours = await corrupt(img, W, H, 3, c, 0);
    let max = 0;
    for (let k = 0; k < ours.length; k++) max = Math.max(max, Math.abs(ours[k] - ref[i][k]));
    // JPEG: the same libjpeg quantization as PIL, bit-exact. Contrast/brightness: float32 vs
    // float64 may move a value across a truncation boundary by one level.
    expect(max, `${c.type} severity ${c.severity}`).toBeLessThanOrEqual(c.type === 'jpeg_compression' ? 0 : 1);
    expect(ours).not.toEqual(img);
  }
}, 60_000);
