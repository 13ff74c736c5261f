// A run's state now lives in run/state.ts (below bn/ and eval's CLI: `bnlab eval` loads a
// checkpoint without the trainer); re-exported here for the training code that reads it.
export * from '../run/state.js';
