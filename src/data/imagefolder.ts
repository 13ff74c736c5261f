// ImageNet-style folders: root/train/<class>/*.JPEG and root/val/<class>/*.JPEG (or the original
// flat ILSVRC val/ with a label file), decoded with sharp in worker threads and augmented with the
// paper's recipe. The file index (paths, labels, image sizes) is built once and cached; it is
// rebuilt when any indexed directory's mtime changes (adding, removing or renaming a file does
// that), and a file overwritten in place (its own mtime or size changed) has its entry re-read.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { sharp } from '../util/sharp.js';
import { evalPlan, trainPlan, type RrcOptions } from './augment.js';
import { corrupt, type Corruption } from './corrupt.js';
import { decodePool } from './decode-pool.js';
import type { Batch } from './loader.js';
import type { Split } from './types.js';
import { Rng } from '../util/rng.js';
import { createProgress } from '../util/progress.js';

export const IMAGE_EXT = /\.(jpe?g|png|webp|tiff?|gif|avif)$/i;
/** IMAGE_EXT as a reader wants it in messages. */
const IMAGE_EXT_LIST = '.jpg .jpeg .png .webp .tif .tiff .gif .avif';
export const IMAGENET_MEAN = [0.485, 0.456, 0.406];
export const IMAGENET_STD = [0.229, 0.224, 0.225];
const INDEX_VERSION = 3;

export interface SplitIndex {
  files: string[]; // relative to the dataset root
  labels: number[];
  widths: number[]; // 0 when the header could not be read
  heights: number[];
  mtimes: number[]; // each file's mtimeMs and size when its header was read
  sizes: number[];
  /** directories and entries the walk could not read (symlink loops, no permission, dangling
   *  links): skipped, and reported with the split's unreadable images */
  skipped: Failure[];
}

export interface FolderIndex {
  version: number;
  root: string;
  classes: string[];
  layout: { val: 'class-folders' | 'flat' };
  train: SplitIndex;
  val: SplitIndex;
  stamps: Record<string, number>; // path -> mtimeMs of every indexed directory and the label file
}

export interface FolderOptions {
  valLabels?: string | null;
  cacheDir?: string | null;
  quiet?: boolean;
}

const isDir = (p: string) => existsSync(p) && statSync(p).isDirectory();
const sorted = (xs: string[]) => xs.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)); // byte order, as Python's sorted

const REASON: Record<string, string> = { ELOOP: 'symlink loop', EACCES: 'permission denied', ENOENT: 'dangling symlink' };
const why = (e: unknown) => {
  const err = e as NodeJS.ErrnoException;
  return err.code ? `${err.code}${REASON[err.code] ? ` (${REASON[err.code]})` : ''}` : err.message;
};

/**
 * All image files under dir (recursive, sorted, as torchvision's ImageFolder), recording directory
 * mtimes. What cannot be read (a directory without permission, a symlink loop, a dangling link)
 * is skipped and recorded, not fatal: one bad folder must not stop a run over a million images.
 * A directory symlink back to one of its ancestors is a loop too (it would index its images again
 * under ever longer paths until ELOOP).
 */
function walk(dir: string, stamps: Record<string, number>, out: string[], skipped: Failure[], ancestors: Set<string> = new Set()): string[] {
  let entries: string[];
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(dir);
    entries = sorted(readdirSync(dir));
  } catch (e) {
    skipped.push({ file: dir, error: `directory skipped: ${why(e)}; its images are not used (fix it, then touch its parent folder to re-index)` });
    return out;
  }
  const id = `${st.dev}:${st.ino}`;
  if (ancestors.has(id)) {
    skipped.push({ file: dir, error: 'directory skipped: symlink loop (it leads back to a folder above it); its images are not used' });
    return out;
  }
  stamps[dir] = st.mtimeMs;
  ancestors.add(id);
  for (const e of entries) {
    const p = join(dir, e);
    let child: ReturnType<typeof statSync>;
    try {
      child = statSync(p);
    } catch (err) {
      skipped.push({ file: p, error: `skipped: ${why(err)}` });
      continue;
    }
    if (child.isDirectory()) walk(p, stamps, out, skipped, ancestors);
    else if (IMAGE_EXT.test(e)) out.push(p);
  }
  ancestors.delete(id);
  return out;
}

