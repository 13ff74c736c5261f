// Population statistics from per-batch observations: the EMA and PreciseBN math.
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

/** n/(n-1): the unbiased-variance factor for n elements (1 for a single element). The one copy. */
export const besselFactor = (n: number): number => (n > 1 ? n / (n - 1) : 1);

/**
 * A population-statistics estimator: fed one batch's statistics at a time, in O(channels) memory
 * whatever N is, then asked for the result. Each sample weighs the same: batch i weighs count_i.
 * (fvcore's precise_bn has the same two as _PopulationVarianceEstimator and _MeanOfBatchVarianceEstimator.)
 */
export interface PopulationEstimator {
  readonly channels: number;
  /** Elements per channel seen so far (N). */
  readonly count: number;
  add(b: BatchStats): void;
  result(): PopulationStats;
}

/** What both estimators share: the count, the weighted sum of batch means, and the input checks. */
abstract class WeightedMeans {
  protected total = 0;
  protected sumMean: Float64Array;
  constructor(readonly channels: number) {
    this.sumMean = new Float64Array(channels);
  }
  get count(): number {
    return this.total;
  }
  add(b: BatchStats): void {
    const c = this.channels;
    if (b.mean.length !== c || b.variance.length !== c) {
      throw new Error(`aggregateBatchStats: every batch needs ${c} channels (the first batch's), got mean ${b.mean.length}, variance ${b.variance.length}`);
    }
    if (!(b.count >= 1)) throw new Error(`aggregateBatchStats: batch count must be >= 1, got ${b.count}`);
    for (let j = 0; j < c; j++) this.sumMean[j] += b.count * b.mean[j];
    this.addVariance(b);
    this.total += b.count;
  }
  protected abstract addVariance(b: BatchStats): void;
  protected abstract varianceOf(j: number, mean: number): number;
  result(): PopulationStats {
    if (this.total === 0) throw new Error('aggregateBatchStats: no batches to aggregate');
    const mean = new Float64Array(this.channels);
    const variance = new Float64Array(this.channels);
    for (let j = 0; j < this.channels; j++) {
      mean[j] = this.sumMean[j] / this.total;
      variance[j] = this.varianceOf(j, mean[j]);
    }
    return { mean, variance };
  }
}

/** `pooled`: var = N/(N-1) * [sum_i count_i (mu_i^2 + var_i) / N - mean^2]. */
export class PooledEstimator extends WeightedMeans {
  private sumSecond = new Float64Array(this.channels);
  protected addVariance(b: BatchStats): void {
    for (let j = 0; j < this.channels; j++) this.sumSecond[j] += b.count * (b.mean[j] * b.mean[j] + b.variance[j]);
  }
  protected varianceOf(j: number, mean: number): number {
    return Math.max(0, besselFactor(this.total) * (this.sumSecond[j] / this.total - mean * mean));
  }
}

/** `mean-of-var`: var = sum_i count_i * var_i * count_i/(count_i - 1) / N (the spread of the batch means is dropped). */
export class MeanOfVarEstimator extends WeightedMeans {
  private sumUnbiasedVar = new Float64Array(this.channels);
  protected addVariance(b: BatchStats): void {
    const unbias = besselFactor(b.count);
    for (let j = 0; j < this.channels; j++) this.sumUnbiasedVar[j] += b.count * unbias * b.variance[j];
  }
  protected varianceOf(j: number): number {
    return this.sumUnbiasedVar[j] / this.total;
  }
}

export function createEstimator(estimator: Estimator, channels: number): PopulationEstimator {
  if (estimator === 'pooled') return new PooledEstimator(channels);
  if (estimator === 'mean-of-var') return new MeanOfVarEstimator(channels);
  throw new Error(`aggregateBatchStats: unknown estimator '${estimator as string}' (use 'pooled' or 'mean-of-var')`);
}

/** Both estimators over the same batches (the package's streaming API: result(estimator)). */
export class StatsAccumulator {
  private readonly estimators: Record<Estimator, PopulationEstimator>;
  constructor(readonly channels: number) {
    this.estimators = { pooled: new PooledEstimator(channels), 'mean-of-var': new MeanOfVarEstimator(channels) };
  }
  add(b: BatchStats): void {
    this.estimators.pooled.add(b);
    this.estimators['mean-of-var'].add(b);
  }
  get count(): number {
    return this.estimators.pooled.count;
  }
  result(estimator: Estimator): PopulationStats {
    const e = this.estimators[estimator];
    if (!e) return createEstimator(estimator, this.channels).result(); // names the unknown estimator
    return e.result();
  }
}

export function aggregateBatchStats(batches: readonly BatchStats[], estimator: Estimator): PopulationStats {
  if (batches.length === 0) throw new Error('aggregateBatchStats: no batches to aggregate');
  const acc = createEstimator(estimator, batches[0].mean.length);
  for (const b of batches) acc.add(b);
  return acc.result();
}

/**
 * One EMA step, PyTorch convention: the buffer holds the *unbiased* variance, so the biased batch
 * variance is scaled by n/(n-1) before mixing. decay = 1 - PyTorch momentum (paper: 0.9).
 */
export function emaUpdate(pop: PopulationStats, batch: BatchStats, decay: number): PopulationStats {
  const unbias = besselFactor(batch.count);
  const c = pop.mean.length;
  const mean = new Float64Array(c);
  const variance = new Float64Array(c);
  for (let j = 0; j < c; j++) {
    mean[j] = decay * pop.mean[j] + (1 - decay) * batch.mean[j];
    variance[j] = decay * pop.variance[j] + (1 - decay) * unbias * batch.variance[j];
  }
  return { mean, variance };
}
