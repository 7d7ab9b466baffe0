// The contract every aggregation strategy must meet; a new strategy in STRATEGIES runs it too.
import { expect } from 'chai'
import { STRATEGIES, AggregationError, fedavg, type ClientUpdate } from '@dml/trainer'
import type { NamedTensor } from '@dml/protocol'

const global: NamedTensor[] = [
  { name: 'w0', shape: [2, 2], values: Float32Array.from([0, 0, 0, 0]) },
  { name: 'w1', shape: [3], values: Float32Array.from([0, 0, 0]) }
]
function update (peer: string, numSamples: number, a: number[], b: number[]): ClientUpdate {
  return { peer, numSamples, weights: [{ name: 'w0', shape: [2, 2], values: Float32Array.from(a) }, { name: 'w1', shape: [3], values: Float32Array.from(b) }] }
}
const u1 = update('p1', 100, [1, 2, 3, 4], [1, 1, 1])
const u2 = update('p2', 300, [5, 6, 7, 8], [3, 3, 3])
const u3 = update('p3', 200, [2, 2, 2, 2], [2, 2, 2])

for (const strategy of Object.values(STRATEGIES)) {
  describe(`aggregation contract: ${strategy.name}`, () => {
    it('keeps every tensor\'s name and shape', () => {
      const out = strategy.aggregate([u1, u2, u3], global)
      expect(out.map(t => [t.name, t.shape])).to.deep.equal(global.map(t => [t.name, t.shape]))
      out.forEach((t, i) => expect(t.values.length).to.equal(global[i].values.length))
    })

    it('returns a single update unchanged', () => {
      const out = strategy.aggregate([u1], global)
      expect([...out[0].values]).to.deep.equal([...u1.weights[0].values])
    })

    it('returns the common value when all updates agree', () => {
      const same = [update('a', 10, [1, 1, 1, 1], [2, 2, 2]), update('b', 30, [1, 1, 1, 1], [2, 2, 2])]
      expect([...strategy.aggregate(same, global)[1].values]).to.deep.equal([2, 2, 2])
    })

    it('does not depend on the order of the updates', () => {
      const a = strategy.aggregate([u1, u2, u3], global)
      const b = strategy.aggregate([u3, u1, u2], global)
      a.forEach((t, i) => [...t.values].forEach((v, j) => expect(v).to.be.closeTo(b[i].values[j], 1e-6)))
    })

    it('does not modify its inputs', () => {
      const before = structuredClone([u1, u2])
      strategy.aggregate([u1, u2], global)
      expect([u1, u2]).to.deep.equal(before)
    })

    it('refuses an empty set, mismatched shapes, non-finite values and zero samples', () => {
      expect(() => strategy.aggregate([], global)).to.throw(AggregationError, /no updates/)
      expect(() => strategy.aggregate([u1, update('x', 1, [1, 2, 3], [1, 1, 1])], global)).to.throw(AggregationError)
      expect(() => strategy.aggregate([update('x', 1, [NaN, 0, 0, 0], [1, 1, 1])], global)).to.throw(AggregationError, /non-finite/)
      expect(() => strategy.aggregate([update('x', 0, [0, 0, 0, 0], [1, 1, 1])], global)).to.throw(AggregationError, /no samples/)
    })
  })
}

describe('FedAvg', () => {
  it('weights each update by its samples (hand computation)', () => {
    // w0[0] = (100*1 + 300*5 + 200*2) / 600 = 2000/600; w1 = (100*1 + 300*3 + 200*2) / 600 = 1400/600
    const out = fedavg.aggregate([u1, u2, u3], global)
    const expected0 = [(100 * 1 + 300 * 5 + 200 * 2) / 600, (100 * 2 + 300 * 6 + 200 * 2) / 600, (100 * 3 + 300 * 7 + 200 * 2) / 600, (100 * 4 + 300 * 8 + 200 * 2) / 600]
    ;[...out[0].values].forEach((v, i) => expect(v).to.be.closeTo(expected0[i], 1e-5))
    ;[...out[1].values].forEach(v => expect(v).to.be.closeTo(1400 / 600, 1e-5))
  })
})