/** Entries of a top-level folder (root, train/, val/), or an error saying which one cannot be read. */
function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch (e) {
    throw new Error(`imagefolder: cannot read ${dir}: ${why(e)}; fix its permissions`);
  }
}

/**
 * Reads a label file for a flat val/ folder. Accepted, one image per line ('#' comments and a
 * header line without a known label are skipped):
 *  - `FILE LABEL` or `FILE,LABEL ...` (e.g. Caffe's val.txt, Kaggle's LOC_val_solution.csv): FILE
 *    with or without extension; LABEL a class folder name (wnid) or a 0-based index into the
 *    sorted class folders;
 *  - `LABEL` alone: the i-th line labels the i-th file of val/ in sorted order.
 * Note: the devkit's ILSVRC2012_validation_ground_truth.txt holds 1-based ILSVRC IDs, which are
 * NOT sorted-wnid indices; convert it to wnids (or use LOC_val_solution.csv) first.
 */
export function readValLabels(file: string, names: string[], classes: string[]): number[] {
  const byName = new Map(classes.map((c, i) => [c, i]));
  const toLabel = (tok: string, line: number): number => {
    if (byName.has(tok)) return byName.get(tok)!;
    if (/^\d+$/.test(tok) && Number(tok) < classes.length) return Number(tok);
    throw new Error(`${file}:${line}: label '${tok}' is neither a class folder name nor an index 0..${classes.length - 1}`);
  };
  const lines = readFileSync(file, 'utf8').split(/\r?\n/).map((l, i) => ({ text: l.trim(), line: i + 1 })).filter((l) => l.text && !l.text.startsWith('#'));
  const pairs = lines.map((l) => ({ ...l, toks: l.text.split(/[\s,]+/) }));
  if (pairs.length && pairs[0].toks.length > 1 && !byName.has(pairs[0].toks[1]) && !/^\d+$/.test(pairs[0].toks[1])) pairs.shift(); // header
  const labels = new Array<number>(names.length).fill(-1);
  if (pairs.every((p) => p.toks.length === 1)) {
    if (pairs.length !== names.length) throw new Error(`${file}: ${pairs.length} labels for ${names.length} images in val/; one label per image in sorted file order expected`);
    pairs.forEach((p, i) => (labels[i] = toLabel(p.toks[0], p.line)));
    return labels;
  }
  const stem = (n: string) => n.replace(/\.[^.\/]+$/, '');
  const pos = new Map<string, number>();
  names.forEach((n, i) => (pos.set(n, i), pos.set(stem(n), i)));
  for (const p of pairs) {
    const i = pos.get(p.toks[0]) ?? pos.get(stem(p.toks[0]));
    if (i !== undefined) labels[i] = toLabel(p.toks[1], p.line);
  }
  const missing = labels.findIndex((l) => l < 0);
  if (missing >= 0) throw new Error(`${file}: no label for val image ${names[missing]} (${labels.filter((l) => l < 0).length} unlabelled); fix the label file or remove the images`);
  return labels;
}

function fileStamps(root: string, files: string[]): { mtimes: number[]; sizes: number[] } {
  const st = files.map((f) => statSync(join(root, f)));
  return { mtimes: st.map((s) => s.mtimeMs), sizes: st.map((s) => s.size) };
}

async function imageSizes(root: string, files: string[], quiet: boolean): Promise<{ widths: number[]; heights: number[] }> {
  const widths = new Array<number>(files.length).fill(0);
  const heights = new Array<number>(files.length).fill(0);
  const progress = createProgress(quiet || files.length < 2000);
  progress.start('index sizes', files.length);
  let next = 0;
  let done = 0;
  // Header reads run in libuv's pool; 16 in flight keeps it busy.
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < files.length) {
        const i = next++;
        try {
          const m = await (await sharp(join(root, files[i]))).metadata();
          widths[i] = m.width ?? 0;
          heights[i] = m.height ?? 0;
        } catch {
          // unreadable header: left 0x0, reported as a failure when loaded
        }
        if (++done % 1000 === 0) progress.update(done);
      }
    }),
  );
  progress.stop();
  return { widths, heights };
}

