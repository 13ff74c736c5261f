// sharp (libvips) is ~20 MB of resident memory once loaded, and only figures, corruptions, image
// headers and `bnlab data` use it: it loads on first use, so training and evaluating a tensor
// dataset never pay for it.
import type { Sharp, SharpOptions } from 'sharp';

let lib: Promise<typeof import('sharp')> | undefined;

export async function sharp(input?: Buffer | Uint8Array | string, options?: SharpOptions): Promise<Sharp> {
  const { default: make } = await (lib ??= import('sharp'));
  return make(input, options);
}
