// Local training and evaluation of a registry model on uint8 image data.
import * as tf from './tf.ts'
import type { NamedTensor } from '@dml/protocol'
import type { ImageSet } from './data.ts'
import { shuffled } from './data.ts'
import { denseStack } from './dense-stack.ts'
import type { OptimizerName } from './local-strategy.ts'
import { ReplicaSync, type ReplicaSyncMemory } from './replica-sync.ts'
import { TrainingAborted } from './train-aborted.ts'

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

/** Builds the float batch (values / the set's scale) and one-hot labels for the given example indices. */
export function makeBatch (set: ImageSet, indices: ArrayLike<number>): { xs: tf.Tensor, ys: tf.Tensor } {
  // one-hot in place: two tensors a batch, not the four ops of tf.oneHot (a tenth of an mlp step)
  const y = new Float32Array(indices.length * set.numClasses)
  for (let i = 0; i < indices.length; i++) y[i * set.numClasses + set.labels[indices[i]]] = 1
  return { xs: makeInputs(set, indices), ys: tf.tensor2d(y, [indices.length, set.numClasses]) }
}

/** The examples `indices` of `set`, scaled, as one tensor of inputs. */
function makeInputs (set: ImageSet, indices: ArrayLike<number>): tf.Tensor {
  const pixels = set.exampleShape.reduce((a, b) => a * b, 1)
  const x = new Float32Array(indices.length * pixels)
  for (let i = 0; i < indices.length; i++) {
    const idx = indices[i]
    const src = set.images.subarray(idx * pixels, (idx + 1) * pixels)
    for (let p = 0; p < pixels; p++) x[i * pixels + p] = src[p] / set.scale
  }
  return tf.tensor(x, [indices.length, ...set.exampleShape])
}

export interface TrainOptions {
  samples: number
  batchSize: number
  lr: number
  seed: number
  /** the local optimizer (default sgd), fresh for this training */
  optimizer?: OptimizerName
  /** FedProx: after every step, pull the weights towards the start weights by lr x mu x (w - start) */
  proxMu?: number
  onProgress?: (done: number, total: number, loss: number) => void
  /** checked between batches: once aborted, training stops with a TrainingAborted error */
  signal?: AbortSignal
  /**
   * Batches shared with other threads training the same round (threads.ts): `shard` is then the
   * round's examples in training order (trainingOrder), and each step takes the next batch no
   * thread has taken, its number counted in `claim[0]` (shared memory), until none is left. A
   * faster thread takes more of them; every batch is trained once.
   */
  claim?: Int32Array
  /** with `claim`: the replicas of the round average their weights every few batches (replica-sync.ts); this is replica `part` */
  replicas?: { memory: ReplicaSyncMemory, part: number }
}

export { TrainingAborted }

export interface TrainResult {
  weights: NamedTensor[]
  loss: number
  numSamples: number
  trainMs: number
}

function makeOptimizer (name: OptimizerName, lr: number): tf.Optimizer {
  if (name === 'momentum') return tf.train.momentum(lr, 0.9)
  if (name === 'adam') return tf.train.adam(lr)
  return tf.train.sgd(lr)
}

/**
 * The examples `samples` of training take from `shard`, in order: whole shuffled passes over the
 * shard, then part of one more. Only whole batches: `samples` is rounded down to a multiple of the
 * batch size (unless it is less than one batch). A last batch of a few examples takes a full step
 * on a noisy gradient, and at the end of local training nothing evens it out: one of 12 examples
 * took a local mlp model from 91.7% to 88.0% test accuracy.
 */
export function trainingOrder (shard: Uint32Array, samples: number, batchSize: number, seed: number): Uint32Array {
  const order = new Uint32Array(samples < batchSize ? samples : samples - samples % batchSize)
  for (let filled = 0, pass = 0; filled < order.length; pass++) {
    const perm = shuffled(shard.length, seed * 7919 + pass)
    for (let i = 0; i < perm.length && filled < order.length; i++) order[filled++] = shard[perm[i]]
  }
  return order
}

