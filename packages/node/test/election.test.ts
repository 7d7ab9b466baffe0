// Election rules, with time passed in by hand (fake time): no timers, no network, no signatures.
import { expect } from 'chai'
import { MAX_TERM_STEP } from '@dml/protocol'
import { Election, rankCandidates } from '@dml/node'

const A = 'peerA'; const B = 'peerB'; const C = 'peerC'
const LEASE = 5000
const SIG = new Uint8Array(64)
const majorityOf = (n: number) => (voters: string[]): boolean => voters.length > n / 2

describe('election', () => {
  it('a peer that hears no leader stands for term 1 once the lease runs out, not before', () => {
    const e = new Election(A, LEASE, 0)
    expect(e.tick(4999, [A])).to.equal(undefined)
    expect(e.tick(5000, [A])).to.equal(1)
    expect(e.candidacy?.term).to.equal(1)
    expect(e.votedTerm).to.equal(1)
    expect(e.isLeader).to.equal(false) // not before a quorum voted
  })

  it('on a fresh start a peer stands after the first wait; once any term is known, after the whole lease', () => {
    const fresh = new Election(A, LEASE, 0, 1000, 2000)
    expect(fresh.tick(1999, [A])).to.equal(undefined)
    expect(fresh.tick(2000, [A])).to.equal(1)
    const second = new Election(B, LEASE, 0, 1000, 2000)
    expect(second.tick(2999, [A, B])).to.equal(undefined) // ranked second: one slot later
    expect(second.tick(3000, [A, B])).to.equal(1)
    // a term heard of (in a heartbeat, or from a checkpoint): an existing network, wait the lease
    const joiner = new Election(C, LEASE, 0, 1000, 2000)
    joiner.noteTerm(4)
    expect(joiner.tick(4999, [C])).to.equal(undefined)
    expect(joiner.tick(5000, [C])).to.equal(5)
    // a failed candidacy: the next one waits a whole lease from it
    expect(fresh.tick(2000 + LEASE - 1, [A])).to.equal(undefined)
    expect(fresh.tick(2000 + LEASE, [A])).to.equal(2)
    // a leader followed and lost: the lease, counted from its last heartbeat
    const follower = new Election(B, LEASE, 0, 1000, 2000)
    follower.follow(1, A, 100)
    follower.leaderLost()
    expect(follower.tick(100 + LEASE - 1, [B])).to.equal(undefined)
    expect(follower.tick(100 + LEASE, [B])).to.equal(2)
  })

  it('on a fresh network that holds the peers a round needs, the first-ranked stands at once, and only it', () => {
    const make = (self: string): Election => {
      const e = new Election(self, LEASE, 0, 1000, 2000)
      e.roundPeers = 3
      return e
    }
    expect(make(A).tick(10, [A, B])).to.equal(undefined) // two of three: wait
    expect(make(A).tick(10, [A, B, C])).to.equal(1) // all three, A ranked first
    expect(make(B).tick(10, [A, B, C])).to.equal(undefined) // B waits its slot, for A's request
    expect(make(B).tick(2999, [A, B, C])).to.equal(undefined)
    expect(make(B).tick(3000, [A, B, C])).to.equal(1)
    // a term heard of: not a fresh network, the lease as before
    const joiner = make(A)
    joiner.noteTerm(2)
    expect(joiner.tick(10, [A, B, C])).to.equal(undefined)
    // a failed quick candidacy: the next one waits a lease from it, like any other
    const failed = make(A)
    expect(failed.tick(10, [A, B, C])).to.equal(1)
    expect(failed.tick(20, [A, B, C])).to.equal(undefined)
    expect(failed.tick(10 + LEASE, [A, B, C])).to.equal(2)
    // --min-peers 1: peers starting together are all heard first
    const single = new Election(A, LEASE, 0, 1000, 2000)
    expect(single.tick(10, [A, B, C])).to.equal(undefined)
    expect(single.tick(2000, [A, B, C])).to.equal(1)
  })

  it('a fresh peer told of others (--bootstrap) does not stand alone: never when a round needs others, else not before a whole lease', () => {
    const joining = new Election(A, LEASE, 0, 1000, 2000)
    joining.expectsPeers = true
    joining.roundPeers = 3
    expect(joining.tick(2000, [A])).to.equal(undefined)
    expect(joining.tick(10 * LEASE, [A])).to.equal(undefined) // it could lead nothing alone
    expect(joining.tick(10 * LEASE, [A, B])).to.equal(1) // someone answered: the usual waits
    const single = new Election(A, LEASE, 0, 1000, 2000)
    single.expectsPeers = true // --min-peers 1: it may train alone, once a whole lease shows nobody is there
    expect(single.tick(2000, [A])).to.equal(undefined)
    expect(single.tick(LEASE - 1, [A])).to.equal(undefined)
    expect(single.tick(LEASE, [A])).to.equal(1)
    const heard = new Election(A, LEASE, 0, 1000, 2000)
    heard.expectsPeers = true
    expect(heard.tick(1999, [A, B])).to.equal(undefined)
    expect(heard.tick(2000, [A, B])).to.equal(1)
  })

  it('lower-ranked peers wait extra slots, so the best candidate stands first', () => {
    const ranked = rankCandidates([{ peer: C, round: 3 }, { peer: A, round: 2 }, { peer: B, round: 3 }])
    expect(ranked).to.deep.equal([B, C, A])
    const a = new Election(A, LEASE, 0, 1000)
    expect(a.tick(5000, ranked)).to.equal(undefined)
    expect(a.tick(6999, ranked)).to.equal(undefined)
    expect(a.tick(7000, ranked)).to.equal(1)
  })

  it('a candidate leads once a quorum voted, and not before', () => {
    const e = new Election(A, LEASE, 0)
    const term = e.tick(5000, [A, B, C])!
    expect(e.addVote(term, A, SIG, majorityOf(3), 5000)).to.equal(false)
    expect(e.addVote(term, B, SIG, majorityOf(3), 5001)).to.equal(true)
    expect(e).to.include({ isLeader: true, term: 1 }) // the node counts the election won (engine test: the lone leader)
    expect(e.addVote(term + 1, C, SIG, majorityOf(3), 5002)).to.equal(false) // a vote for another term counts for nothing
  })

  it('a candidacy that gets no quorum within a lease stands again for the next term', () => {
    const e = new Election(A, LEASE, 0)
    expect(e.tick(5000, [A, B, C])).to.equal(1)
    expect(e.tick(9999, [A, B, C])).to.equal(undefined)
    expect(e.tick(15000, [A, B, C])).to.equal(2)
  })

  it('a voter grants one vote per term, to a candidate proving at least its rounds', () => {
    const e = new Election(B, LEASE, 0)
    expect(e.decide({ term: 1, candidate: A }, 3, 3, false, 6000)).to.equal(undefined)
    e.voted(1, A, 6000)
    expect(e).to.include({ votedTerm: 1, votedFor: A })
    expect(e.decide({ term: 1, candidate: C }, 3, 3, false, 6001)).to.equal('stale-term')
    e.voted(1, C, 6001) // one vote a term: the first stands
    expect(e).to.include({ votedTerm: 1, votedFor: A })
    expect(e.decide({ term: 2, candidate: C }, 2, 3, false, 6002)).to.equal('fewer-rounds')
    e.stand(7000) // standing is a vote for itself
    expect(e).to.include({ votedTerm: 2, votedFor: B })
  })

  it('a vote request refusable whatever it proves is refused before any proof is fetched: a stale term, fewer rounds claimed, a live proven leader', () => {
    const e = new Election(B, LEASE, 0)
    expect(e.refusableUnproven({ term: 1, candidate: A, round: 3 }, 3, false, 6000)).to.equal(false)
    expect(e.refusableUnproven({ term: 1, candidate: A, round: 2 }, 3, false, 6000)).to.equal(true)
    e.voted(1, A, 6000)
    expect(e.refusableUnproven({ term: 1, candidate: C, round: 9 }, 3, false, 6001)).to.equal(true)
    expect(e.follow(1, A, 6001)).to.equal('follow')
    expect(e.refusableUnproven({ term: 2, candidate: C, round: 9 }, 3, true, 6002)).to.equal(true)
    expect(e.refusableUnproven({ term: 2, candidate: C, round: 9 }, 3, false, 6002)).to.equal(false)
  })

  it('a peer whose saved vote was lost neither votes nor stands for a lease, then takes every term it heard of meanwhile as voted in', () => {
    const e = new Election(B, LEASE, 1000)
    e.noteTerm(2) // its checkpoint's term
    e.voteLost(1000)
    e.noteTerm(3) // a vote request heard while it sits out
    expect(e.decide({ term: 3, candidate: A }, 3, 3, false, 5999)).to.equal('vote-lost')
    expect(e.tick(5999, [B, A])).to.equal(undefined)
    expect(e.decide({ term: 3, candidate: A }, 3, 3, false, 6000)).to.equal('stale-term')
    expect(e.decide({ term: 4, candidate: A }, 3, 3, false, 6000)).to.equal(undefined)
    expect(e.tick(11_000, [B, A])).to.equal(4) // past every term it may have voted in
  })

  it('a voter sticks to a live proven leader: no vote for anyone else, a vote for its leader standing again', () => {
    const e = new Election(B, LEASE, 0)
    expect(e.follow(4, A, 1000)).to.equal('follow')
    expect(e.decide({ term: 5, candidate: C }, 9, 0, true, 2000)).to.equal('has-leader')
    expect(e.decide({ term: 5, candidate: A }, 0, 0, true, 2000)).to.equal(undefined)
    // a leader that more peers joined than voted for it is no longer proven: others may be voted for
    expect(e.decide({ term: 5, candidate: C }, 0, 0, false, 2000)).to.equal(undefined)
    // and once its lease runs out, anyone with the rounds may be
    expect(e.decide({ term: 5, candidate: C }, 0, 0, true, 1000 + LEASE)).to.equal(undefined)
  })

  it('no vote for a term beyond reach: a liar cannot push any term past what can be represented', () => {
    const e = new Election(B, LEASE, 0)
    e.follow(7, A, 0)
    expect(e.decide({ term: 7 + MAX_TERM_STEP + 1, candidate: C }, 0, 0, false, 10_000)).to.equal('term-out-of-reach')
    expect(e.decide({ term: Number.MAX_SAFE_INTEGER, candidate: C }, 0, 0, false, 10_000)).to.equal('term-out-of-reach')
    e.noteTerm(Number.MAX_SAFE_INTEGER) // a heartbeat that says so is not heard either
    expect(e.stand(20_000)).to.equal(8)
  })

  it('a proven leader of a newer term is followed; an older one is stale; a leader steps down', () => {
    const a = new Election(A, LEASE, 0)
    const term = a.tick(5000, [A])!
    a.addVote(term, A, SIG, majorityOf(1), 5000)
    expect(a.isLeader).to.equal(true)
    expect(a.follow(1, B, 6000)).to.equal('stale') // the same term, another leader: one of us lies
    expect(a.follow(3, B, 6000)).to.equal('follow')
    expect(a).to.include({ isLeader: false, leader: B, term: 3 })
    expect(a.follow(2, C, 6001)).to.equal('stale')
    expect(a.follow(3, B, 7000)).to.equal('keep')
  })

  it('after a partition, a leader of an older term that proves more finished rounds is followed', () => {
    const a = new Election(A, LEASE, 0)
    expect(a.follow(7, B, 0)).to.equal('follow') // the term this side ran up while cut off
    expect(a.follow(2, C, 1000)).to.equal('stale')
    expect(a.follow(2, C, 1000, true)).to.equal('follow')
    expect(a).to.include({ leader: C, term: 2 })
  })

  it('a leader that resigns stops leading and does not stand again for two leases', () => {
    const a = new Election(A, LEASE, 0)
    a.addVote(a.tick(5000, [A, B])!, A, SIG, () => true, 5000)
    a.resign(6000)
    expect(a).to.include({ isLeader: false, leader: null })
    expect(a.tick(6000 + 2 * LEASE - 1, [A, B])).to.equal(undefined)
    expect(a.tick(6000 + 2 * LEASE, [A, B])).to.equal(2)
  })

  it('a distrusted leader is neither followed nor voted for until its time is up', () => {
    const e = new Election(B, LEASE, 0)
    e.follow(2, A, 0)
    e.distrust(A, 60_000)
    expect(e.leader).to.equal(null)
    expect(e.isDistrusted(A, 59_999)).to.equal(true)
    expect(e.decide({ term: 3, candidate: A }, 5, 0, false, 30_000)).to.equal('distrusted')
    expect(e.decide({ term: 3, candidate: A }, 5, 0, false, 60_000)).to.equal(undefined)
  })
})
