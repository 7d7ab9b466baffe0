import { expect } from 'chai'
import { buildModel, initBackend, loadDataset, modelNames, readWeights, registerModelModule, shardIndices, trainLocal, evaluate, writeWeights, makeBatch, TrainingAborted, tf } from '@dml/trainer'
import { writeFileSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const spec = { inputShape: [28, 28, 1], numClasses: 10 }
function params (model: tf.LayersModel): number { return model.countParams() }

describe('model registry', () => {
  before(async () => { await initBackend('auto') })

  it('builds the built-in models with the documented sizes', () => {
    expect(modelNames()).to.include.members(['mlp', 'cnn', 'cnn-small'])
    expect(params(buildModel('mlp', spec))).to.equal(199_210)
    expect(params(buildModel('cnn', spec))).to.equal(1_663_370)
    expect(params(buildModel('cnn-small', spec))).to.equal(5_994)
  })

  it('names the known models when asked for an unknown one', () => {
    expect(() => buildModel('resnet', spec)).to.throw(/unknown model "resnet".*mlp/)
  })

  it('registers models from a user module', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dml-model-'))
    const path = join(dir, 'my-models.js')
    writeFileSync(path, 'export const models = { tiny: (tf, { inputShape, numClasses }) => tf.sequential({ layers: [tf.layers.flatten({ inputShape }), tf.layers.dense({ units: numClasses, activation: "softmax" })] }) }\n')
    expect(await registerModelModule(path)).to.deep.equal(['tiny'])
    expect(params(buildModel('tiny', spec))).to.equal(7850)
  })

  it('moves weights out and back in by position', () => {
    const a = buildModel('cnn-small', spec)
    const b = buildModel('cnn-small', spec)
    writeWeights(b, readWeights(a))
    expect(readWeights(b)).to.deep.equal(readWeights(a))
  })

  for (const name of ['mlp', 'cnn-small', 'cnn']) {
    it(`trains ${name} on the active backend: loss falls on real MNIST`, async function () {
      this.timeout(120_000)
      const mnist = await loadDataset('mnist')
      const model = buildModel(name, spec)
      const shard = shardIndices(mnist.train.count, 0, 60)
      const before = await evaluate(model, mnist.train, 500)
      const samples = name === 'cnn' ? 256 : 2000
      await trainLocal(model, mnist.train, shard, { samples, batchSize: 32, lr: 0.1, seed: 1 })
      const after = await evaluate(model, mnist.train, 500)
      expect(after.loss).to.be.below(before.loss)
    })
  }

  it('evaluates as tfjs\'s own metrics do: accuracy and cross-entropy over chunks, of the first examples or of chosen ones', async () => {
    const mnist = await loadDataset('mnist')
    const model = buildModel('mlp', spec)
    await trainLocal(model, mnist.train, shardIndices(mnist.train.count, 0, 60), { samples: 640, batchSize: 32, lr: 0.1, seed: 1 })
    // more than one chunk, the last one short
    const chosen = Array.from({ length: 1700 }, (_, i) => (i * 7919) % mnist.test.count)
    for (const examples of [1700, chosen]) {
      const ours = await evaluate(model, mnist.test, examples)
      const indices = typeof examples === 'number' ? Array.from({ length: examples }, (_, i) => i) : examples
      const { xs, ys } = makeBatch(mnist.test, indices)
      const probs = model.predict(xs) as tf.Tensor
      const accuracy = (await probs.argMax(-1).equal(ys.argMax(-1)).mean().data())[0]
      const loss = (await ys.mul(probs.clipByValue(1e-7, 1).log()).sum(-1).neg().mean().data())[0]
      tf.dispose([xs, ys, probs])
      expect(ours.samples).to.equal(1700)
      expect(ours.accuracy).to.be.closeTo(accuracy, 1e-6) // tfjs's mean is of float32s
      expect(ours.loss).to.be.closeTo(loss, 1e-4)
    }
  })

  it('minimises what trainOnBatch does: one SGD step gives the same weights and loss', async () => {
    const mnist = await loadDataset('mnist')
    const a = buildModel('mlp', spec)
    const b = buildModel('mlp', spec)
    writeWeights(b, readWeights(a))
    const indices = Uint32Array.from({ length: 32 }, (_, i) => i)
    const ours = await trainLocal(a, mnist.train, indices, { samples: 32, batchSize: 32, lr: 0.1, seed: 1 })
    b.compile({ optimizer: tf.train.sgd(0.1), loss: 'categoricalCrossentropy' })
    const order = Array.from(indices) // one batch holds the whole shard: the order does not matter
    const { xs, ys } = makeBatch(mnist.train, order)
    const theirs = await b.trainOnBatch(xs, ys) as number
    expect(ours.loss).to.be.closeTo(theirs, 1e-4)
    const wa = readWeights(a); const wb = readWeights(b)
    for (let i = 0; i < wa.length; i++) {
      let d = 0
      for (let j = 0; j < wa[i].values.length; j++) d = Math.max(d, Math.abs(wa[i].values[j] - wb[i].values[j]))
      expect(d, `weight ${i}`).to.be.below(1e-5)
    }
  })

  it('trains whole batches only: a remainder of a few examples is left out, not stepped on alone', async () => {
    const mnist = await loadDataset('mnist')
    const model = buildModel('mlp', spec)
    const shard = shardIndices(mnist.train.count, 0, 60)
    const whole = await trainLocal(model, mnist.train, shard, { samples: 100, batchSize: 32, lr: 0.1, seed: 1 })
    expect(whole.numSamples).to.equal(96)
    const fewer = await trainLocal(model, mnist.train, shard, { samples: 20, batchSize: 32, lr: 0.1, seed: 1 })
    expect(fewer.numSamples).to.equal(20) // less than a batch: one batch of them
  })

  // cnn-small trains through the layers API, the mlp as a dense stack (dense-stack.ts)
  for (const name of ['cnn-small', 'mlp']) {
    it(`leaves no tensors or variables behind, whether training ends or is stopped: ${name}`, async () => {
      const mnist = await loadDataset('mnist')
      const model = buildModel(name, spec)
      const shard = shardIndices(mnist.train.count, 0, 60)
      await trainLocal(model, mnist.train, shard, { samples: 64, batchSize: 32, lr: 0.1, seed: 1, optimizer: 'adam', proxMu: 0.1 })
      const held = tf.memory().numTensors
      const variables = Object.keys(tf.engine().registeredVariables).length
      await trainLocal(model, mnist.train, shard, { samples: 256, batchSize: 32, lr: 0.1, seed: 2, optimizer: 'adam', proxMu: 0.1 })
      expect(tf.memory().numTensors).to.equal(held)
      await trainLocal(model, mnist.train, shard, { samples: 256, batchSize: 32, lr: 0.1, seed: 2, optimizer: 'momentum', proxMu: 0.1 })
      expect(tf.memory().numTensors).to.equal(held)
      expect(Object.keys(tf.engine().registeredVariables).length).to.equal(variables)
      const stop = new AbortController()
      const stopped = trainLocal(model, mnist.train, shard, { samples: 100_000, batchSize: 32, lr: 0.1, seed: 3, optimizer: 'momentum', signal: stop.signal, onProgress: () => { stop.abort(new Error('test')) } })
      let caught: unknown
      try { await stopped } catch (err) { caught = err }
      expect(caught).to.be.instanceOf(TrainingAborted)
      expect(tf.memory().numTensors).to.equal(held)
      expect(Object.keys(tf.engine().registeredVariables).length).to.equal(variables)
    })
  }
})
