import { expect } from 'chai'
import { allocateWork, expectedSeconds, roundParticipants } from '@dml/node'

describe('work allocation', () => {
  it('splits evenly, one shard each, while speeds are unknown', () => {
    const a = allocateWork({ workers: [{ peer: 'b', speed: 0 }, { peer: 'a', speed: 0 }, { peer: 'c', speed: 0 }], trainSize: 60000, localEpochs: 1, batchSize: 32 })
    expect(a).to.deep.equal([
      { peer: 'a', samples: 20000, shard: [0, 3] },
      { peer: 'b', samples: 20000, shard: [1, 3] },
      { peer: 'c', samples: 20000, shard: [2, 3] }
    ])
  })

  it('gives work in proportion to measured speed, so peers finish together', () => {
    const workers = [{ peer: 'gpu', speed: 3000 }, { peer: 'cpu', speed: 1000 }]
    const a = allocateWork({ workers, trainSize: 40000, localEpochs: 1, batchSize: 32 })
    expect(a.find(x => x.peer === 'gpu')!.samples).to.equal(30000)
    expect(a.find(x => x.peer === 'cpu')!.samples).to.equal(10000)
    expect(expectedSeconds(a, workers)).to.equal(10)
  })

  it('bounds a share to 1/4..4x of an even split', () => {
    const a = allocateWork({ workers: [{ peer: 'fast', speed: 1e6 }, { peer: 'slow', speed: 1 }], trainSize: 1000, localEpochs: 1, batchSize: 8 })
    expect(a.find(x => x.peer === 'slow')!.samples).to.equal(125)
    expect(a.find(x => x.peer === 'fast')!.samples).to.equal(1000)
    const five = allocateWork({ workers: [{ peer: 'f', speed: 1e6 }, ...['s1', 's2', 's3', 's4'].map(peer => ({ peer, speed: 1 }))], trainSize: 1000, localEpochs: 1, batchSize: 8 })
    expect(five.find(x => x.peer === 'f')!.samples).to.equal(800)
  })

  it('gives a new peer the mean speed of the others', () => {
    const a = allocateWork({ workers: [{ peer: 'a', speed: 1000 }, { peer: 'b', speed: 3000 }, { peer: 'new', speed: 0 }], trainSize: 30000, localEpochs: 1, batchSize: 32 })
    expect(a.find(x => x.peer === 'new')!.samples).to.equal(10000)
    expect(expectedSeconds(a, [{ peer: 'a', speed: 1000 }, { peer: 'b', speed: 3000 }, { peer: 'new', speed: 0 }])).to.equal(5)
    expect(expectedSeconds(a, [{ peer: 'a', speed: 0 }, { peer: 'b', speed: 0 }, { peer: 'new', speed: 0 }])).to.equal(undefined)
  })

  it('takes every peer while the network fits in one round, and takes turns when it does not', () => {
    const peers = Array.from({ length: 10 }, (_, i) => ({ peer: `p${i}` }))
    expect(roundParticipants(peers, 1, 16)).to.have.length(10)
    const seen = new Set<string>()
    for (let round = 1; round <= 3; round++) {
      const chosen = roundParticipants(peers, round, 4)
      expect(chosen).to.have.length(4)
      expect(new Set(chosen.map(p => p.peer)).size).to.equal(4)
      for (const p of chosen) seen.add(p.peer)
    }
    expect(seen.size).to.equal(10)
  })
})
