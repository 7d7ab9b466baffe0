// Partitions of one data set between a round's peers, on MNIST's real labels.
import { expect } from 'chai'
import { holdoutSplit, loadDataset, parsePartition, partitionIndices, shardIndices, type Dataset } from '@dml/trainer'

/** Distinct classes holding at least 1% of a peer's examples. */
function classesOf (indices: Uint32Array, labels: Uint8Array): number {
  const counts = new Map<number, number>()
  for (const i of indices) counts.set(labels[i], (counts.get(labels[i]) ?? 0) + 1)
  return [...counts.values()].filter(n => n >= 0.01 * indices.length).length
}

describe('partitions', function () {
  this.timeout(60_000)
  let mnist: Dataset
  before(async () => { mnist = await loadDataset('mnist') })

  for (const spec of ['iid', 'dirichlet:0.3', 'dirichlet:100', 'shards:2']) {
    it(`${spec}: the peers' parts are disjoint, cover the set (or nearly), and are the same on every call`, () => {
      const { labels } = mnist.train
      const parts = [0, 1, 2, 3].map(i => partitionIndices(labels, 10, i, 4, parsePartition(spec)))
      const seen = new Set<number>()
      for (const part of parts) for (const i of part) {
        expect(seen.has(i), `example ${i} twice`).to.equal(false)
        seen.add(i)
      }
      expect(seen.size).to.equal(labels.length)
      expect([...partitionIndices(labels, 10, 2, 4, parsePartition(spec))]).to.deep.equal([...parts[2]])
    })
  }

  it('iid is the IID shards as before; shards:2 gives each peer 2 to 4 classes; dirichlet:0.3 fewer than dirichlet:100', () => {
    const { labels } = mnist.train
    expect([...partitionIndices(labels, 10, 1, 3, { kind: 'iid' })]).to.deep.equal([...shardIndices(labels.length, 1, 3)])
    const classes = (spec: string): number[] => [0, 1, 2, 3, 4].map(i => classesOf(partitionIndices(labels, 10, i, 5, parsePartition(spec)), labels))
    for (const n of classes('shards:2')) expect(n).to.be.within(1, 4) // two shards, each one class or straddling two
    const skewed = classes('dirichlet:0.3').reduce((a, b) => a + b, 0)
    const even = classes('dirichlet:100').reduce((a, b) => a + b, 0)
    expect(even).to.equal(50)
    expect(skewed).to.be.below(even)
  })

  it('refuses what it does not know, naming the forms it takes', () => {
    for (const bad of ['', 'IID', 'dirichlet:', 'dirichlet:0', 'dirichlet:-1', 'dirichlet:abc', 'shards:0', 'shards:1.5', 'noniid']) {
      expect(() => parsePartition(bad), bad).to.throw(RangeError, /dirichlet:<alpha>/)
    }
  })
})

describe('--holdout', () => {
  it('holds out a seeded fraction: disjoint from training, covering the set, the same on every call', () => {
    const a = holdoutSplit(1000, 0.1)
    expect(a.holdout.length).to.equal(100)
    expect(a.train.length).to.equal(900)
    expect(new Set([...a.train, ...a.holdout]).size).to.equal(1000)
    expect([...holdoutSplit(1000, 0.1).holdout]).to.deep.equal([...a.holdout])
    expect(holdoutSplit(1000, 0).holdout.length).to.equal(0)
    expect(() => holdoutSplit(1000, 1)).to.throw(RangeError)
  })
})
