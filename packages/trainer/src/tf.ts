// One tfjs for the whole process (or tab); the node package reaches tfjs through here. Which
// module loads it is package.json's imports' choice: tfjs-node.ts in Node, tfjs-browser.ts in a
// browser. The types are tfjs's own.
import { wholeTfjs } from '#tfjs'
import type {} from '@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops.js'
export type * from '@tensorflow/tfjs-core'
export type * from '@tensorflow/tfjs-layers'

/** The whole of tfjs: what model modules are given, as they may use any of it. */
export { wholeTfjs }

// the values dml uses (the compiler names any other as missing)
export const {
  add, addN, backend_util, clipByValue, Conv2D, conv2d, conv2dTranspose, dispose, div, engine, env, fused, getBackend, getGradient,
  getKernel, grad, io, keep, layers, loadLayersModel, log, matMul, maxPool, memory, MomentumOptimizer, mul, neg, pad, randomNormal,
  ready, registerGradient, registerKernel, relu, reverse, round, scalar, sequential, setBackend, sign, softmax, step, sub, sum,
  SGDOptimizer, tensor, tensor2d, tidy, train, transpose, unregisterKernel, variable, version_layers, zeros
} = wholeTfjs
