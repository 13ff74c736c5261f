// Multi-threaded tfjs wasm under Node. Stock tfjs refuses (WASM_HAS_MULTITHREAD_SUPPORT is false
// when IS_NODE, tfjs#3830) and, if forced, fails because the emscripten pthread worker script
// and the main script are handed to workers as blob: URLs, which Node's worker_threads and the
// worker's fs-based importScripts cannot load. We capture both scripts while the backend
// initialises and serve them from real files. Also, XNNPACK's pool is capped at
// cores/2 by the C++ init, so the core count reads double during init.
// Pinned to @tensorflow/tfjs-backend-wasm 4.22.0; every patch is checked and undone after init.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import workerThreads from 'node:worker_threads';

const require = createRequire(import.meta.url);

// Worker-side branch that loads the main script from the blob; replaced by a file import.
const LOAD_BRANCH =
  'if(typeof e.data.urlOrBlob=="string"){importScripts(e.data.urlOrBlob)}else{var objectUrl=URL.createObjectURL(e.data.urlOrBlob);importScripts(objectUrl);URL.revokeObjectURL(objectUrl)}';
const MAIN_PREFIX = 'var WasmBackendModuleThreadedSimd = ';

/** Cheap check that the installed bundle is the one these patches were written for. */
export function threadPatchApplies(): string | null {
  try {
    const bundle = fs.readFileSync(require.resolve('@tensorflow/tfjs-backend-wasm'), 'utf8');
    if (!bundle.includes(JSON.stringify(LOAD_BRANCH).slice(1, -1))) return 'worker script layout changed';
    if (!bundle.includes(`"${MAIN_PREFIX}"`)) return 'main script layout changed';
    if (!bundle.includes('return require$$4.cpus().length')) return 'core-count probe changed';
    return null;
  } catch (e) {
    return `cannot read tfjs-backend-wasm bundle: ${(e as Error).message}`;
  }
}

// Pool workers started and answered: what the start-up watchdog reports when init hangs.
const pool_ = { created: 0, loaded: 0 };

/** "N pool workers started, M loaded the wasm module" (empty before the threaded loader ran). */
export function poolStartState(): string {
  return pool_.created ? `${pool_.created} pool workers started, ${pool_.loaded} loaded the wasm module` : '';
}

/** A complete file or none: written beside its name, then renamed into place. */
function writeOnce(file: string, text: string): void {
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

/** Installs the patches; call the returned function once the backend is initialised. */
export function patchForNodeThreads(): () => void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bnlab-wasm-'));
  const mainPath = path.join(dir, 'tfjs-backend-wasm-threaded-simd.main.cjs');
  const workerPath = path.join(dir, 'tfjs-backend-wasm-threaded-simd.worker.cjs');
  const texts = new WeakMap<Blob, string>();
  const OrigBlob = globalThis.Blob;
  const origCreate = URL.createObjectURL;
  const origCpus = os.cpus;

  // Free variables of the factory in the node bundle, which `toString()` does not carry along.
  const prelude = `var require$$0=require("fs"),require$$1=require("path"),require$$3=require("perf_hooks"),` +
    `require$$4=require("os"),commonjsGlobal=globalThis,_scriptDir=${JSON.stringify(mainPath)},` +
    `__dirname=${JSON.stringify(dir)};\n`;

  globalThis.Blob = class extends OrigBlob {
    constructor(parts?: BlobPart[], opts?: BlobPropertyBag) {
      super(parts, opts);
      if (parts && parts.every((p) => typeof p === 'string')) {
        const text = (parts as string[]).join('');
        texts.set(this, text);
        if (text.startsWith(MAIN_PREFIX)) writeOnce(mainPath, prelude + text);
      }
    }
  };
  let workerSize = -1;
  URL.createObjectURL = (obj: Blob) => {
    // Pool workers created after init (rare) come with uncaptured blobs: match them by size.
    const text = texts.get(obj);
    if (text != null && text.includes(LOAD_BRANCH)) {
      if (!fs.existsSync(mainPath)) throw new Error('bnlab threads: main wasm script was not captured');
      // emscripten asks for this URL once per pool worker (8 times in a row), and each worker
      // starts reading the file the moment it is created. Rewritten in place each time (truncate,
      // then write), a worker started a moment earlier could read an empty script: it never
      // answered the 'load' message and the runtime waited for it forever, idle (issue 12's
      // start-up hang, 5 in ~115 starts under load). So: written once, atomically, before the
      // first worker exists.
      if (workerSize < 0) writeOnce(workerPath, text.replace(LOAD_BRANCH, `importScripts(${JSON.stringify(mainPath)});`));
      workerSize = obj.size;
      return workerPath;
    }
    if (workerSize >= 0 && obj.size === workerSize && obj.type === 'application/javascript') return workerPath;
    return origCreate(obj);
  };
  os.cpus = () => { const c = origCpus(); return [...c, ...c]; };
  // Workers inherit the parent's execArgv by default; flags such as --input-type or --eval
  // make a worker fail to start, which crashes the process. Our worker file needs none.
  // (emscripten keeps this class as its global Worker, so it outlives the restore below.)
  const OrigWorker = workerThreads.Worker;
  const wt = workerThreads as { Worker: typeof workerThreads.Worker };
  wt.Worker = class extends OrigWorker {
    constructor(file: string | URL, opts?: workerThreads.WorkerOptions) {
      const pool = String(file) === workerPath;
      super(file, pool ? { ...opts, execArgv: [] } : opts);
      if (!pool) return;
      pool_.created++;
      this.on('message', (m: { cmd?: string }) => { if (m?.cmd === 'loaded') pool_.loaded++; });
    }
  };

  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));

  // URL.createObjectURL stays patched (only ever answers for the worker script).
  return () => {
    globalThis.Blob = OrigBlob;
    os.cpus = origCpus;
    wt.Worker = OrigWorker;
  };
}
