// The contract every aggregation strategy must meet; a new strategy in STRATEGIES runs it too.
import { expect } from 'chai'
import { STRATEGIES, SERVER_OPTIMIZERS, AggregationError, DEFAULT_PARAMS, aggregateRound, defaultServerLr, distance, fedavg, modelPart, normFilter, serverStep, weightedMean, withServerState, type ClientUpdate } from '@dml/trainer'
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

const aggregate = (strategy: typeof fedavg, updates: ClientUpdate[], g: NamedTensor[]): NamedTensor[] => strategy.aggregate(updates, g, DEFAULT_PARAMS)

for (const strategy of Object.values(STRATEGIES)) {
  describe(`aggregation contract: ${strategy.name}`, () => {
    it('keeps every tensor\'s name and shape', () => {
      const out = aggregate(strategy, [u1, u2, u3], global)
      expect(out.map(t => [t.name, t.shape])).to.deep.equal(global.map(t => [t.name, t.shape]))
      out.forEach((t, i) => expect(t.values.length).to.equal(global[i].values.length))
    })

    it('returns a single update unchanged', () => {
      const out = aggregate(strategy, [u1], global)
      expect([...out[0].values]).to.deep.equal([...u1.weights[0].values])
    })

    it('returns the common value when all updates agree', () => {
      const same = [update('a', 10, [1, 1, 1, 1], [2, 2, 2]), update('b', 30, [1, 1, 1, 1], [2, 2, 2])]
      expect([...aggregate(strategy, same, global)[1].values]).to.deep.equal([2, 2, 2])
    })

    it('does not depend on the order of the updates, to the last bit once sorted by peer', () => {
      const spec = { ...DEFAULT_PARAMS, aggregation: strategy.name, normBound: 5, serverOptimizer: 'none', serverLr: 1 }
      const a = aggregateRound([u1, u2, u3], global, spec).weights
      const b = aggregateRound([u3, u1, u2], global, spec).weights
      a.forEach((t, i) => expect([...t.values]).to.deep.equal([...b[i].values]))
    })

    it('stays near the honest updates when one of five is a boosted liar', () => {
      const honest = [update('a', 100, [1, 1, 1, 1], [1, 1, 1]), update('b', 100, [1.1, 1, 0.9, 1], [1, 1.1, 1]), update('c', 100, [0.9, 1, 1.1, 1], [1, 0.9, 1]), update('d', 100, [1, 1.1, 1, 0.9], [1.1, 1, 1])]
      const liar = update('e', 100, [1e6, -1e6, 1e6, -1e6], [1e6, 1e6, 1e6])
      const spec = { ...DEFAULT_PARAMS, aggregation: strategy.name, normBound: 5, serverOptimizer: 'none', serverLr: 1 }
      const out = aggregateRound([...honest, liar], global, spec).weights
      // every strategy is protected by the norm bound; the robust ones would be without it
      expect(distance(out, honest[0].weights)).to.be.below(1)
      if (strategy.name !== 'fedavg') expect(distance(aggregate(strategy, [...honest, liar], global), honest[0].weights)).to.be.below(1e5)
    })

    it('does not modify its inputs', () => {
      const before = structuredClone([u1, u2])
      aggregate(strategy, [u1, u2], global)
      expect([u1, u2]).to.deep.equal(before)
    })

    it('refuses an empty set, mismatched shapes, non-finite values and zero samples', () => {
      expect(() => aggregate(strategy, [], global)).to.throw(AggregationError, /no updates/)
      expect(() => aggregate(strategy, [u1, update('x', 1, [1, 2, 3], [1, 1, 1])], global)).to.throw(AggregationError)
      expect(() => aggregate(strategy, [update('x', 1, [NaN, 0, 0, 0], [1, 1, 1])], global)).to.throw(AggregationError, /non-finite/)
      expect(() => aggregate(strategy, [update('x', 0, [0, 0, 0, 0], [1, 1, 1])], global)).to.throw(AggregationError, /no samples/)
    })
  })
}

/**
 * How far one liar can move a round's aggregate from the honest peers' own, in units of the
 * median step, as the README's security section states it: the averages by its share of the
 * samples times how far it may go (the norm bound, or the clip), the coordinate-wise and Krum
 * by no more than the honest updates' own spread.
 */
const LIAR_BOUND: Record<string, (share: number, normBound: number, clip: number, spread: number) => number> = {
  fedavg: (share, normBound) => share * (normBound + 1),
  'multi-krum': (share, normBound) => share * (normBound + 1),
  'clipped-mean': (share, normBound, clip) => share * (Math.min(clip, normBound) + 1),
  median: (_s, _n, _c, spread) => spread,
  'trimmed-mean': (_s, _n, _c, spread) => spread,
  krum: (_s, _n, _c, spread) => spread
}

