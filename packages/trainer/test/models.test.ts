import { expect } from 'chai'
import { buildModel, initBackend, loadDataset, modelNames, readWeights, registerModelModule, shardIndices, trainLocal, evaluate, writeWeights, tf } from '@dml/trainer'
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
})