/**
 * Trains `model` (already holding the global weights) on `samples` examples drawn from `shard`
 * (trainingOrder), or on the batches it claims of a round shared with other threads (`claim`).
 */
export async function trainLocal (model: tf.LayersModel, set: ImageSet, shard: Uint32Array, options: TrainOptions): Promise<TrainResult> {
  if (shard.length === 0) throw new Error('cannot train on an empty shard')
  const started = performance.now()
  const optimizer = makeOptimizer(options.optimizer ?? 'sgd', options.lr)
  // a stack of dense layers trains in its own layout (dense-stack.ts); other models through layers
  const stack = denseStack(model)
  const variables = stack?.variables ?? model.trainableWeights.map(w => w.read() as tf.Variable)
  const prox = (options.proxMu ?? 0) > 0 ? proximalStep(variables, options.lr * options.proxMu!) : undefined
  const claim = options.claim
  const order = claim !== undefined ? shard : trainingOrder(shard, options.samples, options.batchSize, options.seed)
  const batchCount = Math.ceil(order.length / options.batchSize)
  let taken = 0
  const nextBatch = claim !== undefined ? () => Atomics.add(claim, 0, 1) : () => taken++
  // the loss stays on the backend between reports: reading it every step would wait for each one
  let lossSum = tf.scalar(0)
  // where the step reads its loss itself (the dense stack on wasm), the sum is kept here
  let lossRead = 0
  let batches = 0
  let trained = 0
  const reportEvery = Math.max(1, Math.floor(batchCount / 10))
  let lastYield = performance.now()
  let meanLoss: number
  const sync = claim !== undefined && options.replicas !== undefined ? new ReplicaSync(options.replicas.memory, options.replicas.part) : undefined
  try {
    for (let batch = nextBatch(); ; batch = nextBatch()) {
      if (options.signal?.aborted === true) throw new TrainingAborted(`stopped after ${trained} of ${order.length} samples: ${String((options.signal.reason as Error)?.message ?? options.signal.reason)}`)
      sync?.reach(batch, batchCount, variables)
      if (batch >= batchCount) break
      const indices = order.subarray(batch * options.batchSize, (batch + 1) * options.batchSize)
      const { xs, ys } = makeBatch(set, indices)
      const loss = stack !== undefined ? stack.step(xs, ys, optimizer) : optimizer.minimize(() => modelLoss(model, xs, ys), true, variables)!
      tf.dispose([xs, ys])
      prox?.step()
      if (typeof loss === 'number') lossRead += loss
      else {
        const sum = lossSum.add(loss) as tf.Scalar
        tf.dispose([lossSum, loss])
        lossSum = sum
      }
      sync?.trained()
      batches++
      trained += indices.length
      if (batches % reportEvery === 0) options.onProgress?.(trained, order.length, (lossRead + (await lossSum.data())[0]) / batches)
      // a step never waits for the backend: give timers and sockets (heartbeats) their turn
      if (performance.now() - lastYield > 25) {
        await yieldToEventLoop()
        lastYield = performance.now()
      }
    }
    // a thread that found every shared batch taken trained nothing: no loss, its weights the start's
    // (with replicas, the mean they ended on)
    meanLoss = batches === 0 ? 0 : (lossRead + (await lossSum.data())[0]) / batches
    stack?.writeBack()
  } catch (err) {
    // the other replicas would wait for this one at the next sync point
    sync?.abandon()
    throw err
  } finally {
    tf.dispose(lossSum)
    prox?.dispose()
    stack?.dispose()
    disposeOptimizer(optimizer)
  }
  return { weights: readWeights(model), loss: meanLoss, numSamples: trained, trainMs: performance.now() - started }
}

/** tfjs's MomentumOptimizer.dispose forgets its SGD parent's learning-rate scalar: one tensor a round. */
function disposeOptimizer (optimizer: tf.Optimizer): void {
  optimizer.dispose()
  // by class name: tfjs's optimizers answer instanceof by duck typing, so every one is "a MomentumOptimizer"
  if (optimizer.getClassName() === tf.MomentumOptimizer.className) tf.SGDOptimizer.prototype.dispose.call(optimizer)
}

