import { initBackend, loadDataset, buildModel, trainLocal, evaluate, shardIndices, readWeights, writeWeights, fedavg, tf } from './src/index.ts'
const choice = await initBackend('auto'); console.log(choice)
const ds = await loadDataset('mnist')
const spec = { inputShape: ds.train.exampleShape, numClasses: ds.train.numClasses }
const name = process.argv[2] ?? 'mlp'
const lr = Number(process.argv[3] ?? 0.05)
const models = [0, 1, 2].map(() => buildModel(name, spec))
let global = readWeights(models[0])
for (let r = 1; r <= 4; r++) {
  const ups = []
  for (let p = 0; p < 3; p++) {
    writeWeights(models[p], global)
    const res = await trainLocal(models[p], ds.train, shardIndices(60000, p, 3), { samples: 20000, batchSize: 32, lr, seed: r * 10 + p })
    ups.push({ peer: String(p), weights: res.weights, numSamples: res.numSamples }); console.log('train', res.trainMs.toFixed(0), 'ms loss', res.loss.toFixed(3))
  }
  global = fedavg.aggregate(ups, global)
  writeWeights(models[0], global)
  const t = performance.now(); const ev = await evaluate(models[0], ds.test); console.log('round', r, ev, (performance.now() - t).toFixed(0), 'ms eval')
}