describe('a liar just inside the norm bound, round after round (model replacement)', () => {
  it('every strategy states its bound', () => {
    expect(Object.keys(LIAR_BOUND).sort()).to.deep.equal(Object.keys(STRATEGIES).sort())
  })

  for (const strategy of Object.values(STRATEGIES)) {
    it(`${strategy.name}: it moves no round's aggregate further than the strategy bounds it; the robust ones keep the model on its way`, () => {
      // four honest peers step towards +1 in every coordinate, with a little noise; the liar steps
      // towards -1 as far as the norm bound lets it, claiming the samples a peer is given
      let x = 11
      const noise = (): number => { x = (x * 1103515245 + 12345) % 2147483648; return (x / 2147483648 - 0.5) * 0.02 }
      const normBound = 5
      const spec = { ...DEFAULT_PARAMS, aggregation: strategy.name, normBound, serverOptimizer: 'none', serverLr: 1 }
      const size = 7
      let model: NamedTensor[] = [{ name: 'w', shape: [size], values: new Float32Array(size) }]
      let honestModel = model
      for (let round = 0; round < 20; round++) {
        const stepTowards = (from: NamedTensor[], target: number, scale: number, peer: string): ClientUpdate =>
          ({ peer, numSamples: 100, weights: [{ name: 'w', shape: [size], values: from[0].values.map(v => v + scale * (target - v) + noise()) }] })
        const honest = ['a', 'b', 'c', 'd'].map(p => stepTowards(model, 1, 0.1, p))
        const median = [...honest.map(u => distance(u.weights, model))].sort((a, b) => a - b)[2]
        const liarStep = stepTowards(model, -1, 1, 'e')
        const liarDistance = distance(liarStep.weights, model)
        // scaled to 99% of the bound: it passes
        const liar = { ...liarStep, weights: [{ name: 'w', shape: [size], values: model[0].values.map((v, j) => v + 0.99 * normBound * median * (liarStep.weights[0].values[j] - v) / liarDistance) }] }
        const attacked = aggregateRound([...honest, liar], model, spec)
        expect(attacked.dropped, `round ${round}: the liar passes the norm bound`).to.have.length(0)
        const clean = aggregateRound(honest, model, spec).weights
        const spread = Math.sqrt(Array.from({ length: size }, (_, j) => {
          const column = honest.map(u => u.weights[0].values[j])
          return (Math.max(...column) - Math.min(...column)) ** 2
        }).reduce((a, b) => a + b, 0))
        const moved = distance(attacked.weights, clean) / median
        expect(moved, `round ${round}: moved by ${moved.toFixed(3)} median steps`).to.be.at.most(LIAR_BOUND[strategy.name](1 / 5, normBound, DEFAULT_PARAMS.clip, spread / median) + 1e-6)
        model = attacked.weights
        honestModel = aggregateRound(['a', 'b', 'c', 'd'].map(p => stepTowards(honestModel, 1, 0.1, p)), honestModel, spec).weights
      }
      // the robust ones keep the model on its way (0.86-0.88 here, where the honest peers alone
      // reach 0.87-0.88); an average is dragged by the liar's share of its reach (FedAvg to -0.47,
      // clipped-mean to 0.71), which is what the norm bound alone allows
      const mean = model[0].values.reduce((a, b) => a + b, 0) / size
      const honestMean = honestModel[0].values.reduce((a, b) => a + b, 0) / size
      if (['median', 'trimmed-mean', 'krum', 'multi-krum'].includes(strategy.name)) expect(mean, `${strategy.name} ends at ${mean.toFixed(3)}`).to.be.above(honestMean - 0.05)
      else expect(mean, `${strategy.name} ends at ${mean.toFixed(3)}`).to.be.below(honestMean - 0.1)
    })
  }
})

describe('FedAvg', () => {
  it('weights each update by its samples (hand computation)', () => {
    // w0[0] = (100*1 + 300*5 + 200*2) / 600 = 2000/600; w1 = (100*1 + 300*3 + 200*2) / 600 = 1400/600
    const out = fedavg.aggregate([u1, u2, u3], global, DEFAULT_PARAMS)
    const expected0 = [(100 * 1 + 300 * 5 + 200 * 2) / 600, (100 * 2 + 300 * 6 + 200 * 2) / 600, (100 * 3 + 300 * 7 + 200 * 2) / 600, (100 * 4 + 300 * 8 + 200 * 2) / 600]
    ;[...out[0].values].forEach((v, i) => expect(v).to.be.closeTo(expected0[i], 1e-5))
    ;[...out[1].values].forEach(v => expect(v).to.be.closeTo(1400 / 600, 1e-5))
  })

  it('adds every coordinate\'s terms in the updates\' order in float64, to the last bit, for 1 to 9 updates', () => {
    // what other peers recompute to check an aggregate: one order of additions, one rounding
    let x = 7
    const random = (): number => { x = (x * 1103515245 + 12345) % 2147483648; return (x / 2147483648 - 0.5) * 10 ** ((x % 7) - 3) }
    const size = 1001
    const model: NamedTensor[] = [{ name: 'w', shape: [size], values: new Float32Array(size) }]
    for (let count = 1; count <= 9; count++) {
      const updates = Array.from({ length: count }, () => ({ weights: [{ name: 'w', shape: [size], values: Float32Array.from({ length: size }, (_, j) => j === 0 ? -0 : random()) }] }))
      const weights = updates.map((_, k) => 10 + 7 * k)
      const total = weights.reduce((a, b) => a + b, 0)
      const expected = new Float32Array(size)
      for (let j = 0; j < size; j++) {
        let sum = 0
        updates.forEach((u, k) => { sum += (weights[k] / total) * u.weights[0].values[j] })
        expected[j] = sum
      }
      expect(Buffer.from(weightedMean(updates, weights, model)[0].values.buffer).equals(Buffer.from(expected.buffer)), `${count} updates`).to.equal(true)
    }
  })
})

