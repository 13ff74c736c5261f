// `bnlab data`: look at, verify, benchmark and download datasets. Each subcommand takes a YAML
// config (its data section) or a dataset directory (layout detected: ImageNet-style folders,
// CIFAR-10 binary batches, or (Fashion-)MNIST IDX files).
import { existsSync, readdirSync, statSync } from 'node:fs';
import { cpuBudget } from '../util/cpus.js';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { sharp } from '../util/sharp.js';
import { ConfigError, loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { loadDataset, type Dataset, type Split } from '../data/dataset.js';
import { decodePool } from '../data/decode-pool.js';
import { chooseDecoder } from '../data/jpeg-native.js';
import { fetchDataset, FETCHABLE } from '../data/fetch.js';
import { loadIndex } from '../data/imagefolder.js';
import { permutation } from '../data/loader.js';
import { prefetch } from '../data/prefetch.js';
import { createProgress } from '../util/progress.js';
import { median } from '../util/median.js';

const collect = (v: string, prev: string[]) => [...prev, v];
const out = (s: string) => process.stdout.write(`${s}\n`);

/** The data layout of a directory, as `data.*` overrides. */
export function detectLayout(dir: string): string[] {
  const has = (...p: string[]) => existsSync(join(dir, ...p));
  if (has('train') && has('val')) {
    const val = join(dir, 'val');
    const flat = !readdirSync(val).some((e) => statSync(join(val, e)).isDirectory());
    const labels = ['val_labels.txt', 'LOC_val_solution.csv', 'val.txt'].find((f) => has(f));
    return ['data.name=imagefolder', `data.path=${dir}`, ...(flat && labels ? [`data.val_labels=${labels}`] : [])];
  }
  if (has('data_batch_1.bin') || has('cifar-10-batches-bin', 'data_batch_1.bin')) return ['data.name=cifar10', `data.path=${dir}`];
  if (has('train-images-idx3-ubyte.gz') || has('train-images-idx3-ubyte')) return ['data.name=fashion-mnist', `data.path=${dir}`];
  throw new ConfigError(
    `${dir}: not a dataset layout bnlab knows. Expected train/<class>/ + val/ (ImageNet style), data_batch_1.bin.. (CIFAR-10 binary) or train-images-idx3-ubyte[.gz] (Fashion-MNIST/MNIST; use --set data.name=mnist for digits)`,
  );
}

/** A config file, a dataset directory, or nothing (the built-in default), plus --set overrides. */
export function resolveTarget(target: string | undefined, sets: string[]): Config {
  if (!target) return loadConfig(undefined, sets);
  const p = resolve(target);
  if (!existsSync(p)) throw new ConfigError(`${target}: no such config file or dataset directory`);
  if (statSync(p).isDirectory()) return loadConfig(undefined, [...detectLayout(p), ...sets]);
  return loadConfig(p, sets);
}

const sizeHistogram = (w: number[], h: number[], top = 8) => {
  const count = new Map<string, number>();
  w.forEach((x, i) => count.set(x ? `${x}x${h[i]}` : 'unreadable', (count.get(x ? `${x}x${h[i]}` : 'unreadable') ?? 0) + 1));
  const rows = [...count].sort((a, b) => b[1] - a[1]);
  return [...rows.slice(0, top), ...(rows.length > top ? [[`(${rows.length - top} other sizes)`, rows.slice(top).reduce((s, r) => s + r[1], 0)] as [string, number]] : [])];
};

/** A grid PNG of augmented training samples (normalization undone). */
async function sampleGrid(ds: Dataset, n: number, seed: number, file: string): Promise<void> {
  const s = ds.train;
  const idx = Array.from(permutation(s.n, seed, 0).subarray(0, Math.min(n, s.n)));
  const b = await s.load(idx, { augment: true, seed, epoch: 0 });
  const cols = Math.ceil(Math.sqrt(b.n));
  const rows = Math.ceil(b.n / cols);
  const { height: H, width: W, channels: C } = b;
  const pad = 2;
  const GW = cols * (W + pad) + pad;
  const GH = rows * (H + pad) + pad;
  const grid = Buffer.alloc(GW * GH * 3, 255);
  for (let k = 0; k < b.n; k++) {
    const [gy, gx] = [Math.floor(k / cols) * (H + pad) + pad, (k % cols) * (W + pad) + pad];
    for (let r = 0; r < H; r++) {
      for (let c = 0; c < W; c++) {
        for (let ch = 0; ch < 3; ch++) {
          const cc = Math.min(ch, C - 1); // grey images repeat their channel
          const v = (b.x[((k * H + r) * W + c) * C + cc] * ds.std[cc] + ds.mean[cc]) * 255;
          grid[((gy + r) * GW + gx + c) * 3 + ch] = Math.max(0, Math.min(255, Math.round(v)));
        }
      }
    }
  }
  await (await sharp(grid, { raw: { width: GW, height: GH, channels: 3 } })).png().toFile(file);
}

async function inspect(target: string | undefined, f: { set: string[]; out?: string; samples: string }): Promise<void> {
  const cfg = resolveTarget(target, f.set);
  const ds = await loadDataset(cfg.data);
  out(`dataset ${ds.name} from ${ds.source}`);
  out(`${ds.numClasses} classes, ${ds.train.n} train / ${ds.val.n} val images, fed as ${ds.train.height}x${ds.train.width}x${ds.train.channels}`);
  const counts = (s: Split) => s.labels.reduce((a, l) => (a[l]++, a), new Array<number>(ds.numClasses).fill(0));
  const [tc, vc] = [counts(ds.train), counts(ds.val)];
  const shown = ds.classNames.length > 20 ? [...ds.classNames.keys()].slice(0, 20) : [...ds.classNames.keys()];
  out(`\n${'class'.padEnd(24)} ${'train'.padStart(7)} ${'val'.padStart(7)}`);
  for (const k of shown) out(`${`${k} ${ds.classNames[k]}`.slice(0, 24).padEnd(24)} ${String(tc[k]).padStart(7)} ${String(vc[k]).padStart(7)}`);
  if (shown.length < ds.numClasses) out(`... ${ds.numClasses - shown.length} more classes; per class train min ${Math.min(...tc)} max ${Math.max(...tc)}`);
  if (cfg.data.name === 'imagefolder') {
    const { index } = await loadIndex(cfg.data.path!, { valLabels: cfg.data.val_labels, cacheDir: cfg.data.cache_dir });
    for (const [name, s] of [['train', index.train], ['val', index.val]] as const) {
      out(`\n${name} image sizes (WxH: count)`);
      for (const [k, v] of sizeHistogram(s.widths, s.heights)) out(`  ${k.padEnd(22)} ${v}`);
    }
  } else {
    out(`\nimage size: all ${ds.train.width}x${ds.train.height} (in memory)`);
  }
  // Only where asked: a command that looks must not leave files in the current folder.
  if (f.out === undefined) out('\nadd -o samples.png for a grid of training samples after augmentation');
  else {
    const file = resolve(f.out);
    await sampleGrid(ds, Number(f.samples), cfg.seed, file);
    out(`\nwrote ${file}: ${f.samples} training samples after augmentation`);
  }
  const fails = ds.train.failures?.() ?? [];
  if (fails.length) out(`(${fails.length} unreadable images met while sampling; run \`bnlab data verify\`)`);
}

async function verify(target: string | undefined, f: { set: string[]; quiet?: boolean }): Promise<boolean> {
  const cfg = resolveTarget(target, [...f.set, 'data.on_error=skip']);
  const ds = await loadDataset(cfg.data);
  if (!ds.train.failures) {
    out(`${ds.name}: ${ds.train.n} train / ${ds.val.n} val images read into memory from ${ds.source}: OK`);
    return true;
  }
  const progress = createProgress(!!f.quiet);
  const bad: { file: string; error: string }[] = [];
  for (const [name, s] of [['train', ds.train], ['val', ds.val]] as const) {
    progress.start(`verify ${name}`, s.n);
    const B = 32;
    const jobs = function* () {
      for (let i = 0; i < s.n; i += B) {
        const idx = Array.from({ length: Math.min(B, s.n - i) }, (_, k) => i + k);
        yield () => s.load(idx, { augment: false, seed: 0, epoch: 0 }).then(() => i + idx.length);
      }
    };
    for await (const done of prefetch(jobs(), 4)) progress.update(done);
    progress.stop();
    bad.push(...s.failures!());
  }
  out(`${ds.name}: decoded ${ds.train.n} train + ${ds.val.n} val images from ${ds.source}`);
  if (!bad.length) {
    out('all images decode: OK');
    return true;
  }
  out(`${bad.length} images cannot be decoded (training skips them with data.on_error: skip):`);
  for (const b of bad) out(`  ${b.file}: ${b.error}`);
  return false;
}

async function bench(target: string | undefined, f: { set: string[]; workers?: string; decoder?: string; images: string; batch: string; repeat: string; eval?: boolean }): Promise<void> {
  const ks = (f.workers ?? `1,2,${cpuBudget().cpus}`).split(',').map(Number).filter((k, i, a) => k >= 1 && a.indexOf(k) === i);
  if (!ks.length) throw new ConfigError('--workers: give thread counts like 1,2,4');
  const [N, B, R] = [Number(f.images), Number(f.batch), Number(f.repeat)];
  const cfg = resolveTarget(target, f.set);
  const decoders = (f.decoder ?? cfg.data.decoder).split(',').map((d) => d.trim());
  for (const d of decoders) if (!['auto', 'native', 'sharp'].includes(d)) throw new ConfigError(`--decoder: '${d}' is not one of auto, native, sharp`);
  out(`${cfg.data.name} from ${cfg.data.path ?? '(default)'}: ${N} images per run in batches of ${B}, ${f.eval ? 'evaluation' : 'training'} pipeline (decode + ${f.eval ? 'resize + center crop' : 'augment'} + batch assembly), ${R} runs each`);
  out(`image size ${cfg.data.image_size}; ${cpuBudget().cpus} usable CPUs (${cpuBudget().reason}); UV_THREADPOOL_SIZE ${process.env.UV_THREADPOOL_SIZE ?? '4 (default)'}`);
  out(`\n${'decoder'.padStart(7)} ${'workers'.padStart(7)} ${'best img/s'.padStart(11)} ${'median img/s'.padStart(13)}  runs`);
  for (const [want, k] of decoders.flatMap((d) => ks.map((k) => [d, k] as const))) {
    const decoder = chooseDecoder(want as 'auto' | 'native' | 'sharp');
    const ds = await loadDataset({ ...cfg.data, workers: k, decoder }, { quiet: true });
    const s = ds.train;
    const n = Math.min(N, s.n);
    const rates: number[] = [];
    await s.load([0], { augment: !f.eval, seed: 0, epoch: 0 }); // start the threads
    for (let r = 0; r < R; r++) {
      const order = permutation(s.n, cfg.seed, r);
      const jobs = function* () {
        for (let i = 0; i + B <= n; i += B) yield () => s.load(order.subarray(i, i + B), { augment: !f.eval, seed: cfg.seed, epoch: r });
      };
      const t = performance.now();
      let got = 0;
      for await (const b of prefetch(jobs(), cfg.data.prefetch)) got += b.n;
      rates.push(got / ((performance.now() - t) / 1000));
    }
    out(`${decoder.padStart(7)} ${String(k).padStart(7)} ${rates.length ? Math.max(...rates).toFixed(0).padStart(11) : '-'} ${(rates.length ? median(rates).toFixed(0) : '-').padStart(13)}  ${rates.map((x) => x.toFixed(0)).join(' ')}`);
    await decodePool(k, decoder).close();
  }
}

export function registerData(program: Command): void {
  const data = program.command('data').description('inspect, verify, benchmark and download datasets (a config file or a dataset directory)');
  data
    .command('inspect [config-or-dir]')
    .description('classes, counts, image sizes, and a PNG grid of augmented training samples')
    .option('--set <key=value>', 'override a config key, e.g. --set data.image_size=128 (repeatable)', collect, [])
    .option('-o, --out <file>', 'also write a PNG grid of training samples after augmentation (default: none)')
    .option('-n, --samples <n>', 'images in the grid', '16')
    .action(inspect);
  data
    .command('verify [config-or-dir]')
    .description('decode every image, list the ones that fail; exit 1 if any')
    .option('--set <key=value>', 'override a config key (repeatable)', collect, [])
    .option('-q, --quiet', 'no progress bar')
    .action(async (t, f) => {
      if (!(await verify(t, f))) process.exitCode = 1;
    });
  data
    .command('bench [config-or-dir]')
    .description('images/s of the input pipeline (decode + augment + batch assembly) per number of decoding threads')
    .option('--set <key=value>', 'override a config key (repeatable)', collect, [])
    .option('-w, --workers <list>', 'decoding threads to compare, e.g. 1,2,4 (default 1,2,cores)')
    .option('--decoder <list>', 'JPEG decoders to compare: native, sharp or auto (default data.decoder), e.g. native,sharp')
    .option('--images <n>', 'images per run', '512')
    .option('--batch <n>', 'batch size', '32')
    .option('--repeat <n>', 'runs per setting (report best and median: the machine may be shared)', '3')
    .option('--eval', 'the evaluation pipeline (resize + center crop) instead of training augmentation')
    .action(bench);
  data
    .command('fetch <dataset>')
    .description(`download and verify checksums: ${Object.keys(FETCHABLE).join(' | ')}`)
    .option('-d, --dir <dir>', 'where to put the files (default data/<dataset>)')
    .option('--timeout <ms>', 'give up connecting after this long', '5000')
    .action(async (name: string, f: { dir?: string; timeout: string }) => {
      if (!FETCHABLE[name]) throw new ConfigError(`data fetch: unknown dataset '${name}' (${Object.keys(FETCHABLE).join(', ')}); ImageNet cannot be downloaded automatically (it needs an image-net.org account)`);
      const dir = resolve(f.dir ?? join('data', name));
      const files = await fetchDataset(name, dir, createProgress(false), Number(f.timeout));
      for (const p of files) out(`ok ${p}`);
      out(`${FETCHABLE[name].after}${dir}`);
    });
}
