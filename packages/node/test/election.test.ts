// Election rules, with time passed in by hand (fake time): no timers, no network.
import { expect } from 'chai'
import { Election, beats, rankCandidates } from '@dml/node'

const A = 'peerA'; const B = 'peerB'; const C = 'peerC'
const LEASE = 5000

describe('election', () => {
  it('a peer that hears no leader claims term 1 once the lease runs out, not before', () => {
    const e = new Election(A, LEASE, 0)
    expect(e.tick(4999, [A])).to.equal(false)
    expect(e.tick(5000, [A])).to.equal(true)
    expect(e).to.include({ term: 1, leader: A, isLeader: true })
  })

  it('lower-ranked peers wait extra slots, so the best candidate claims first', () => {
    const ranked = rankCandidates([{ peer: C, round: 3 }, { peer: A, round: 2 }, { peer: B, round: 3 }])
    expect(ranked).to.deep.equal([B, C, A])
    const a = new Election(A, LEASE, 0, 1000)
    expect(a.tick(5000, ranked)).to.equal(false)
    expect(a.tick(6999, ranked)).to.equal(false)
    expect(a.tick(7000, ranked)).to.equal(true)
  })

  it('a follower keeps its leader while heartbeats arrive within the lease', () => {
    const e = new Election(B, LEASE, 0)
    expect(e.observe({ peer: A, term: 1, round: 0 }, 0, 100).kind).to.equal('follow')
    for (let t = 1000; t <= 20_000; t += 1000) {
      e.observe({ peer: A, term: 1, round: 0 }, 0, t)
      expect(e.tick(t, [B])).to.equal(false)
    }
    expect(e.leader).to.equal(A)
  })

  it('when the leader goes silent, the best-ranked peer claims a higher term as soon as the lease runs out', () => {
    const e = new Election(B, LEASE, 0)
    e.observe({ peer: A, term: 4, round: 7 }, 7, 1000)
    expect(e.tick(5999, [B, C])).to.equal(false)
    e.leaderLost()
    expect(e.tick(6000, [B, C])).to.equal(true)
    expect(e.term).to.equal(5)
    const c = new Election(C, LEASE, 0, 1000)
    c.observe({ peer: A, term: 4, round: 7 }, 7, 1000)
    c.leaderLost()
    expect(c.tick(6999, [B, C])).to.equal(false)
    expect(c.tick(7000, [B, C])).to.equal(true)
  })

  it('a claim always goes past the highest term seen in any message', () => {
    const e = new Election(C, LEASE, 0)
    e.noteTerm(9)
    e.tick(5000, [C])
    expect(e.term).to.equal(10)
  })

  it('two claims for the same term: the lower peer id wins and the other steps down', () => {
    const b = new Election(B, LEASE, 0)
    b.tick(5000, [B])
    expect(b.term).to.equal(1)
    expect(b.observe({ peer: A, term: 1, round: 0 }, 0, 5001).kind).to.equal('follow')
    expect(b).to.include({ leader: A, isLeader: false })
    const a = new Election(A, LEASE, 0)
    a.tick(5000, [A])
    expect(a.observe({ peer: B, term: 1, round: 0 }, 0, 5001).kind).to.equal('keep')
    expect(a.isLeader).to.equal(true)
  })

  it('rejects claims from an older term', () => {
    const e = new Election(C, LEASE, 0)
    e.observe({ peer: A, term: 5, round: 2 }, 2, 0)
    expect(e.observe({ peer: B, term: 4, round: 2 }, 2, 10).kind).to.equal('stale')
    expect(e.leader).to.equal(A)
  })

  it('a leader steps down for a higher term that holds as many rounds', () => {
    const a = new Election(A, LEASE, 0)
    a.tick(5000, [A])
    expect(a.observe({ peer: B, term: 2, round: 0 }, 0, 6000).kind).to.equal('follow')
    expect(a).to.include({ isLeader: false, leader: B, term: 2 })
  })

  it('a claimant missing finished rounds is refused: the peer ahead takes over with a higher term', () => {
    const c = new Election(C, LEASE, 0)
    c.observe({ peer: A, term: 3, round: 8 }, 8, 0)
    const result = c.observe({ peer: B, term: 4, round: 6 }, 8, 100)
    expect(result.kind).to.equal('claim')
    expect(c).to.include({ leader: C, term: 5 })
  })

  it('after a partition, the side with more rounds wins even with a lower term', () => {
    // side 1: leader A at term 3 with 10 rounds; side 2: leader B at term 6 with 7 rounds
    const a = new Election(A, LEASE, 0)
    a.observe({ peer: A, term: 3, round: 10 }, 10, 0) // own claim is ignored
    a.tick(5000, [A])
    a.noteTerm(3)
    expect(a.observe({ peer: B, term: 6, round: 7 }, 10, 6000).kind).to.equal('claim')
    expect(a.isLeader).to.equal(true)
    expect(a.term).to.be.greaterThan(6)
    const b = new Election(B, LEASE, 0)
    b.observe({ peer: B, term: 6, round: 7 }, 7, 0)
    b.tick(5000, [B])
    expect(b.observe({ peer: A, term: a.term, round: 10 }, 7, 6000).kind).to.equal('follow')
    expect(b.leader).to.equal(A)
  })

  it('orders leaders: more rounds, then higher term, then lower id', () => {
    expect(beats({ peer: B, term: 1, round: 5 }, { peer: A, term: 9, round: 4 })).to.equal(true)
    expect(beats({ peer: B, term: 2, round: 5 }, { peer: A, term: 1, round: 5 })).to.equal(true)
    expect(beats({ peer: A, term: 2, round: 5 }, { peer: B, term: 2, round: 5 })).to.equal(true)
    expect(beats({ peer: B, term: 2, round: 5 }, { peer: A, term: 2, round: 5 })).to.equal(false)
  })

  it('a leader that resigns stops leading and does not claim again for two leases', () => {
    const a = new Election(A, LEASE, 0)
    a.tick(5000, [A, B])
    expect(a.isLeader).to.equal(true)
    a.resign(6000)
    expect(a).to.include({ isLeader: false, leader: null })
    expect(a.tick(6000 + 2 * LEASE - 1, [A, B])).to.equal(false)
    // the next-ranked peer, meanwhile, claims once the lease from the last leader heartbeat runs out
    const b = new Election(B, LEASE, 0, 1000)
    b.observe({ peer: A, term: 1, round: 0 }, 0, 6000)
    b.leaderLost()
    expect(b.tick(6000 + LEASE + 1000, [A, B])).to.equal(true)
    expect(b.term).to.equal(2)
    // nobody else claimed: after the hold-off the resigned peer may lead again
    expect(a.tick(6000 + 2 * LEASE, [A, B])).to.equal(true)
  })
})
