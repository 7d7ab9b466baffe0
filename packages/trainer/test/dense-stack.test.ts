// The dense-stack step (dense-stack.ts) against the layers API it replaces, on real MNIST.
import { expect } from 'chai'
import { buildModel, denseStack, initBackend, loadDataset, readWeights, shardIndices, trainLocal, writeWeights, tf } from '@dml/trainer'
import type { OptimizerName } from '@dml/trainer'
import { maxAbsDiff } from './support/compare.ts'

const spec = { inputShape: [28, 28, 1], numClasses: 10 }

/** The mlp with a linear Activation layer in front: the same function, which the dense stack does not take. */
function mlpThroughLayers (): tf.LayersModel {
  return tf.sequential({
    layers: [
      tf.layers.activation({ activation: 'linear', inputShape: spec.inputShape }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 200, activation: 'relu' }),
      tf.layers.dense({ units: 200, activation: 'relu' }),
      tf.layers.dense({ units: 10, activation: 'softmax' })
    ]
  })
}

function takes (layers: tf.layers.Layer[]): boolean {
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
    expect(denseStack(mlpThroughLayers())).to.equal(undefined)
    const dense = (config: Record<string, unknown>): tf.layers.Layer => tf.layers.dense({ units: 3, ...config })
    expect(takes([dense({ inputShape: [16], activation: 'tanh' }), dense({ activation: 'softmax' })]), 'tanh').to.equal(false)
    expect(takes([dense({ inputShape: [16], activation: 'relu' }), dense({ activation: 'sigmoid' })]), 'sigmoid output').to.equal(false)
    expect(takes([dense({ inputShape: [16], kernelRegularizer: 'l1l2' }), dense({ activation: 'softmax' })]), 'regularizer').to.equal(false)
    expect(takes([dense({ inputShape: [16] }), tf.layers.dropout({ rate: 0.5 }), dense({ activation: 'softmax' })]), 'dropout').to.equal(false)
    const frozen = dense({ inputShape: [16], trainable: false })
    expect(takes([frozen, dense({ activation: 'softmax' })]), 'frozen').to.equal(false)
  })

  for (const [optimizer, proxMu] of [['sgd', 0], ['sgd', 0.5], ['momentum', 0], ['adam', 0.1]] as Array<[OptimizerName, number]>) {
    it(`trains as the layers API does: ${optimizer}${proxMu > 0 ? ` with FedProx mu ${proxMu}` : ''}, 20 steps`, async () => {
      const mnist = await loadDataset('mnist')
      const fast = buildModel('mlp', spec)
      const slow = mlpThroughLayers()
      writeWeights(slow, readWeights(fast))
      const shard = shardIndices(mnist.train.count, 1, 60)
      const options = { samples: 640, batchSize: 32, lr: optimizer === 'adam' ? 0.001 : 0.1, seed: 3, optimizer, proxMu }
      const a = await trainLocal(fast, mnist.train, shard, options)
      const b = await trainLocal(slow, mnist.train, shard, options)
      expect(a.loss).to.be.closeTo(b.loss, 1e-4)
      for (const [i, w] of a.weights.entries()) expect(maxAbsDiff(w.values, b.weights[i].values), `weight ${i}`).to.be.below(1e-4)
    })
  }
})
