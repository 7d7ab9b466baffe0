// The trained model out: exported in TensorFlow.js's layers format after every round (--export)
// and by `dml-node export`, then loaded by other processes as any user of it would.
import { expect } from 'chai'
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { join } from 'node:path'
import { tf } from '@dml/trainer'
import { DML_NODE_BIN } from '@dml/node/launcher'
import { LocalNetwork } from './helpers.ts'

const MINUTE = 60_000

/** Runs `dml-node <args>` to its end. */
async function dmlNode (args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  return await new Promise(resolve => {
    execFile(process.execPath, [DML_NODE_BIN, ...args], { timeout: 2 * MINUTE }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr })
    })
  })
}

describe('the trained model out', function () {
  this.timeout(8 * MINUTE)
  const net = new LocalNetwork()
  after(async () => { await net.stop() })

  it('is exported after every round and by `dml-node export`, loads elsewhere, and scores what its round certified', async () => {
    const options = ['--min-peers', '2', '--rounds', '2', '--local-epochs', '0.1', '--eval-samples', '1000', '--exit-when-done']
    const exportedEachRound = join(net.dir, 'export-every-round')
    const a = await net.add([...options, '--export', exportedEachRound])
    const b = await net.add(options)
    const finished = await Promise.all([a, b].map(async p => await p.waitFor('training-finished', 5 * MINUTE)))
    expect(await Promise.all([a.exited, b.exited])).to.deep.equal([0, 0])
    expect(a.events.filter(e => e.event === 'model-exported').map(e => e.round)).to.deep.equal([1, 2])

    // the command, from the other peer's data directory: the same model
    const exported = join(net.dir, 'exported')
    const made = await dmlNode(['export', '--data-dir', join(net.dir, 'peer2'), '--out', exported])
    expect(made.code, made.stderr).to.equal(0)
    expect(made.stdout).to.match(/exported round 2 \(mlp, accuracy \d+\.\d+%\)/)
    const meta = JSON.parse(readFileSync(join(exported, 'model.json'), 'utf8')).userDefinedMetadata.dml
    expect(meta).to.include({ round: 2, modelHash: finished[1].modelHash, model: 'mlp', dataset: 'mnist' })
    expect(readFileSync(join(exported, 'weights.bin')).equals(readFileSync(join(exportedEachRound, 'weights.bin')))).to.equal(true)
    // from the directory that holds the peers' data directories, as the README's network has them
    const fromAbove = await dmlNode(['export', '--data-dir', net.dir, '--out', join(net.dir, 'exported-from-above')])
    expect(fromAbove.code, fromAbove.stderr).to.equal(0)
    expect(fromAbove.stdout).to.include("holds no checkpoint itself: exporting the newest of the data directories in it, peer1's (round 2); also found peer2 at round 2")
    expect(readFileSync(join(net.dir, 'exported-from-above', 'weights.bin')).equals(readFileSync(join(exported, 'weights.bin')))).to.equal(true)

    // a fresh process loads it and measures, on the same test examples, the accuracy the round certified
    const evaluated = await dmlNode(['evaluate', '--model', exported, '--samples', '1000', '--json'])
    expect(evaluated.code, evaluated.stderr).to.equal(0)
    const { accuracy, samples } = JSON.parse(evaluated.stdout)
    expect(samples).to.equal(1000)
    expect(accuracy).to.be.closeTo(finished[0].accuracy as number, 1e-9)
    // predict on the same examples: its hits are the certified accuracy, whatever two short rounds reached
    const predicted = await dmlNode(['predict', '--model', exported, '--samples', '1000', '--json'])
    expect(predicted.code, predicted.stderr).to.equal(0)
    const lines = predicted.stdout.trim().split('\n').map(l => JSON.parse(l) as { predicted: number, label: number })
    expect(lines).to.have.length(1000)
    expect(lines.filter(l => l.predicted === l.label).length / 1000).to.be.closeTo(accuracy as number, 1e-9)
    expect(accuracy).to.be.above(0.5)

    // over http, as a browser loads it: tf.loadLayersModel with the URL of model.json
    const server = createServer((req, res) => {
      const file = (req.url ?? '').slice(1)
      if (file !== 'model.json' && file !== 'weights.bin') return res.writeHead(404).end()
      res.writeHead(200).end(readFileSync(join(exported, file)))
    })
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    try {
      const model = await tf.loadLayersModel(`http://127.0.0.1:${(server.address() as { port: number }).port}/model.json`)
      const out = model.predict(tf.zeros([2, 28, 28, 1])) as tf.Tensor
      expect(out.shape).to.deep.equal([2, 10])
    } finally {
      server.close()
    }
  })

  it('says what is missing: no checkpoint to export, no --out, no model to evaluate', async () => {
    const nothing = await dmlNode(['export', '--data-dir', join(net.dir, 'empty'), '--out', join(net.dir, 'x')])
    expect(nothing.code).to.equal(2)
    expect(nothing.stderr).to.match(/holds no checkpoint, nor do the directories in it: nothing to export/)
    const noOut = await dmlNode(['export', '--data-dir', join(net.dir, 'peer2')])
    expect(noOut.stderr).to.match(/--out <dir> is required/)
    const noModel = await dmlNode(['evaluate'])
    expect(noModel.code).to.equal(2)
    expect(noModel.stderr).to.match(/--model <dir> is required/)
    const missing = await dmlNode(['evaluate', '--model', join(net.dir, 'nowhere')])
    expect(missing.code).to.equal(2)
    expect(missing.stderr).to.match(/--model .*nowhere: .*model\.json/)
  })
})
