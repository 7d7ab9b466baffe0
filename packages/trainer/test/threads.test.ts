// Training on several threads (threads.ts): real worker threads, each with its own wasm backend,
// on real MNIST.
import { expect } from 'chai'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { averageWeights, buildModel, coreShare, defaultThreads, evaluate, initBackend, loadDataset, readWeights, registerModelModule, shardIndices, TrainingAborted, trainingOrder, trainLocal, TrainingThreads, writeWeights, type Dataset } from '@dml/trainer'

const spec = { inputShape: [28, 28, 1], numClasses: 10 }

describe('training threads', function () {
  this.timeout(120_000)
  let mnist: Dataset
  const pools: TrainingThreads[] = []
  const pool = (...args: ConstructorParameters<typeof TrainingThreads>): TrainingThreads => {
    const p = new TrainingThreads(...args)
    pools.push(p)
    return p
  }
  before(async () => {
    await initBackend('auto')
    mnist = await loadDataset('mnist')
  })
  after(async () => { await Promise.all(pools.map(async p => await p.close())) })

  it('one per core on every CPU backend, one on a GPU', () => {
    expect(defaultThreads('cpu', 8)).to.equal(8)
    expect(defaultThreads('cpu', 2)).to.equal(2)
    expect(defaultThreads('gpu', 8)).to.equal(1)
    expect(defaultThreads('cpu', 0)).to.equal(1)
    expect(() => new TrainingThreads(0, 'wasm')).to.throw(/from 1/)
  })

  it('peers on one machine share its cores: whole ones each, at least one', () => {
    expect(coreShare(2, 0)).to.equal(2)
    expect(coreShare(2, 1)).to.equal(1)
    expect(coreShare(2, 3)).to.equal(1)
    expect(coreShare(8, 3)).to.equal(2)
    expect(coreShare(8, 2)).to.equal(2)
    expect(coreShare(1, 0)).to.equal(1)
    expect(coreShare(4, -1)).to.equal(4)
  })

  it('trains on fewer threads than it has when told to: one, on this thread', async () => {
    const threads = pool(2, 'wasm')
    const model = buildModel('mlp', spec)
    const twin = buildModel('mlp', spec)
    writeWeights(twin, readWeights(model))
    const order = shardIndices(mnist.train.count, 0, 10)
    const result = await threads.train(model, 'mlp', spec, mnist.train, order, { samples: 320, batchSize: 32, lr: 0.1, seed: 1 }, 1)
    expect(result.numSamples).to.equal(320)
    // one part on this thread is trainLocal: the same start and batches give the same model (two
    // parts would each take some of the batches and average)
    const alone = await trainLocal(twin, mnist.train, order, { samples: 320, batchSize: 32, lr: 0.1, seed: 1 })
    expect(result.weights.map(w => Array.from(w.values))).to.deep.equal(alone.weights.map(w => Array.from(w.values)))
  })

  it('averages the parts weighted by the examples each trained on', () => {
    const part = (values: number[], numSamples: number): { weights: Array<{ name: string, shape: number[], values: Float32Array }>, numSamples: number } =>
      ({ weights: [{ name: 'w0', shape: [values.length], values: Float32Array.from(values) }], numSamples })
    const mean = averageWeights([part([1, 2], 32), part([4, 8], 96)])
    expect(Array.from(mean[0].values)).to.deep.equal([3.25, 6.5])
    expect(mean[0].name).to.equal('w0')
  })

  it('trains the mlp on two threads: every sample of whole batches, the model holds the average, and it learns', async () => {
    const threads = pool(2, 'wasm')
    expect(await threads.start()).to.equal(true)
    const model = buildModel('mlp', spec)
    const before = await evaluate(model, mnist.test, 1000)
    const shard = shardIndices(mnist.train.count, 0, 10)
    let lastDone = 0
    const result = await threads.train(model, 'mlp', spec, mnist.train, shard, { samples: 3000, batchSize: 32, lr: 0.1, seed: 1, onProgress: (done) => { lastDone = done } })
    expect(result.numSamples).to.equal(2976) // 93 whole batches, shared as the threads take them
    expect(lastDone).to.be.at.most(2976).and.above(0)
    expect(Number.isFinite(result.loss)).to.equal(true)
    const held = readWeights(model)
    for (const [i, w] of result.weights.entries()) expect(Array.from(held[i].values)).to.deep.equal(Array.from(w.values))
    const after = await evaluate(model, mnist.test, 1000)
    expect(after.accuracy).to.be.above(before.accuracy + 0.3)
  })

  it('parts sharing a round\'s batches train each batch once, however many each takes', async () => {
    const order = trainingOrder(shardIndices(mnist.train.count, 0, 10), 3000, 32, 1)
    const claim = new Int32Array(new SharedArrayBuffer(4))
    const options = { samples: order.length, batchSize: 32, lr: 0.1, seed: 1, claim }
    // two parts on this one thread take turns at its event loop, as two threads take turns at a claim
    const parts = await Promise.all([0, 1].map(async () => await trainLocal(buildModel('mlp', spec), mnist.train, order, options)))
    expect(parts[0].numSamples + parts[1].numSamples).to.equal(2976)
    expect(parts.every(p => p.numSamples % 32 === 0)).to.equal(true)
    expect(claim[0]).to.equal(93 + 2) // every batch, and the one claim each part found past the end
  })

  it('a part that finds every batch taken trains nothing: its weights are the start\'s, its loss no NaN', async () => {
    const model = buildModel('mlp', spec)
    const start = readWeights(model).map(w => Array.from(w.values))
    const order = trainingOrder(shardIndices(mnist.train.count, 0, 10), 320, 32, 1)
    const claim = new Int32Array(new SharedArrayBuffer(4))
    claim[0] = 10
    const result = await trainLocal(model, mnist.train, order, { samples: 320, batchSize: 32, lr: 0.1, seed: 1, claim })
    expect(result.numSamples).to.equal(0)
    expect(result.loss).to.equal(0)
    expect(result.weights.map(w => Array.from(w.values))).to.deep.equal(start)
  })

  it('trains a model from the user\'s module in the threads too', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dml-threads-'))
    const path = join(dir, 'models.js')
    writeFileSync(path, 'export const models = { "tiny-threads": (tf, { inputShape, numClasses }) => tf.sequential({ layers: [tf.layers.flatten({ inputShape }), tf.layers.dense({ units: numClasses, activation: "softmax" })] }) }\n')
    await registerModelModule(path)
    const threads = pool(2, 'wasm', [path])
    const model = buildModel('tiny-threads', spec)
    const result = await threads.train(model, 'tiny-threads', spec, mnist.train, shardIndices(mnist.train.count, 1, 10), { samples: 640, batchSize: 32, lr: 0.1, seed: 2 })
    expect(result.numSamples).to.equal(640)
  })

  it('less than a batch a thread: one part, on this thread', async () => {
    const threads = pool(2, 'wasm')
    const model = buildModel('mlp', spec)
    const result = await threads.train(model, 'mlp', spec, mnist.train, shardIndices(mnist.train.count, 0, 10), { samples: 40, batchSize: 32, lr: 0.1, seed: 1 })
    expect(result.numSamples).to.equal(32)
  })

  it('stops every part once the round\'s signal aborts, and trains again afterwards', async () => {
    const threads = pool(2, 'wasm')
    const model = buildModel('mlp', spec)
    const shard = shardIndices(mnist.train.count, 0, 2)
    const stop = new AbortController()
    const started = performance.now()
    const training = threads.train(model, 'mlp', spec, mnist.train, shard, { samples: 30_000, batchSize: 32, lr: 0.1, seed: 1, signal: stop.signal, onProgress: () => { stop.abort(new Error('the round is over')) } })
    let caught: unknown
    try { await training } catch (err) { caught = err }
    expect(caught).to.be.instanceOf(TrainingAborted)
    expect(performance.now() - started).to.be.below(10_000)
    const again = await threads.train(model, 'mlp', spec, mnist.train, shard, { samples: 320, batchSize: 32, lr: 0.1, seed: 2 })
    expect(again.numSamples).to.equal(320)
  })

  it('threads that cannot start: says why once, and this thread trains alone', async () => {
    const why: Error[] = []
    const threads = pool(2, 'no-such-backend', [], (err) => { why.push(err) })
    expect(await threads.start()).to.equal(false)
    expect(why).to.have.length(1)
    expect(why[0].message).to.match(/could not start.*no-such-backend/)
    const model = buildModel('mlp', spec)
    const result = await threads.train(model, 'mlp', spec, mnist.train, shardIndices(mnist.train.count, 0, 10), { samples: 320, batchSize: 32, lr: 0.1, seed: 1 })
    expect(result.numSamples).to.equal(320)
    expect(why).to.have.length(1)
  })
})
