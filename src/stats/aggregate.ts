// Population statistics from per-batch observations: the PreciseBN aggregation math.
// Pure float64 functions, independent of tfjs, so they can be tested exactly and reused.

/** Statistics one BN call observed on one normalization batch (per channel). */
export interface BatchStats {
  mean: ArrayLike<number>;
  /** Biased variance over the batch's elements (divide by count). */
  variance: ArrayLike<number>;
  /** Elements per channel that the statistics were computed over (B*H*W for a conv layer). */
  count: number;
}

export interface PopulationStats {
  mean: Float64Array;
  variance: Float64Array;
}

/**
 * `pooled`: the paper's estimator. Every sample weighs the same, and the variance of the
 *   batch means is kept: var = N/(N-1) * [E(mu_i^2 + var_i) - E(mu_i)^2], N = total count.
 * `mean-of-var`: the original BN paper's B/(B-1) * mean_i(var_i); it drops the spread of the
 *   batch means, so it underestimates the population variance when batches are small.
 * B and N are per-channel element counts (`count`: B*H*W for a conv layer), as in the BN paper's
 *   conv case (its m = |batch| * p * q); so mean-of-var's correction is count/(count-1).
 */
export type Estimator = 'pooled' | 'mean-of-var';

/**
 * Streams per-batch statistics into float64 running sums, so a PreciseBN pass over N samples
 * keeps O(channels) memory whatever N is. Each sample weighs the same: batch i weighs count_i.
 */
export class StatsAccumulator {
  private total = 0;
  private sumMean: Float64Array;
  private sumSecond: Float64Array; // sum count_i * (mu_i^2 + var_i)
  private sumUnbiasedVar: Float64Array; // sum count_i * var_i * count_i / (count_i - 1)
  constructor(readonly channels: number) {
    this.sumMean = new Float64Array(channels);
    this.sumSecond = new Float64Array(channels);
    this.sumUnbiasedVar = new Float64Array(channels);
  }

  add(b: BatchStats): void {
    const c = this.channels;
    if (b.mean.length !== c || b.variance.length !== c) {
      throw new Error(`aggregateBatchStats: every batch needs ${c} channels (the first batch's), got mean ${b.mean.length}, variance ${b.variance.length}`);
    }
    if (!(b.count >= 1)) throw new Error(`aggregateBatchStats: batch count must be >= 1, got ${b.count}`);
    const n = b.count;
    const unbias = n > 1 ? n / (n - 1) : 1;
    for (let j = 0; j < c; j++) {
      this.sumMean[j] += n * b.mean[j];
      this.sumSecond[j] += n * (b.mean[j] * b.mean[j] + b.variance[j]);
      this.sumUnbiasedVar[j] += n * unbias * b.variance[j];
    }
    this.total += n;
  }

  get count(): number {
    return this.total;
  }

  result(estimator: Estimator): PopulationStats {
    if (this.total === 0) throw new Error('aggregateBatchStats: no batches to aggregate');
    const c = this.channels;
    const mean = new Float64Array(c);
    const variance = new Float64Array(c);
    const corr = this.total > 1 ? this.total / (this.total - 1) : 1;
    for (let j = 0; j < c; j++) {
      mean[j] = this.sumMean[j] / this.total;
      if (estimator === 'pooled') variance[j] = Math.max(0, corr * (this.sumSecond[j] / this.total - mean[j] * mean[j]));
      else if (estimator === 'mean-of-var') variance[j] = this.sumUnbiasedVar[j] / this.total;
      else throw new Error(`aggregateBatchStats: unknown estimator '${estimator as string}' (use 'pooled' or 'mean-of-var')`);
    }
    return { mean, variance };
  }
}

export function aggregateBatchStats(batches: readonly BatchStats[], estimator: Estimator): PopulationStats {
  if (batches.length === 0) throw new Error('aggregateBatchStats: no batches to aggregate');
  const acc = new StatsAccumulator(batches[0].mean.length);
  for (const b of batches) acc.add(b);
  return acc.result(estimator);
}

/**
 * One EMA step, PyTorch convention: the buffer holds the *unbiased* variance, so the biased batch
 * variance is scaled by n/(n-1) before mixing. decay = 1 - PyTorch momentum (paper: 0.9).
 */
export function emaUpdate(pop: PopulationStats, batch: BatchStats, decay: number): PopulationStats {
  const n = batch.count;
  const unbias = n > 1 ? n / (n - 1) : 1;
  const c = pop.mean.length;
  const mean = new Float64Array(c);
  const variance = new Float64Array(c);
  for (let j = 0; j < c; j++) {
    mean[j] = decay * pop.mean[j] + (1 - decay) * batch.mean[j];
    variance[j] = decay * pop.variance[j] + (1 - decay) * unbias * batch.variance[j];
  }
  return { mean, variance };
}