export async function buildIndex(rootIn: string, o: FolderOptions = {}): Promise<FolderIndex> {
  const root = resolve(rootIn);
  const fix = `Expected ${root}/train/<class>/*.JPEG and ${root}/val/<class>/*.JPEG (or a flat val/ with data.val_labels)`;
  if (!isDir(root)) throw new Error(`imagefolder: ${root} is not a directory. Set data.path to the dataset root. ${fix}`);
  const trainDir = join(root, 'train');
  const valDir = join(root, 'val');
  for (const d of [trainDir, valDir]) if (!isDir(d)) throw new Error(`imagefolder: ${d} is missing. ${fix}`);
  const stamps: Record<string, number> = { [root]: statSync(root).mtimeMs };
  const classes = sorted(listDir(trainDir).filter((c) => isDir(join(trainDir, c))));
  if (classes.length < 2) throw new Error(`imagefolder: ${trainDir} has ${classes.length} class folders; need at least 2. ${fix}`);
  stamps[trainDir] = statSync(trainDir).mtimeMs;
  const split = (dirs: { dir: string; label: number }[]) => {
    const files: string[] = [];
    const labels: number[] = [];
    const skipped: Failure[] = [];
    for (const { dir, label } of dirs) {
      // The dataset root and train/ (or val/) count as ancestors: a link back to them is a loop.
      const above = new Set([root, dirname(dir)].map((d) => `${statSync(d).dev}:${statSync(d).ino}`));
      const found = walk(dir, stamps, [], skipped, above);
      // As torchvision's ImageFolder: a class without images is an error, not a class never seen.
      if (!found.length) {
        const lost = skipped.filter((k) => k.file === dir || k.file.startsWith(`${dir}/`));
        const note = lost.length ? ` (${lost.length} unreadable ${lost.length === 1 ? 'entry' : 'entries'} in it, e.g. ${lost[0].file}: ${lost[0].error})` : '';
        throw new Error(`imagefolder: class folder ${dir} holds no images (${IMAGE_EXT_LIST})${note}; remove the folder or add images to it`);
      }
      for (const f of found) files.push(relative(root, f)), labels.push(label);
    }
    return { files, labels, skipped: skipped.map((k) => ({ file: relative(root, k.file), error: k.error })) };
  };
  const train = split(classes.map((c, label) => ({ dir: join(trainDir, c), label })));
  const valSub = listDir(valDir).filter((c) => isDir(join(valDir, c)));
  let val: { files: string[]; labels: number[]; skipped: Failure[] };
  let layout: FolderIndex['layout']['val'];
  if (valSub.length) {
    const unknown = valSub.filter((c) => !classes.includes(c));
    if (unknown.length) throw new Error(`imagefolder: val/ has class folders not in train/: ${unknown.slice(0, 5).join(', ')}${unknown.length > 5 ? ', ...' : ''}`);
    val = split(classes.filter((c) => valSub.includes(c)).map((c) => ({ dir: join(valDir, c), label: classes.indexOf(c) })));
    layout = 'class-folders';
  } else {
    stamps[valDir] = statSync(valDir).mtimeMs;
    const names = sorted(listDir(valDir).filter((f) => IMAGE_EXT.test(f)));
    if (!o.valLabels) throw new Error(`imagefolder: ${valDir} holds ${names.length} images directly (the original ILSVRC layout); set data.val_labels to a label file (see \`bnlab config\`), or sort val/ into class folders`);
    const lf = resolve(root, o.valLabels);
    if (!existsSync(lf)) throw new Error(`imagefolder: data.val_labels file ${lf} does not exist`);
    stamps[lf] = statSync(lf).mtimeMs;
    val = { files: names.map((n) => relative(root, join(valDir, n))), labels: readValLabels(lf, names, classes), skipped: [] };
    layout = 'flat';
  }
  if (train.files.length === 0) throw new Error(`imagefolder: no images (${IMAGE_EXT_LIST}) under ${trainDir}/<class>/`);
  if (val.files.length === 0) throw new Error(`imagefolder: no images (${IMAGE_EXT_LIST}) under ${valDir}`);
  const quiet = !!o.quiet;
  const withSizes = async (s: { files: string[]; labels: number[]; skipped: Failure[] }): Promise<SplitIndex> => ({ ...s, ...fileStamps(root, s.files), ...(await imageSizes(root, s.files, quiet)) });
  const index: FolderIndex = { version: INDEX_VERSION, root, classes, layout: { val: layout }, train: await withSizes(train), val: await withSizes(val), stamps };
  const skipped = [...index.train.skipped, ...index.val.skipped];
  if (skipped.length && !quiet) process.stderr.write(`imagefolder: ${skipped.length} unreadable entries skipped under ${root}, e.g. ${join(root, skipped[0].file)}: ${skipped[0].error}\n`);
  return index;
}

