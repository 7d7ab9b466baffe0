import { initBackend, loadDataset, buildModel, trainLocal, evaluate, shardIndices, readWeights, writeWeights, fedavg } from './src/index.ts'
await initBackend('auto')
const ds = await loadDataset('mnist')
const spec = { inputShape: ds.train.exampleShape, numClasses: ds.train.numClasses }
const lr = Number(process.argv[2]); const samples = Number(process.argv[3])
const model = buildModel('mlp', spec)
let global = readWeights(model)
const out = []
for (let r = 1; r <= 20; r++) {
  const ups = []
  for (let p = 0; p < 4; p++) {
    writeWeights(model, global)
    const res = await trainLocal(model, ds.train, shardIndices(60000, p, 4), { samples, batchSize: 32, lr, seed: r * 1000 + p })
    ups.push({ peer: String(p), weights: res.weights, numSamples: res.numSamples })
  }
  global = fedavg.aggregate(ups, global)
  writeWeights(model, global)
  out.push((100 * (await evaluate(model, ds.test)).accuracy).toFixed(1))
}
console.log(lr, samples, out.join(' '))
