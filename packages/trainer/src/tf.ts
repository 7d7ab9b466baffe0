// One tfjs for the whole process; the node package reaches tfjs through here.
// The union package '@tensorflow/tfjs' is loaded with require: it registers the gradients, the
// chained operations (x.add(y)) and the cpu backend. Its names are taken from the CommonJS
// exports object, not imported as an ES module: to import it, Node first scans the CommonJS
// bundles for the names they export (2.7 MB for the core and the layers API), which took longer
// than loading tfjs itself (160-300 ms, in every thread that loads it). The types are tfjs's own.
import { createRequire } from 'node:module'
import type * as Core from '@tensorflow/tfjs-core'
import type * as Layers from '@tensorflow/tfjs-layers'
import type {} from '@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops.js'
export type * from '@tensorflow/tfjs-core'
export type * from '@tensorflow/tfjs-layers'

/** The whole of tfjs: what model modules are given, as they may use any of it. */
export const wholeTfjs = createRequire(import.meta.url)('@tensorflow/tfjs') as typeof Core & typeof Layers

// the values dml uses (the compiler names any other as missing)
export const {
  add, addN, backend_util, clipByValue, Conv2D, conv2d, conv2dTranspose, dispose, div, engine, env, fused, getBackend, getGradient,
  getKernel, grad, io, keep, layers, loadLayersModel, log, matMul, maxPool, memory, MomentumOptimizer, mul, neg, pad, randomNormal,
  ready, registerGradient, registerKernel, relu, reverse, round, scalar, sequential, setBackend, sign, softmax, step, sub, sum,
  SGDOptimizer, tensor, tensor2d, tidy, train, transpose, unregisterKernel, variable, version_layers, zeros
} = wholeTfjs
