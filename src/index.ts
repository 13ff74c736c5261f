// The package entry: what bnlab offers to code outside the CLI.
export { aggregateBatchStats, emaUpdate, StatsAccumulator } from './stats/aggregate.js';
export type { BatchStats, Estimator, PopulationStats } from './stats/aggregate.js';
export { configSchema } from './config/schema.js';
export type { Config } from './config/schema.js';
export { loadConfig, validateConfig } from './config/load.js';
