// The optional native JPEG decoder (native/jpeg, built by scripts/build-native.sh when
// libjpeg-dev is installed). The decoding threads load it themselves (decode-worker.mjs); this
// module says whether it loads, for the choice of `data.decoder` and for `bnlab doctor`.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export const JPEG_ADDON_PATH = fileURLToPath(new URL('../../native/jpeg/bnlab_jpeg.node', import.meta.url));

let cached: { ok: boolean; reason: string } | null = null;

/** Whether the addon loads: its version, or why not and the fix. */
export function nativeJpeg(): { ok: boolean; reason: string } {
  if (cached) return cached;
  try {
    const addon = createRequire(import.meta.url)(JPEG_ADDON_PATH) as { version(): string };
    cached = { ok: true, reason: addon.version() };
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0];
    cached = {
      ok: false,
      reason: /cannot find module/i.test(msg) ? 'not built: apt-get install -y g++ libjpeg-dev && npm run build:native' : `failed to load (${msg}); rebuild with npm run build:native`,
    };
  }
  return cached;
}

/** data.decoder resolved: 'auto' is native when built; 'native' without the addon is an error. */
export function chooseDecoder(want: 'auto' | 'native' | 'sharp'): 'native' | 'sharp' {
  if (want === 'sharp') return 'sharp';
  const n = nativeJpeg();
  if (n.ok) return 'native';
  if (want === 'native') throw new Error(`data.decoder: native, but the native JPEG decoder is ${n.reason} (or set data.decoder: sharp)`);
  return 'sharp';
}