/**
 * What model.trainOnBatch minimises, without its per-step bookkeeping: the mean categorical
 * cross-entropy of the predicted probabilities (models end in softmax) plus any regularizers.
 */
function modelLoss (model: tf.LayersModel, xs: tf.Tensor, ys: tf.Tensor): tf.Scalar {
  const probs = model.apply(xs, { training: true }) as tf.Tensor
  const crossEntropy = ys.mul(probs.clipByValue(1e-7, 1 - 1e-7).log()).sum(-1).mean().neg() as tf.Scalar
  const regularizers = model.calculateLosses()
  return regularizers.length === 0 ? crossEntropy : tf.addN([crossEntropy, ...regularizers])
}

/**
 * FedProx's proximal term mu/2 |w - start|^2, as its own gradient step after the optimizer's:
 * w <- w - rate (w - start). With SGD this is exactly the step on the sum of the two losses;
 * with momentum or Adam it is the decoupled form (as AdamW decouples weight decay).
 */
function proximalStep (variables: tf.Variable[], rate: number): { step: () => void, dispose: () => void } {
  const start = variables.map(v => tf.keep(v.clone()))
  return {
    step: () => {
      tf.tidy(() => {
        variables.forEach((v, i) => { v.assign(v.sub(v.sub(start[i]).mul(rate))) })
      })
    },
    dispose: () => { tf.dispose(start) }
  }
}

/** A macrotask's turn: Node's setImmediate, a browser's MessageChannel (setTimeout would wait 4 ms once nested). */
const nextTurn: (go: () => void) => void = typeof setImmediate === 'function'
  ? (go) => { setImmediate(go) }
  : (() => {
      const channel = new MessageChannel()
      const waiting: Array<() => void> = []
      channel.port1.onmessage = () => { waiting.shift()?.() }
      return (go: () => void) => { waiting.push(go); channel.port2.postMessage(null) }
    })()

async function yieldToEventLoop (): Promise<void> {
  await new Promise<void>(resolve => { nextTurn(resolve) })
}

/** Examples evaluated at once. */
const EVAL_CHUNK = 1000

export interface Evaluation {
  accuracy: number
  loss: number
  samples: number
}

/**
 * Accuracy and mean cross-entropy on the given examples of `set`, or on its first `examples`;
 * stops with TrainingAborted once `signal` aborts.
 */
export async function evaluate (model: tf.LayersModel, set: ImageSet, examples: number | ArrayLike<number> = set.count, signal?: AbortSignal): Promise<Evaluation> {
  const chosen = typeof examples === 'number' ? undefined : examples
  const total = chosen === undefined ? Math.min(examples as number, set.count) : chosen.length
  if (total === 0) throw new Error('nothing to evaluate on: no examples')
  // a chunk's probabilities are read once and scored here: the argmax, comparison, clip, log and
  // sums as tensor operations were most of an mlp's evaluation on wasm
  const chunk = EVAL_CHUNK
  const classes = set.numClasses
  let correct = 0
  let lossSum = 0
  for (let start = 0; start < total; start += chunk) {
    if (signal?.aborted === true) throw new TrainingAborted(`evaluation stopped after ${start} of ${total} examples`)
    const indices = Array.from({ length: Math.min(chunk, total - start) }, (_, i) => chosen === undefined ? start + i : chosen[start + i])
    const xs = makeInputs(set, indices)
    // the whole chunk at once: predict's default slices it into batches of 32, twice the time
    const probs = tf.tidy(() => model.predict(xs, { batchSize: chunk }) as tf.Tensor)
    const p = await probs.data()
    tf.dispose([xs, probs])
    for (let i = 0; i < indices.length; i++) {
      const row = i * classes
      const label = set.labels[indices[i]]
      let best = 0
      // the first of equal maxima, as argMax takes it; NaN is never the maximum
      for (let c = 1; c < classes; c++) if (p[row + c] > p[row + best]) best = c
      if (best === label) correct++
      lossSum -= Math.log(Math.min(1, Math.max(1e-7, p[row + label])))
    }
    await yieldToEventLoop()
  }
  return { accuracy: correct / total, loss: lossSum / total, samples: total }
}
