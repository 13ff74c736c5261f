// The optional native addon (native/dnnl, built by scripts/build-native.sh at `npm ci` when
// libdnnl-dev is installed): oneDNN convolutions working in place on the wasm heap.
// Loading it is all this file does; never required, reported by `bnlab doctor`.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export interface DnnlAddon {
  /** kind 0 forward (x,w,y), 1 backward data (dy,w,dx), 2 backward weights (x,dy,dw) */
  conv(kind: number, heap: Uint8Array, offA: number, offB: number, offC: number, dims: Int32Array): void;
  impl(kind: number, dims: Int32Array): string;
  setThreads(n: number): void;
  version(): string;
}

export const DNNL_ADDON_PATH = fileURLToPath(new URL('../../native/dnnl/bnlab_dnnl.node', import.meta.url));

let cached: { addon: DnnlAddon | null; reason: string } | null = null;

/** The addon, or null with the reason it is unavailable (and the fix). */
export function loadDnnl(): { addon: DnnlAddon | null; reason: string } {
  if (cached) return cached;
  try {
    const addon = createRequire(import.meta.url)(DNNL_ADDON_PATH) as DnnlAddon;
    cached = { addon, reason: `oneDNN ${addon.version()}` };
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0];
    const fix = /cannot find module/i.test(msg)
      ? 'not built: apt-get install -y g++ libdnnl-dev && npm run build:native'
      : `failed to load (${msg}); rebuild with npm run build:native`;
    cached = { addon: null, reason: fix };
  }
  return cached;
}
