// The package entry: what bnlab offers to code outside the CLI.
export { aggregateBatchStats, createEstimator, emaUpdate, MeanOfVarEstimator, PooledEstimator, StatsAccumulator } from './bn/estimators.js';
export type { BatchStats, Estimator, PopulationEstimator, PopulationStats } from './bn/estimators.js';
export { configSchema } from './config/schema.js';
export type { Config } from './config/schema.js';
export { loadConfig, validateConfig } from './config/load.js';
