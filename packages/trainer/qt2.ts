import { initBackend, loadDataset, buildModel, trainLocal, evaluate, shardIndices, readWeights, writeWeights } from './src/index.ts'
await initBackend('auto')
const ds = await loadDataset('mnist')
const spec = { inputShape: ds.train.exampleShape, numClasses: ds.train.numClasses }
const model = buildModel('mlp', spec)
const accs = []
for (let r = 0; r < 15; r++) {
  await trainLocal(model, ds.train, shardIndices(60000, 0, 4), { samples: 1500, batchSize: 32, lr: 0.15, seed: r })
  const w = readWeights(model)
  const a = (await evaluate(model, ds.test)).accuracy
  writeWeights(model, w)
  const b = (await evaluate(model, ds.test)).accuracy
  const fresh = buildModel('mlp', spec); writeWeights(fresh, w)
  const c = (await evaluate(fresh, ds.test)).accuracy
  accs.push(`${(100*a).toFixed(1)}/${(100*b).toFixed(1)}/${(100*c).toFixed(1)}`)
}
console.log(accs.join(' '))