describe('the norm bound', () => {
  it('drops the updates further from the model than k times the median distance, and names them', () => {
    const near = [update('a', 1, [1, 0, 0, 0], [0, 0, 0]), update('b', 1, [0, 1, 0, 0], [0, 0, 0]), update('c', 1, [0, 0, 1, 0], [0, 0, 0])]
    const far = update('x', 1, [100, 0, 0, 0], [0, 0, 0])
    const { kept, dropped } = normFilter([...near, far], global, 5)
    expect(kept.map(u => u.peer)).to.deep.equal(['a', 'b', 'c'])
    expect(dropped).to.have.length(1)
    expect(dropped[0]).to.include({ peer: 'x', distance: 100 })
    expect(normFilter([...near, far], global, 0).kept).to.have.length(4)
    expect(normFilter([near[0], far], global, 5).kept).to.have.length(2) // too few for a median
  })
})

// Server optimizers: the round's aggregate moves the model (and the state in its blob).
for (const name of SERVER_OPTIMIZERS) {
  describe(`server optimizer contract: ${name}`, () => {
    const current = withServerState(global, name)
    const spec = { ...DEFAULT_PARAMS, aggregation: 'fedavg', normBound: 5, serverOptimizer: name, serverLr: defaultServerLr(name) }

    it('keeps the model\'s tensors first, with their names and shapes, and the state\'s layout', () => {
      const out = aggregateRound([u1, u2, u3], current, spec).weights
      expect(out.map(t => [t.name, t.shape])).to.deep.equal(current.map(t => [t.name, t.shape]))
      expect(modelPart(out).map(t => t.name)).to.deep.equal(['w0', 'w1'])
    })

    it('leaves the model where it is when the updates do not move it', () => {
      const still = [update('a', 10, [0, 0, 0, 0], [0, 0, 0]), update('b', 30, [0, 0, 0, 0], [0, 0, 0])]
      const out = aggregateRound(still, current, spec).weights
      expect(modelPart(out).flatMap(t => [...t.values])).to.deep.equal([0, 0, 0, 0, 0, 0, 0])
    })

    it('moves the model towards the aggregate, the same to the last bit on every call, without touching its inputs', () => {
      const before = structuredClone(current)
      const a = aggregateRound([u1, u2, u3], current, spec).weights
      const b = aggregateRound([u3, u2, u1], current, spec).weights
      expect(a.map(t => [...t.values])).to.deep.equal(b.map(t => [...t.values]))
      expect(current).to.deep.equal(before)
      const target = fedavg.aggregate([u1, u2, u3], global, DEFAULT_PARAMS)
      modelPart(a).forEach((t, i) => t.values.forEach((v, j) => expect(Math.sign(v)).to.equal(Math.sign(target[i].values[j]))))
    })

    it('refuses a model blob without the state it needs', () => {
      if (name === 'none') return
      expect(() => aggregateRound([u1], global, spec)).to.throw(/holds no m moment/)
    })
  })
}

describe('FedAvgM and FedAdam (hand computation)', () => {
  const delta = [update('a', 1, [1, 1, 1, 1], [-2, -2, -2])]
  it('FedAvgM: m = 0.9 m + delta, w = w + lr m', () => {
    const first = serverStep(withServerState(global, 'momentum'), delta[0].weights, 'momentum', 1)
    expect([...first[0].values]).to.deep.equal([1, 1, 1, 1])
    // the same pseudo-gradient again: m = 0.9 + 1 = 1.9, w = 1 + 1.9 + 1 (the aggregate is w + delta)
    const again = serverStep(first, first.slice(0, 2).map(t => ({ ...t, values: t.values.map(v => v + (t.name === 'w0' ? 1 : -2)) })), 'momentum', 1)
    ;[...again[0].values].forEach(v => expect(v).to.be.closeTo(1 + 1.9, 1e-6))
    ;[...again[1].values].forEach(v => expect(v).to.be.closeTo(-2 - 3.8, 1e-6))
  })

  it('FedAdam: the first step is about lr in the direction of the delta, whatever its size', () => {
    const out = serverStep(withServerState(global, 'adam'), delta[0].weights, 'adam', 0.01)
    // m = 0.1 d, v = 0.01 d^2: step = lr * 0.1 d / (0.1 |d| + 0.001)
    ;[...out[0].values].forEach(v => expect(v).to.be.closeTo(0.01 * 0.1 / (0.1 + 0.001), 1e-7))
    ;[...out[1].values].forEach(v => expect(v).to.be.closeTo(-0.01 * 0.2 / (0.2 + 0.001), 1e-7))
  })
})
