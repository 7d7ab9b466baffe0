// tfjs-node inside dml: every built-in model trains on it. Skipped where tfjs-node does not load
// (it is an optional dependency whose install downloads libtensorflow; on machines without
// internet, ../shared/tools/tfjs-node-offline.sh builds it). Runs in its own process, since a
// process that has loaded tfjs-node keeps its kernels.
import { expect } from 'chai'
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const script = `
import { CANDIDATES, chooseBackend, installKernels, loadDataset, buildModel, shardIndices, trainLocal, evaluate, modelNames, tf } from '@dml/trainer'
let choice
try { choice = await chooseBackend('cpu', [CANDIDATES.native]) } catch (err) { console.log(JSON.stringify({ skip: String(err.message).split('\\n').slice(0, 2).join(' ') })); process.exit(0) }
installKernels(choice.backend)
const mnist = await loadDataset('mnist')
const results = {}
for (const name of modelNames()) {
  const model = buildModel(name, { inputShape: [28, 28, 1], numClasses: 10 })
  const before = await evaluate(model, mnist.train, 500)
  await trainLocal(model, mnist.train, shardIndices(mnist.train.count, 0, 60), { samples: name === 'cnn' ? 512 : 2000, batchSize: 32, lr: 0.1, seed: 1 })
  const after = await evaluate(model, mnist.train, 500)
  results[name] = { before: before.loss, after: after.loss }
}
console.log(JSON.stringify({ backend: tf.getBackend(), intraOpThreads: process.env.TF_NUM_INTRAOP_THREADS, results }))
`

describe('the native backend (tfjs-node)', () => {
  it('trains every built-in model inside dml, where tfjs-node loads', function () {
    this.timeout(300_000)
    const root = fileURLToPath(new URL('../../..', import.meta.url))
    // TensorFlow's thread variables unset, as dml finds them on a user's machine
    const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('TF_NUM_')))
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
    const report = JSON.parse(out.trim().split('\n').pop()!) as { skip?: string, backend?: string, intraOpThreads?: string, results?: Record<string, { before: number, after: number }> }
    if (report.skip !== undefined) {
      console.log(`      (skipped: tfjs-node does not load here: ${report.skip})`)
      this.skip()
    }
    expect(report.backend).to.equal('tensorflow')
    expect(report.intraOpThreads, 'one thread an operation (backend.ts)').to.equal('1')
    expect(Object.keys(report.results!)).to.include.members(['mlp', 'cnn-small', 'cnn'])
    for (const [name, { before, after }] of Object.entries(report.results!)) expect(after, name).to.be.below(before)
  })
})
