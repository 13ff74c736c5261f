// The images a bnlab run trains and evaluates on, as JSON, for the PyTorch twin
// (scripts/torch_twin.py) and anything else that must use exactly bnlab's data.
//
//   npx tsx scripts/subset-indices.ts [-c FILE ...] [--set key=value ...] [--seed S] [--no-orders]
//
// The config is resolved by bnlab's own loader (same merging, --set parsing and validation as
// `bnlab train`; a resolved results/<run>/config.yaml works too). --seed S is --set seed=S.
// Printed (one JSON object on stdout):
//   config           the resolved config (every key)
//   dataset          name, source (the directory bnlab read), num_classes, full_train_n/full_val_n,
//                    train_n/val_n after the limits, mean/std (bnlab's per-channel normalization, from
//                    the limited training set), height/width/channels, train_sha256/val_sha256 (of the
//                    limited sets' uint8 NHWC images followed by their labels as uint8, so a consumer
//                    can prove it holds the same images in the same order)
//   train_indices    indices into the full training split of the images bnlab trains on, in the order
//                    of bnlab's (limited) training set: data.train_limit through bnlab's limitSet
//                    (balancedOrder) itself; 0..n-1 without a limit
//   val_indices      the same for data.val_limit; null when val_limit is null (all validation images)
//   eval_orders      (unless --no-orders) positions into the *limited* sets, for the config's seed:
//                    val_minibatch  the order bnlab's mini-batch evaluation (val_err_minibatch) reads
//                                   the validation set in; its NBS groups are consecutive runs of it
//                                   (src/bn/modes.ts testOrder)
//                    train_minibatch the training samples of train_err_nbs, in order
//                                   (src/train/trainer.ts evaluateModes)
// Only in-memory datasets (fashion-mnist, fashion-mnist-mini, mnist, cifar10, synthetic).
import { createHash } from 'node:crypto';
import { ConfigError, loadConfig } from '../src/config/load.js';
import { limitSet, loadDataset, type ImageSet, type MemorySplit } from '../src/data/dataset.js';
import { permutation } from '../src/data/loader.js';
import { testOrder } from '../src/bn/modes.js';

function usage(msg: string): never {
  process.stderr.write(`subset-indices: ${msg}\nusage: npx tsx scripts/subset-indices.ts [-c FILE ...] [--set key=value ...] [--seed S] [--no-orders]\n`);
  process.exit(2);
}

const files: string[] = [];
const sets: string[] = [];
let orders = true;
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const value = () => (i + 1 < argv.length ? argv[++i] : usage(`${a} needs a value`));
  if (a === '-c' || a === '--config') files.push(value());
  else if (a === '--set') sets.push(value());
  else if (a === '--seed') {
    const s = value();
    if (!/^\d+$/.test(s)) usage(`--seed must be a non-negative integer, got '${s}'`);
    sets.push(`seed=${s}`);
  } else if (a === '--no-orders') orders = false;
  else if (a === '-h' || a === '--help') {
    process.stdout.write('usage: npx tsx scripts/subset-indices.ts [-c FILE ...] [--set key=value ...] [--seed S] [--no-orders]\n');
    process.exit(0);
  } else usage(`unknown argument '${a}'`);
}

/**
 * A stand-in image set whose "image" i is the 4 bytes of the integer i: passed through bnlab's own
 * limitSet, its images spell out which indices (in which order) bnlab keeps. Nothing of the
 * selection logic is repeated here.
 */
function indexSet(labels: Int32Array): ImageSet {
  const ids = Int32Array.from({ length: labels.length }, (_, i) => i);
  return { images: new Uint8Array(ids.buffer), labels, n: labels.length, height: 1, width: 1, channels: 4 };
}

function chosenIndices(labels: Int32Array, limit: number | null, numClasses: number): Int32Array {
  const s = limitSet(indexSet(labels), limit, numClasses);
  const bytes = Uint8Array.from(s.images); // own, aligned buffer
  return new Int32Array(bytes.buffer, 0, s.n);
}

function sha256(set: MemorySplit): string {
  return createHash('sha256').update(set.images).update(Uint8Array.from(set.labels)).digest('hex');
}

/** The limited split must be exactly the full split at those indices (images and labels). */
function check(full: MemorySplit, limited: MemorySplit, idx: Int32Array, what: string): void {
  const size = full.height * full.width * full.channels;
  const bad = () => {
    throw new Error(`${what}: bnlab's limited set is not the full set at the computed indices (limitSet changed?)`);
  };
  if (idx.length !== limited.n) bad();
  for (let k = 0; k < idx.length; k++) {
    const i = idx[k];
    if (full.labels[i] !== limited.labels[k]) bad();
    const a = full.images.subarray(i * size, (i + 1) * size);
    const b = limited.images.subarray(k * size, (k + 1) * size);
    for (let j = 0; j < size; j++) if (a[j] !== b[j]) bad();
  }
}

async function main(): Promise<void> {
  const cfg = loadConfig(files.length ? files : undefined, sets);
  if (cfg.data.name === 'imagefolder') usage('data.name imagefolder is file-backed; this script handles in-memory datasets only');
  const quiet = { quiet: true };
  const full = await loadDataset({ ...cfg.data, train_limit: null, val_limit: null, corruption: null }, quiet);
  const data = await loadDataset(cfg.data, quiet);
  const [fullTrain, fullVal] = [full.train as MemorySplit, full.val as MemorySplit];
  const [train, val] = [data.train as MemorySplit, data.val as MemorySplit];
  const trainIdx = chosenIndices(fullTrain.labels, cfg.data.train_limit, data.numClasses);
  const valIdx = chosenIndices(fullVal.labels, cfg.data.val_limit, data.numClasses);
  if (!cfg.data.corruption) {
    check(fullTrain, train, trainIdx, 'train');
    check(fullVal, val, valIdx, 'val');
  }
  const out: Record<string, unknown> = {
    config: cfg,
    dataset: {
      name: data.name,
      source: data.source,
      num_classes: data.numClasses,
      full_train_n: fullTrain.n,
      full_val_n: fullVal.n,
      train_n: train.n,
      val_n: val.n,
      height: train.height,
      width: train.width,
      channels: train.channels,
      mean: data.mean,
      std: data.std,
      train_sha256: sha256(train),
      val_sha256: sha256(val),
    },
    train_indices: Array.from(trainIdx),
    val_indices: cfg.data.val_limit === null ? null : Array.from(valIdx),
  };
  if (orders) {
    out.eval_orders = {
      val_minibatch: Array.from(testOrder(val, cfg, { mode: 'minibatch', nbs: cfg.bn.nbs })!),
      // As src/train/trainer.ts evaluateModes picks train_err_nbs's fixed subset (not exported there).
      train_minibatch: Array.from(permutation(train.n, cfg.seed, 0x7472).subarray(0, Math.min(cfg.eval.train_minibatch_samples, train.n))),
    };
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e: Error) => {
  process.stderr.write(`subset-indices: ${e.message}\n`);
  process.exit(e instanceof ConfigError ? 2 : 1);
});
