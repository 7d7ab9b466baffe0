import { expect } from 'chai'
import { allocateWork, expectedSeconds, roundParticipants } from '@dml/node'

describe('work allocation', () => {
  it('splits evenly, one shard each, while speeds are unknown', () => {
    const a = allocateWork({ workers: [{ peer: 'b', speed: 0, examples: 0 }, { peer: 'a', speed: 0, examples: 0 }, { peer: 'c', speed: 0, examples: 0 }], sharedSize: 60000, localEpochs: 1, batchSize: 32 })
    expect(a).to.deep.equal([
      { peer: 'a', samples: 20000, shard: [0, 3] },
      { peer: 'b', samples: 20000, shard: [1, 3] },
      { peer: 'c', samples: 20000, shard: [2, 3] }
    ])
  })

  it('gives work in proportion to measured speed, so peers finish together', () => {
    const workers = [{ peer: 'gpu', speed: 3000, examples: 0 }, { peer: 'cpu', speed: 1000, examples: 0 }]
    const a = allocateWork({ workers, sharedSize: 40000, localEpochs: 1, batchSize: 32 })
    expect(a.find(x => x.peer === 'gpu')!.samples).to.equal(30000)
    expect(a.find(x => x.peer === 'cpu')!.samples).to.equal(10000)
    expect(expectedSeconds(a, workers)).to.equal(10)
  })

  it('bounds a share to 1/4..4x of an even split', () => {
    const a = allocateWork({ workers: [{ peer: 'fast', speed: 1e6, examples: 0 }, { peer: 'slow', speed: 1, examples: 0 }], sharedSize: 1000, localEpochs: 1, batchSize: 8 })
    expect(a.find(x => x.peer === 'slow')!.samples).to.equal(125)
    expect(a.find(x => x.peer === 'fast')!.samples).to.equal(1000)
    const five = allocateWork({ workers: [{ peer: 'f', speed: 1e6, examples: 0 }, ...['s1', 's2', 's3', 's4'].map(peer => ({ peer, speed: 1, examples: 0 }))], sharedSize: 1000, localEpochs: 1, batchSize: 8 })
    expect(five.find(x => x.peer === 'f')!.samples).to.equal(800)
  })

  it('gives a new peer the mean speed of the others', () => {
    const a = allocateWork({ workers: [{ peer: 'a', speed: 1000, examples: 0 }, { peer: 'b', speed: 3000, examples: 0 }, { peer: 'new', speed: 0, examples: 0 }], sharedSize: 30000, localEpochs: 1, batchSize: 32 })
    expect(a.find(x => x.peer === 'new')!.samples).to.equal(10000)
    expect(expectedSeconds(a, [{ peer: 'a', speed: 1000 }, { peer: 'b', speed: 3000 }, { peer: 'new', speed: 0 }])).to.equal(5)
    expect(expectedSeconds(a, [{ peer: 'a', speed: 0 }, { peer: 'b', speed: 0 }, { peer: 'new', speed: 0 }])).to.equal(undefined)
  })

  it('counts no peer slower than a quarter of the median speed when it sets the deadline: a claim of a tiny speed holds no round', () => {
    const workers = [{ peer: 'a', speed: 1000, examples: 0 }, { peer: 'b', speed: 1000, examples: 0 }, { peer: 'liar', speed: 1e-6, examples: 0 }]
    const a = allocateWork({ workers, sharedSize: 30000, localEpochs: 1, batchSize: 32 })
    expect(a.find(x => x.peer === 'liar')!.samples).to.equal(2500) // a quarter of its base
    // its claim drags the mean speed down: the honest peers get half as much again, 15,000 each
    expect(a.find(x => x.peer === 'a')!.samples).to.equal(15000)
    // their 15 s, not 2500 / 1e-6 s: the liar counts at 250 samples/s (10 s)
    expect(expectedSeconds(a, workers)).to.equal(15)
    // a genuinely slower peer still counts at its own speed, down to that quarter
    expect(expectedSeconds([{ peer: 'slow', samples: 3000, shard: [0, 1] }], [{ peer: 'slow', speed: 300 }, ...workers.slice(0, 2)])).to.equal(10)
  })

  it('gives peers with their own data local epochs over it, shifted by speed', () => {
    const a = allocateWork({ workers: [{ peer: 'big', speed: 1000, examples: 30000 }, { peer: 'small', speed: 1000, examples: 10000 }], sharedSize: 0, localEpochs: 1, batchSize: 32 })
    // equal speeds: an epoch over each peer's data, so the average weighs them 3:1
    expect(a.map(x => x.samples)).to.deep.equal([30000, 10000])
    // the faster peer (1.5x the mean speed) does 1.5x its base, the slower one half
    const fast = allocateWork({ workers: [{ peer: 'big', speed: 3000, examples: 30000 }, { peer: 'small', speed: 1000, examples: 10000 }], sharedSize: 0, localEpochs: 2, batchSize: 32 })
    expect(fast.map(x => x.samples)).to.deep.equal([90000, 10000])
  })

  it('weighs the parts of a non-IID partition of a shared set by their sizes', () => {
    const sizes = [30000, 5000, 25000]
    const a = allocateWork({ workers: ['a', 'b', 'c'].map(peer => ({ peer, speed: 1000, examples: 0 })), sharedSize: 60000, sharedPart: (i) => sizes[i], localEpochs: 1, batchSize: 32 })
    expect(a.map(x => x.samples)).to.deep.equal(sizes)
  })

  it('gives a peer claiming a huge data set and speed at most 4x a typical peer\'s work', () => {
    const honest = ['a', 'b', 'c'].map(peer => ({ peer, speed: 1000, examples: 0 }))
    const a = allocateWork({ workers: [...honest, { peer: 'liar', speed: 1e9, examples: 1e9 }], sharedSize: 60000, localEpochs: 1, batchSize: 32 })
    const typical = a.find(x => x.peer === 'a')!.samples
    expect(a.find(x => x.peer === 'liar')!.samples).to.be.at.most(4 * 15000)
    expect(typical).to.be.at.least(15000 / 4)
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
