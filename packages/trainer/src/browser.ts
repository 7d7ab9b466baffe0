// What a browser tab trains with: the trainer's modules that need no Node (no files, no worker
// threads), the same code a node runs. index.ts is everything, for Node.
export * from './data.ts'
export * from './own-data-parse.ts'
export * from './models.ts'
export * from './train.ts'
export * from './kernels.ts'
export * from './aggregation.ts'
export * from './local-strategy.ts'
export * from './server-optimizer.ts'
export * as tf from './tf.ts'
