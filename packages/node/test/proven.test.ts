import { expect } from 'chai'
import { PROVEN_FOR_ROUNDS, ProvenPeers, probationSlots, quorumOf } from '@dml/node'

describe('proven peers', () => {
  it('before any certified round everyone counts; after, only contributors, this peer too', () => {
    const proven = new ProvenPeers()
    expect(proven.counted(['me', 'a', 'sybil'])).to.deep.equal(['me', 'a', 'sybil'])
    proven.saw(1, ['me', 'a'])
    expect(proven.counted(['me', 'a', 'sybil'])).to.deep.equal(['me', 'a'])
    proven.saw(2, ['a', 'b'])
    expect(proven.counted(['newcomer', 'a', 'b'])).to.deep.equal(['a', 'b'])
  })

  it(`a contribution proves a peer for ${PROVEN_FOR_ROUNDS} rounds`, () => {
    const proven = new ProvenPeers()
    proven.saw(1, ['a', 'b'])
    proven.saw(PROVEN_FOR_ROUNDS, ['a'])
    expect(proven.has('b')).to.equal(true)
    proven.saw(PROVEN_FOR_ROUNDS + 1, ['a'])
    expect(proven.has('b')).to.equal(false)
    expect(proven.has('a')).to.equal(true)
  })

  it('what a checkpoint keeps comes back whole: every member the rounds proved, each for as long as it had left', () => {
    const proven = new ProvenPeers()
    proven.saw(1, ['a', 'b', 'c'])
    proven.saw(5, ['a', 'b'])
    const restored = new ProvenPeers()
    restored.restore(proven.entries())
    // then the round it held, from its certificate: c did no work in it, and is a member still
    restored.saw(5, ['a', 'b'])
    expect(['a', 'b', 'c'].every(p => restored.has(p))).to.equal(true)
    restored.saw(PROVEN_FOR_ROUNDS + 1, ['a'])
    expect(restored.has('c')).to.equal(false)
    expect(restored.has('b')).to.equal(true)
  })

  it('newcomers a round: at least one, never so many that the proven peers less one are not a quorum', () => {
    const open = { self: 'me' }
    expect([1, 2, 3, 4, 5, 9].map(p => probationSlots(open, p))).to.deep.equal([1, 1, 1, 1, 2, 6])
    for (let p = 4; p < 40; p++) expect(quorumOf(open, p + probationSlots(open, p))).to.be.at.most(p - 1)
    expect(probationSlots({ self: 'me', allowed: new Set(['me', 'a']) }, 1)).to.equal(Infinity)
  })
})
