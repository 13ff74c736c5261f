// One image-decoding thread (worker_threads): JPEGs through bnlab's native decoder
// (native/jpeg: libjpeg-turbo, crop + resize + flip + normalize in one call) when
// workerData.decoder is 'native', everything else (and any JPEG it refuses) through sharp
// pipelines, PER_THREAD at a time, so `data.workers` bounds the images decoded at once. Plain JS
// because worker threads do not inherit tsx's loader. It has its own event loop: it keeps
// decoding while the main thread is blocked in a synchronous training step. The plan (crop
// boxes, flip) is computed by the caller (augment.ts).
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { parentPort, workerData } from 'node:worker_threads';
import sharp from 'sharp';

const jpeg = workerData?.decoder === 'native' ? createRequire(import.meta.url)('../../native/jpeg/bnlab_jpeg.node') : null;
const isJpeg = (b) => b.length > 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff;

// One libvips thread per pipeline: parallelism comes from the number of workers.
sharp.concurrency(workerData?.vipsThreads ?? 1);
sharp.cache(false); // every file is read once per epoch: caching only costs memory

/** @param {{file: string, plan: any, kernel: string, failOn: string}} job; `buf`: the file, when already read */
async function decode(job, buf) {
  const { plan } = job;
  let img = sharp(buf ?? job.file, { failOn: job.failOn, limitInputPixels: 1 << 28 });
  if (plan.extract) img = img.extract(plan.extract);
  img = img.resize(plan.resize.width, plan.resize.height, { fit: 'fill', kernel: job.kernel, fastShrinkOnLoad: job.fastShrink });
  if (plan.extract2) img = img.extract(plan.extract2);
  // Grey, CMYK and alpha images all become 3-channel sRGB, as PIL's convert('RGB').
  const { data, info } = await img.removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`decoded ${info.channels} channels, expected 3`);
  return { data, width: info.width, height: info.height };
}

/** uint8 HWC RGB -> float32 (v/255 - mean[c]) / std[c], columns mirrored when flip. */
function normalize(r, norm, flip) {
  const { width: W, height: H, data } = r;
  const lut = new Float32Array(768);
  for (let c = 0; c < 3; c++) for (let v = 0; v < 256; v++) lut[c * 256 + v] = (v / 255 - norm.mean[c]) / norm.std[c];
  const x = new Float32Array(W * H * 3);
  for (let y = 0; y < H; y++) {
    for (let col = 0; col < W; col++) {
      const s = (y * W + (flip ? W - 1 - col : col)) * 3;
      const t = (y * W + col) * 3;
      x[t] = lut[data[s]];
      x[t + 1] = lut[256 + data[s + 1]];
      x[t + 2] = lut[512 + data[s + 2]];
    }
  }
  return x;
}

// Two images in flight per thread: while one is normalized here, the next decodes in libuv's pool.
const PER_THREAD = workerData?.perThread ?? 2;
const queue = [];
let active = 0;
/**
 * The native path: { out } when it decoded the file, else { buf } (the file's bytes, when they
 * could be read) for sharp, which then decides (other formats, refused or damaged JPEGs).
 */
async function decodeNative(job) {
  if (!jpeg) return {};
  const buf = await readFile(job.file).catch(() => null);
  if (!buf || !isJpeg(buf)) return { buf };
  const { plan, norm } = job;
  const box = plan.extract && [plan.extract.left, plan.extract.top, plan.extract.width, plan.extract.height];
  const win = plan.extract2 && [plan.extract2.left, plan.extract2.top, plan.extract2.width, plan.extract2.height];
  try {
    return { out: jpeg.decode(buf, box, plan.resize.width, plan.resize.height, win, !!(norm && plan.flip), job.fastShrink, norm && [...norm.mean, ...norm.std]) };
  } catch {
    return { buf };
  }
}

async function run(job) {
  try {
    const { out: n, buf } = await decodeNative(job);
    if (n) return void parentPort.postMessage({ id: job.id, ...n }, [n.data.buffer]);
    const r = await decode(job, buf ?? undefined);
    // Normalizing (and flipping) here keeps that work off the main thread, which trains.
    const out = job.norm ? normalize(r, job.norm, job.plan.flip) : new Uint8Array(r.data);
    parentPort.postMessage({ id: job.id, data: out, width: r.width, height: r.height }, [out.buffer]);
  } catch (e) {
    parentPort.postMessage({ id: job.id, error: String(e?.message ?? e) });
  }
}
function pump() {
  while (active < PER_THREAD && queue.length) {
    active++;
    void run(queue.shift()).finally(() => {
      active--;
      pump();
    });
  }
}

parentPort.on('message', (job) => {
  queue.push(job);
  pump();
});
