// Progress and ETAs from the peers' work reports.
import { expect } from 'chai'
import { roundProgress } from '@dml/node'

describe('round progress', () => {
  it('sums the examples trained over the peers on the round; its ETA is the slowest peer\'s', () => {
    const p = roundProgress(3, [
      { peer: 'a', speed: 100, work: { round: 3, done: 500, total: 1000 } }, // 5 s left
      { peer: 'b', speed: 50, work: { round: 3, done: 600, total: 1000 } }, // 8 s left
      { peer: 'c', speed: 10, work: { round: 2, done: 0, total: 1000 } }, // an older round: not counted
      { peer: 'd', speed: 10, work: null }
    ], 2, [20_000, 10_000, 12_000])
    expect(p).to.deep.include({ round: 3, done: 1100, total: 2000, fraction: 0.55, etaSeconds: 8 })
    expect(p!.trainingEtaSeconds).to.equal(8 + 2 * 12) // two rounds after this one, at the median pace
  })

  it('a peer done training costs no time; one of unknown speed makes the ETA unknown', () => {
    expect(roundProgress(1, [{ peer: 'a', speed: 0, work: { round: 1, done: 10, total: 10 } }], 0, [])!.etaSeconds).to.equal(0)
    const unknown = roundProgress(1, [{ peer: 'a', speed: 0, work: { round: 1, done: 0, total: 10 } }], 4, [])!
    expect(unknown.etaSeconds).to.equal(null)
    expect(unknown.trainingEtaSeconds).to.equal(null)
  })

  it('a peer named twice (its own heartbeat beside its worker\'s account) counts once, by the first', () => {
    const p = roundProgress(1, [
      { peer: 'self', speed: 100, work: { round: 1, done: 600, total: 1000 } },
      { peer: 'self', speed: 100, work: { round: 1, done: 400, total: 1000 } },
      { peer: 'b', speed: 100, work: { round: 1, done: 0, total: 1000 } }
    ], 0, [])
    expect(p).to.deep.include({ done: 600, total: 2000, etaSeconds: 10 })
  })

  it('nobody working on the round: no progress to show', () => {
    expect(roundProgress(2, [{ peer: 'a', speed: 5, work: null }], 0, [])).to.equal(null)
  })
})
