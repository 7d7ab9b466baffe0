// Local training and evaluation of a registry model on uint8 image data.
import * as tf from '@tensorflow/tfjs'
import type { NamedTensor } from '@dml/protocol'
import type { ImageSet } from './data.ts'
import { shuffled } from './data.ts'

/** The model's weights as named tensors; names are positional so every peer agrees on them. */
export function readWeights (model: tf.LayersModel): NamedTensor[] {
  return model.getWeights().map((w, i) => ({ name: `w${i}`, shape: [...w.shape], values: w.dataSync() as Float32Array }))
}

export function writeWeights (model: tf.LayersModel, weights: NamedTensor[]): void {
  const current = model.getWeights()
  if (current.length !== weights.length) throw new Error(`model has ${current.length} weight tensors, got ${weights.length}`)
  const tensors = weights.map((w, i) => {
    const expected = current[i].shape
    if (expected.length !== w.shape.length || expected.some((d, j) => d !== w.shape[j])) {
      throw new Error(`weight ${i} has shape [${w.shape.join(',')}], the model needs [${expected.join(',')}]`)
    }
    return tf.tensor(w.values, w.shape)
  })
  model.setWeights(tensors)
  tf.dispose(tensors)
}

/** Builds the float batch (pixels / 255) and one-hot labels for the given example indices. */
export function makeBatch (set: ImageSet, indices: ArrayLike<number>): { xs: tf.Tensor, ys: tf.Tensor } {
  const pixels = set.exampleShape.reduce((a, b) => a * b, 1)
  const x = new Float32Array(indices.length * pixels)
  const labels = new Int32Array(indices.length)
  for (let i = 0; i < indices.length; i++) {
    const idx = indices[i]
    const src = set.images.subarray(idx * pixels, (idx + 1) * pixels)
    for (let p = 0; p < pixels; p++) x[i * pixels + p] = src[p] / 255
    labels[i] = set.labels[idx]
  }
  return tf.tidy(() => ({
    xs: tf.tensor(x, [indices.length, ...set.exampleShape]),
    ys: tf.oneHot(tf.tensor1d(labels, 'int32'), set.numClasses)
  }))
}

export interface TrainOptions {
  samples: number
  batchSize: number
  lr: number
  seed: number
  onProgress?: (done: number, total: number, loss: number) => void
  /** checked between batches: once aborted, training stops with a TrainingAborted error */
  signal?: AbortSignal
}

export class TrainingAborted extends Error {
  override name = 'TrainingAborted'
}

export interface TrainResult {
  weights: NamedTensor[]
  loss: number
  numSamples: number
  trainMs: number
}

/**
 * Trains `model` (already holding the global weights) with plain SGD on `samples` examples drawn
 * from `shard`: whole shuffled passes over the shard, then part of one more.
 */
export async function trainLocal (model: tf.LayersModel, set: ImageSet, shard: Uint32Array, options: TrainOptions): Promise<TrainResult> {
  if (shard.length === 0) throw new Error('cannot train on an empty shard')
  const started = performance.now()
  model.compile({ optimizer: tf.train.sgd(options.lr), loss: 'categoricalCrossentropy' })
  const order = new Uint32Array(options.samples)
  for (let filled = 0, pass = 0; filled < order.length; pass++) {
    const perm = shuffled(shard.length, options.seed * 7919 + pass)
    for (let i = 0; i < perm.length && filled < order.length; i++) order[filled++] = shard[perm[i]]
  }
  let lossSum = 0
  let batches = 0
  const reportEvery = Math.max(1, Math.floor(order.length / options.batchSize / 10))
  let lastYield = performance.now()
  for (let start = 0; start < order.length; start += options.batchSize) {
    if (options.signal?.aborted === true) throw new TrainingAborted(`stopped after ${start} of ${order.length} samples: ${String((options.signal.reason as Error)?.message ?? options.signal.reason)}`)
    const { xs, ys } = makeBatch(set, order.subarray(start, start + options.batchSize))
    const loss = await model.trainOnBatch(xs, ys) as number
    tf.dispose([xs, ys])
    lossSum += loss
    batches++
    if (batches % reportEvery === 0) options.onProgress?.(Math.min(start + options.batchSize, order.length), order.length, lossSum / batches)
    // trainOnBatch only awaits microtasks: give timers and sockets (heartbeats) their turn
    if (performance.now() - lastYield > 25) {
      await yieldToEventLoop()
      lastYield = performance.now()
    }
  }
  return { weights: readWeights(model), loss: lossSum / batches, numSamples: order.length, trainMs: performance.now() - started }
}

async function yieldToEventLoop (): Promise<void> {
  await new Promise(resolve => setImmediate(resolve))
}

export interface Evaluation {
  accuracy: number
  loss: number
  samples: number
}

/** Accuracy and mean cross-entropy on the first `limit` examples of `set`; stops with TrainingAborted once `signal` aborts. */
export async function evaluate (model: tf.LayersModel, set: ImageSet, limit = set.count, signal?: AbortSignal): Promise<Evaluation> {
  const total = Math.min(limit, set.count)
  const chunk = 250
  let correct = 0
  let lossSum = 0
  for (let start = 0; start < total; start += chunk) {
    if (signal?.aborted === true) throw new TrainingAborted(`evaluation stopped after ${start} of ${total} examples`)
    const indices = Array.from({ length: Math.min(chunk, total - start) }, (_, i) => start + i)
    const { xs, ys } = makeBatch(set, indices)
    const [hits, loss] = tf.tidy(() => {
      const probs = model.predict(xs) as tf.Tensor
      const hit = probs.argMax(-1).equal(ys.argMax(-1)).sum()
      const ce = ys.mul(probs.clipByValue(1e-7, 1).log()).sum().neg()
      return [hit, ce]
    })
    correct += (await hits.data())[0]
    lossSum += (await loss.data())[0]
    tf.dispose([xs, ys, hits, loss])
    await yieldToEventLoop()
  }
  return { accuracy: correct / total, loss: lossSum / total, samples: total }
}
