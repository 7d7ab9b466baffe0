// Federated learning on each peer's own data: four peers, each with a directory of its own in a
// different format, made from disjoint parts of MNIST; nothing names another peer's files.
import { expect } from 'chai'
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { loadDataset, shardIndices } from '@dml/trainer'
import { DML_NODE_BIN } from '@dml/node/launcher'
import { pick, writeExamples, type Format } from '../packages/trainer/test/support/write-formats.ts'
import { getJson, LocalNetwork, roundsDone } from './helpers.ts'

const MINUTE = 60_000
const FORMATS: Format[] = ['idx', 'idx.gz', 'csv', 'png']

describe('peers training on their own data (--data)', function () {
  this.timeout(10 * MINUTE)
  const net = new LocalNetwork()
  after(async () => { await net.stop() })

  it('four peers, each with its own files in another format, train one model to 95% on MNIST\'s test set; a peer whose data does not fit is refused', async () => {
    const mnist = await loadDataset('mnist')
    const paths = await Promise.all(FORMATS.map(async (format, i) =>
      await writeExamples(join(net.dir, `data-${i + 1}`), format, pick(mnist.train.images as Uint8Array, mnist.train.labels, [28, 28, 1], shardIndices(60000, i, 6)))))
    const options = ['--min-peers', '4', '--rounds', '5', '--local-epochs', '1', '--exit-when-done']
    const exported = join(net.dir, 'exported')
    const peers = []
    for (const [i, path] of paths.entries()) peers.push(await net.add([...options, '--data', path, ...(i === 0 ? ['--export', exported] : [])]))
    for (const p of peers) expect((await p.waitFor('data', MINUTE)).examples).to.equal(9000) // 10% held out

    // a peer whose examples are 14x14 joins the same network, and is refused before it takes part
    const small = await writeExamples(join(net.dir, 'data-small'), 'csv', { images: new Uint8Array(20 * 196), labels: new Uint8Array(20), rows: 14, cols: 14, channels: 1 })
    const misfit = await net.add([...options, '--data', small], 'misfit')
    expect(await misfit.exited).to.equal(2)
    expect(misfit.stderr.join('\n')).to.match(/rows have 196 feature columns, the task's input 28x28x1 needs 784 \(--input\)/)

    // the leader says a round is done: whichever peer the election chose (the first to see all four
    // and rank first, not necessarily the first launched)
    const leader = await Promise.any(peers.map(async p => { await p.waitFor(e => e.event === 'round-done' && (e.round as number) >= 1, 4 * MINUTE); return p }))
    const status = await getJson(await leader.statusUrl())
    expect(status.task.dataset).to.equal('own') // no peer's path travels
    expect(status.nodes.map((n: { examples: number }) => n.examples)).to.deep.equal([9000, 9000, 9000, 9000])
    expect(status.federated.samples).to.equal(4000) // every signer on its 1,000 held-out examples
    // a peer on its own examples trains no shard, and does not say it does
    const trainStart = peers[0].events.find(e => e.event === 'train-start')!
    expect(trainStart.msg).to.match(/^round \d+: training on \d+ samples of its own examples$/)

    const finished = await Promise.all(peers.map(async p => await p.waitFor('training-finished', 8 * MINUTE)))
    expect(new Set(finished.map(f => f.modelHash)).size).to.equal(1)
    expect(await Promise.all(peers.map(async p => await p.exited))).to.deep.equal([0, 0, 0, 0])

    // the model, on the 10,000 test examples no peer held
    const evaluated = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, [DML_NODE_BIN, 'evaluate', '--model', exported, '--json'], { timeout: 2 * MINUTE }, (err, stdout, stderr) => { if (err !== null) reject(new Error(stderr)); else resolve(stdout) })
    })
    const { accuracy, samples } = JSON.parse(evaluated)
    const perRound = roundsDone(peers.flatMap(p => p.events)).map(e => `${e.round as number}: ${(100 * (e.accuracy as number)).toFixed(2)}%`).join(', ')
    console.log(`      MNIST test accuracy ${(100 * accuracy).toFixed(2)}% after ${finished[0].round as number} rounds (by round: ${perRound}); federated ${(100 * status.federated.accuracy).toFixed(2)}% after round 1`)
    expect(samples).to.equal(10000)
    expect(accuracy).to.be.at.least(0.95)
  })
})
