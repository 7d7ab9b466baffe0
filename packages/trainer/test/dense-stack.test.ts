// The dense-stack step (dense-stack.ts) against the layers API it replaces, on real MNIST.
import { expect } from 'chai'
import { buildModel, denseStack, initBackend, loadDataset, readWeights, shardIndices, trainLocal, writeWeights, wasmKernelRuns, tf } from '@dml/trainer'
import type { OptimizerName } from '@dml/trainer'
import { maxAbsDiff } from './support/compare.ts'

const spec = { inputShape: [28, 28, 1], numClasses: 10 }

type DenseConfig = Parameters<typeof tf.layers.dense>[0]
const MLP: DenseConfig[] = [{ units: 200, activation: 'relu' }, { units: 200, activation: 'relu' }, { units: 10, activation: 'softmax' }]
/** A hidden layer without a bias and one without an activation. */
const ODD: DenseConfig[] = [{ units: 64, activation: 'relu', useBias: false }, { units: 32, activation: 'linear' }, { units: 10, activation: 'softmax' }]

/**
 * Flatten and dense layers; `throughLayers` puts a linear Activation layer in front: the same
 * function, which the dense stack does not take.
 */
function denseModel (dense: DenseConfig[], throughLayers: boolean): tf.LayersModel {
  const front = throughLayers ? [tf.layers.activation({ activation: 'linear', inputShape: spec.inputShape }), tf.layers.flatten()] : [tf.layers.flatten({ inputShape: spec.inputShape })]
  return tf.sequential({ layers: [...front, ...dense.map(config => tf.layers.dense(config))] })
}

/**
 * Glorot-uniform kernels and zero biases from a seeded generator. Twenty steps of the two paths
 * differ only in rounding, but where a unit's input sits near zero the rounding can flip its relu
 * and the difference grows; with tfjs's unseeded initialisation one start in several crossed 1e-4.
 * From a fixed start the comparison is the same every run.
 */
function seededWeights (model: tf.LayersModel, seed: number): void {
  let x = seed
  const uniform = (): number => { x = (x * 1103515245 + 12345) % 2147483648; return x / 2147483648 }
  writeWeights(model, readWeights(model).map(w => {
    const limit = w.shape.length === 2 ? Math.sqrt(6 / (w.shape[0] + w.shape[1])) : 0
    return { ...w, values: Float32Array.from(w.values, () => (2 * uniform() - 1) * limit) }
  }))
}

function takes (layers: Array<InstanceType<typeof tf.layers.Layer>>): boolean {
  const model = tf.sequential({ layers })
  const stack = denseStack(model)
  stack?.dispose()
  return stack !== undefined
}

describe('dense stack: the mlp\'s training step', () => {
  before(async () => { await initBackend('auto') })

  it('takes stacks of flatten and dense layers with relu or linear hidden layers and a softmax output', () => {
    expect(takes([tf.layers.flatten({ inputShape: [4, 4] }), tf.layers.dense({ units: 3, activation: 'softmax' })])).to.equal(true)
    expect(takes([tf.layers.dense({ inputShape: [16], units: 8, activation: 'linear', useBias: false }), tf.layers.dense({ units: 3, activation: 'softmax' })])).to.equal(true)
    expect(denseStack(buildModel('mlp', spec))).to.not.equal(undefined)
  })

  it('leaves every other model to the layers API', () => {
    expect(denseStack(buildModel('cnn-small', spec))).to.equal(undefined)
    expect(denseStack(denseModel(MLP, true))).to.equal(undefined)
    const dense = (config: Record<string, unknown>): InstanceType<typeof tf.layers.Layer> => tf.layers.dense({ units: 3, ...config })
    expect(takes([dense({ inputShape: [16], activation: 'tanh' }), dense({ activation: 'softmax' })]), 'tanh').to.equal(false)
    expect(takes([dense({ inputShape: [16], activation: 'relu' }), dense({ activation: 'sigmoid' })]), 'sigmoid output').to.equal(false)
    expect(takes([dense({ inputShape: [16], kernelRegularizer: 'l1l2' }), dense({ activation: 'softmax' })]), 'regularizer').to.equal(false)
    expect(takes([dense({ inputShape: [16] }), tf.layers.dropout({ rate: 0.5 }), dense({ activation: 'softmax' })]), 'dropout').to.equal(false)
    const frozen = dense({ inputShape: [16], trainable: false })
    expect(takes([frozen, dense({ activation: 'softmax' })]), 'frozen').to.equal(false)
  })

  // two layouts (dense-stack.ts): kernels transposed on wasm, the model's own elsewhere (cpu here)
  for (const backend of ['wasm', 'cpu']) {
    describe(`on ${backend}`, () => {
      let previous: string
      before(async () => {
        previous = tf.getBackend()
        await tf.setBackend(backend)
      })
      after(async () => { await tf.setBackend(previous) })

      const cases: Array<[string, DenseConfig[], OptimizerName, number]> = [
        ['mlp', MLP, 'sgd', 0], ['mlp', MLP, 'sgd', 0.5], ['mlp', MLP, 'momentum', 0], ['mlp', MLP, 'momentum', 0.5], ['mlp', MLP, 'adam', 0.1],
        ['a bias-less relu layer and a linear one', ODD, 'sgd', 0]
      ]
      for (const [name, dense, optimizer, proxMu] of cases) {
        it(`trains as the layers API does: ${name}, ${optimizer}${proxMu > 0 ? ` with FedProx mu ${proxMu}` : ''}, 20 steps`, async () => {
          const mnist = await loadDataset('mnist')
          const fast = denseModel(dense, false)
          const slow = denseModel(dense, true)
          const stack = denseStack(fast)
          expect(stack, 'the dense stack takes it').to.not.equal(undefined)
          stack?.dispose()
          seededWeights(fast, 11)
          writeWeights(slow, readWeights(fast))
          const shard = shardIndices(mnist.train.count, 1, 60)
          const options = { samples: 640, batchSize: 32, lr: optimizer === 'adam' ? 0.001 : 0.1, seed: 3, optimizer, proxMu }
          const momentumSteps = wasmKernelRuns.momentum
          const a = await trainLocal(fast, mnist.train, shard, options)
          // on wasm momentum is stepped by wasm-kernels.wat, a step of each variable
          expect(wasmKernelRuns.momentum - momentumSteps).to.equal(backend === 'wasm' && optimizer === 'momentum' ? 20 * fast.trainableWeights.length : 0)
          const b = await trainLocal(slow, mnist.train, shard, options)
          expect(a.loss).to.be.closeTo(b.loss, 1e-4)
          for (const [i, w] of a.weights.entries()) expect(maxAbsDiff(w.values, b.weights[i].values), `weight ${i}`).to.be.below(1e-4)
          // the weights written back work in the model as any others: its predictions are the other's
          const shape = [4, ...(fast.inputs[0].shape.slice(1) as number[])]
          const x = tf.tensor(Float32Array.from({ length: shape.reduce((p, q) => p * q, 1) }, (_, i) => (i % 7) / 7), shape)
          const [pa, pb] = [fast.predict(x) as tf.Tensor, slow.predict(x) as tf.Tensor]
          expect(maxAbsDiff(await pa.data() as Float32Array, await pb.data() as Float32Array)).to.be.below(1e-4)
          tf.dispose([x, pa, pb])
        })
      }
    })
  }
})
