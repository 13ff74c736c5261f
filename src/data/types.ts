// The shapes every dataset reader produces and the trainer consumes (no code: readers import
// these without importing the factory in dataset.ts, so the data modules form no import circle).
export interface ImageSet {
  images: Uint8Array; // n * height * width * channels, NHWC
  labels: Int32Array;
  n: number;
  height: number;
  width: number;
  channels: number;
}

/**
 * One split as the trainer sees it: labels and input geometry up front, images on demand.
 * `load` returns a normalized NHWC batch, with the dataset's training augmentation when asked,
 * deterministic in (seed, epoch, sample index) whatever the order or concurrency of calls.
 * In-memory datasets answer at once; file-backed ones decode asynchronously.
 */
export interface Split {
  n: number;
  labels: Int32Array;
  height: number;
  width: number;
  channels: number;
  load(indices: ArrayLike<number>, o: { augment: boolean; seed: number; epoch: number }): Promise<Batch>;
  /** File-backed splits: images that could not be decoded so far (each replaced by the next readable one). */
  failures?(): { file: string; error: string }[];
}

/** An in-memory split: the whole uint8 image array is there (Fashion-MNIST, synthetic). */
export type MemorySplit = ImageSet & Split;

export interface Dataset<S extends Split = Split> {
  name: string;
  numClasses: number;
  classNames: string[];
  train: S;
  val: S;
  mean: number[]; // per channel, in [0,1] pixel units, from the (limited) train set
  std: number[];
  source: string; // where it was read from
}

/** A normalized batch as the model takes it. */
export interface Batch {
  x: Float32Array; // NHWC, (pixel/255 - mean[c]) / std[c]
  y: Int32Array;
  n: number;
  height: number;
  width: number;
  channels: number;
}