export function cacheFile(root: string, o: FolderOptions = {}): string {
  const dir = o.cacheDir ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'bnlab');
  const key = createHash('sha1').update(`${resolve(root)}\0${o.valLabels ?? ''}`).digest('hex').slice(0, 16);
  return join(resolve(dir), `imagefolder-${key}.json`);
}

function stillValid(ix: FolderIndex): boolean {
  if (ix.version !== INDEX_VERSION) return false;
  for (const [p, m] of Object.entries(ix.stamps)) {
    try {
      if (statSync(p).mtimeMs !== m) return false;
    } catch {
      return false;
    }
  }
  return true;
}

/**
 * Files overwritten in place (same name, so no directory changed): re-read their headers.
 * Returns how many entries changed; null when a file vanished (then the index is rebuilt).
 */
async function refreshChanged(ix: FolderIndex, quiet: boolean): Promise<number | null> {
  let changed = 0;
  for (const s of [ix.train, ix.val]) {
    let now: ReturnType<typeof fileStamps>;
    try {
      now = fileStamps(ix.root, s.files);
    } catch {
      return null;
    }
    const stale = s.files.map((_, i) => i).filter((i) => now.mtimes[i] !== s.mtimes[i] || now.sizes[i] !== s.sizes[i]);
    if (!stale.length) continue;
    const fresh = await imageSizes(ix.root, stale.map((i) => s.files[i]), quiet);
    stale.forEach((i, k) => ((s.widths[i] = fresh.widths[k]), (s.heights[i] = fresh.heights[k]), (s.mtimes[i] = now.mtimes[i]), (s.sizes[i] = now.sizes[i])));
    changed += stale.length;
  }
  return changed;
}

/** The cached index when every stamped directory is unchanged (files overwritten in place
 *  re-read), else a fresh one; cached either way. */
export async function loadIndex(root: string, o: FolderOptions = {}): Promise<{ index: FolderIndex; cached: boolean; file: string }> {
  const file = cacheFile(root, o);
  let index: FolderIndex | null = null;
  try {
    const ix = JSON.parse(readFileSync(file, 'utf8')) as FolderIndex;
    if (stillValid(ix)) {
      const changed = await refreshChanged(ix, !!o.quiet);
      if (changed === 0) return { index: ix, cached: true, file };
      if (changed !== null) index = ix;
    }
  } catch {
    // no or unreadable cache: rebuild
  }
  index ??= await buildIndex(root, o);
  try {
    mkdirSync(join(file, '..'), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(index));
    renameSync(tmp, file);
  } catch {
    // a read-only cache location only costs a rebuild next time
  }
  return { index, cached: false, file };
}

export interface FolderSplitOptions {
  size: number;
  workers: number;
  decoder: 'native' | 'sharp';
  shrinkOnLoad: boolean;
  onError: 'skip' | 'fail';
  corruption: Corruption | null;
  rrc: RrcOptions;
  flip: boolean;
  mean: number[];
  std: number[];
}

export interface Failure {
  file: string;
  error: string;
}

/** A Split that can say which files failed to decode and what each file is. */
export interface FileSplit extends Split {
  failures(): Failure[];
  file(i: number): string;
}

