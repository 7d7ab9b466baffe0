// The contract of every local training strategy (optimizer, FedProx, learning-rate schedule):
// it learns on real MNIST, is deterministic for a seed, and does what its name says.
import { expect } from 'chai'
import { buildModel, distance, initBackend, loadDataset, lrOfRound, OPTIMIZERS, parseLrSchedule, readWeights, shardIndices, trainLocal, evaluate, writeWeights, type Dataset, type TrainOptions } from '@dml/trainer'
import type { NamedTensor } from '@dml/protocol'

const spec = { inputShape: [28, 28, 1], numClasses: 10 }

describe('local strategies', function () {
  this.timeout(120_000)
  let mnist: Dataset
  let start: NamedTensor[]
  const shard = shardIndices(60000, 0, 30)
  before(async () => {
    await initBackend('auto')
    mnist = await loadDataset('mnist')
    const model = buildModel('mlp', spec)
    start = readWeights(model)
    model.dispose()
  })

  async function train (options: Partial<TrainOptions>): Promise<{ weights: NamedTensor[], before: number, after: number }> {
    const model = buildModel('mlp', spec)
    writeWeights(model, start)
    const before = (await evaluate(model, mnist.test, 1000)).loss
    const result = await trainLocal(model, mnist.train, shard, { samples: 1500, batchSize: 32, lr: 0.05, seed: 3, ...options })
    const after = (await evaluate(model, mnist.test, 1000)).loss
    model.dispose()
    return { weights: result.weights, before, after }
  }

  const strategies: Array<[string, Partial<TrainOptions>]> = [
    ...OPTIMIZERS.map((optimizer): [string, Partial<TrainOptions>] => [optimizer, { optimizer, lr: optimizer === 'adam' ? 0.001 : 0.05 }]),
    ['sgd + FedProx (mu 0.1)', { proxMu: 0.1 }],
    ['adam + FedProx (mu 0.1)', { optimizer: 'adam', lr: 0.001, proxMu: 0.1 }]
  ]
  for (const [name, options] of strategies) {
    it(`${name}: the loss on test examples falls, and the same seed gives the same weights`, async () => {
      const a = await train(options)
      expect(a.after).to.be.below(0.8 * a.before)
      const b = await train(options)
      expect(b.weights.map(w => [...w.values])).to.deep.equal(a.weights.map(w => [...w.values]))
    })
  }

  it('FedProx keeps the local model nearer the round\'s model, the more so the larger mu', async () => {
    const plain = distance((await train({})).weights, start)
    const some = distance((await train({ proxMu: 1 })).weights, start)
    const strong = distance((await train({ proxMu: 10 })).weights, start)
    expect(some).to.be.below(plain)
    expect(strong).to.be.below(some)
  })

  it('schedules the learning rate by round: constant, exp:<gamma>, step:<rounds>:<gamma>', () => {
    expect([1, 2, 10].map(r => lrOfRound(0.1, parseLrSchedule('constant'), r))).to.deep.equal([0.1, 0.1, 0.1])
    expect(lrOfRound(0.1, parseLrSchedule('exp:0.5'), 1)).to.equal(0.1)
    expect(lrOfRound(0.1, parseLrSchedule('exp:0.5'), 3)).to.be.closeTo(0.025, 1e-12)
    expect([1, 5, 6, 11].map(r => lrOfRound(0.1, parseLrSchedule('step:5:0.5'), r))).to.deep.equal([0.1, 0.1, 0.05, 0.025])
    for (const bad of ['linear', 'exp:0', 'exp:1.5', 'step:0:0.5', 'step:5']) expect(() => parseLrSchedule(bad), bad).to.throw(/is not one of constant, exp:<gamma>/)
  })
})