/** `subset`: indices into the index's split (train_limit/val_limit), or null for all. */
export function folderSplit(root: string, ix: SplitIndex, subset: ArrayLike<number> | null, o: FolderSplitOptions): FileSplit {
  const pick = subset ? Array.from(subset) : ix.files.map((_, i) => i);
  const files = pick.map((i) => join(root, ix.files[i]));
  const widths = pick.map((i) => ix.widths[i]);
  const heights = pick.map((i) => ix.heights[i]);
  const labels = Int32Array.from(pick, (i) => ix.labels[i]);
  const n = files.length;
  const failed = new Map<number, string>();
  const pool = decodePool(o.workers, o.decoder);
  const S = o.size;
  const hwc = S * S * 3;
  const lut = new Float32Array(256 * 3);
  for (let c = 0; c < 3; c++) for (let v = 0; v < 256; v++) lut[c * 256 + v] = (v / 255 - o.mean[c]) / o.std[c];

  // One image as uint8 HWC plus whether to mirror it; throws with the file name on failure.
  const decodeOne = async (i: number, augment: boolean, seed: number, epoch: number) => {
    if (widths[i] === 0 || heights[i] === 0) {
      // The index could not read the header; ask again for sharp's own message.
      const m = await (await sharp(files[i])).metadata().catch((e: Error) => e);
      throw new Error(m instanceof Error ? m.message : 'unreadable image header (re-index: the file changed?)');
    }
    const plan = augment ? trainPlan(widths[i], heights[i], S, new Rng(seed, epoch, i), o.rrc, o.flip) : evalPlan(widths[i], heights[i], S);
    // Clean images come back normalized and flipped from the thread; corrupted ones as uint8 first.
    const d = await pool.decode({ file: files[i], plan, fastShrink: o.shrinkOnLoad, norm: o.corruption ? null : { mean: o.mean, std: o.std } });
    if (d.width !== S || d.height !== S) throw new Error(`decoded to ${d.width}x${d.height}, expected ${S}x${S}`);
    if (d.data instanceof Float32Array) return { ready: d.data, img: null, flip: false };
    return { ready: null, img: await corrupt(d.data, S, S, 3, o.corruption!, i), flip: plan.flip };
  };

  // A failed image is replaced by the next readable index (wrapping), so batches keep their size
  // and the replacement is the same whatever the concurrency.
  const loadOne = async (i: number, augment: boolean, seed: number, epoch: number) => {
    for (let k = 0; k < n; k++) {
      const j = (i + k) % n;
      if (failed.has(j)) continue;
      try {
        return { j, ...(await decodeOne(j, augment, seed, epoch)) };
      } catch (e) {
        const msg = (e as Error).message;
        failed.set(j, msg);
        if (o.onError === 'fail') throw new Error(`cannot decode ${files[j]}: ${msg} (data.on_error: fail; set data.on_error: skip to replace unreadable images, or run \`bnlab data verify\`)`);
      }
    }
    throw new Error(`none of the ${n} images could be decoded (first: ${files[0]}: ${failed.get(0)})`);
  };

  return {
    n,
    labels,
    height: S,
    width: S,
    channels: 3,
    // Unreadable folders met by the index count with the images that failed to decode.
    failures: () => [...ix.skipped.map((k) => ({ file: join(root, k.file), error: k.error })), ...[...failed].sort((a, b) => a[0] - b[0]).map(([i, error]) => ({ file: files[i], error }))],
    file: (i) => files[i],
    async load(indices, opt): Promise<Batch> {
      const idx = Array.from(indices);
      for (const i of idx) if (!(i >= 0 && i < n)) throw new Error(`imagefolder: index ${i} outside 0..${n - 1}`);
      const x = new Float32Array(idx.length * hwc);
      const y = new Int32Array(idx.length);
      await Promise.all(
        idx.map(async (i, b) => {
          const { j, ready, img, flip } = await loadOne(i, opt.augment, opt.seed, opt.epoch);
          y[b] = labels[j];
          const dst = b * hwc;
          if (ready) return void x.set(ready, dst);
          if (!img) throw new Error('unreachable: decoded image missing');
          for (let r = 0; r < S; r++) {
            for (let col = 0; col < S; col++) {
              const s = (r * S + (flip ? S - 1 - col : col)) * 3;
              const t = dst + (r * S + col) * 3;
              x[t] = lut[img[s]];
              x[t + 1] = lut[256 + img[s + 1]];
              x[t + 2] = lut[512 + img[s + 2]];
            }
          }
        }),
      );
      return { x, y, n: idx.length, height: S, width: S, channels: 3 };
    },
  };
}
