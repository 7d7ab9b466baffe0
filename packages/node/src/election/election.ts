// Leader election: terms and votes, as in Raft, without a log. A peer that has seen no heartbeat
// of a proven leader for the lease (on a fresh start, for a shorter first wait) becomes a
// candidate for the next term (peers with more proven rounds first, in slots, so claims rarely
// collide) and asks for votes. A voter grants one vote per term, only while it has no live
// proven leader, only to a candidate that proves at least as many finished rounds, and never for
// a term beyond reach. A candidate with a quorum of votes holds a term certificate that anyone
// can check; a peer follows only a leader it has proven.
// Pure logic: time, quorums and proofs are passed in; the node checks signatures and certificates.
import { MAX_TERM_STEP } from '@dml/protocol'

export interface Candidacy {
  term: number
  startedAt: number
  /** voters and their signatures (ours included) */
  votes: Map<string, Uint8Array>
}

export type VoteRefusal =
  | 'stale-term' // not beyond a term we are in or voted in
  | 'term-out-of-reach' // too far past the highest certified term
  | 'has-leader' // we follow a live proven leader
  | 'fewer-rounds' // the candidate proves fewer finished rounds than we hold
  | 'distrusted' // the candidate led without progress, recently
  | 'vote-lost' // our saved vote could not be read, and the lease after our start is not over

export class Election {
  readonly self: string
  leaseMs: number
  slotMs: number
  /** the highest certified term we know: of the leader we follow, or our own */
  term = 0
  /** the proven leader we follow, ourselves while leading, or null */
  leader: string | null = null
  /** the highest term we voted in (a vote for ourselves as candidate included) */
  votedTerm = 0
  /** whom we voted for in votedTerm */
  votedFor: string | null = null
  candidacy: Candidacy | null = null
  /** when a proven heartbeat of our leader was last seen (or when we started waiting) */
  private lastLeaderSeen: number
  /** the highest term heard of within reach: the next candidacy goes past it */
  private heardTerm = 0
  /** after giving up leadership, no candidacy before this time */
  private holdOffUntil = 0
  /** our saved vote was lost: no vote before this time (see voteLost); 0 once settled */
  private votesLostUntil = 0
  private readonly distrusted = new Map<string, number>()

  /**
   * How long a peer that has never heard of any term waits before it stands: a fresh network
   * need not sit out a whole lease, only long enough to hear an existing leader's heartbeat.
   */
  firstWaitMs: number

  /**
   * The peers (self included) a round needs (--min-peers). On a fresh network, once a peer sees
   * that many, all fresh, nothing is left to wait for: the first-ranked stands at once. With 1
   * (start with whoever is there) the first wait stays, so that peers starting together are all
   * heard before anyone stands, and a newcomer to a running network hears its leader first.
   */
  roundPeers = 1

  /**
   * Whether this peer was told of others to join (--bootstrap): then a network exists or is
   * forming, and a fresh peer that has heard no one yet does not stand alone: not at all when a
   * round needs others (it could lead nothing), else only after the whole lease. Under load (16
   * processes starting on 2 cores, bootstrap connections taking 20 s) peers that stood before
   * hearing anyone each elected themselves alone, and every one of those terms had to be undone.
   */
  expectsPeers = false

  constructor (self: string, leaseMs: number, now: number, slotMs = Math.max(200, leaseMs / 5), firstWaitMs = leaseMs) {
    this.self = self
    this.leaseMs = leaseMs
    this.slotMs = slotMs
    this.firstWaitMs = Math.min(firstWaitMs, leaseMs)
    this.lastLeaderSeen = now
  }

  get isLeader (): boolean { return this.leader === this.self }

  /** A term someone mentions: remembered if it is within reach, so our next candidacy goes past it. */
  noteTerm (term: number): void {
    if (term > this.heardTerm && term <= this.term + MAX_TERM_STEP) this.heardTerm = term
  }

  /** Whether the lease of our leader is still running. */
  leaderLive (now: number): boolean {
    return this.leader !== null && now - this.lastLeaderSeen < this.leaseMs
  }

  /** A proven heartbeat of our leader. */
  leaderSeen (now: number): void {
    this.lastLeaderSeen = now
  }

  /**
   * A proven leader (its term certificate checked): follow it if its term is newer than ours.
   * 'keep' when it is the leader we follow, 'stale' for an older term.
   */
  /**
   * Follows `leader` of `term`, whose certificate the caller checked. An older term is stale,
   * unless the leader proved more finished rounds than this peer holds (`provesMoreRounds`): after
   * a partition, the side with more finished rounds wins, whatever terms the other side ran up.
   */
  follow (term: number, leader: string, now: number, provesMoreRounds = false): 'follow' | 'keep' | 'stale' {
    if ((term < this.term && !provesMoreRounds) || (term === this.term && this.leader !== null && this.leader !== leader)) return 'stale'
    if (term === this.term && this.leader === leader) {
      this.lastLeaderSeen = now
      return 'keep'
    }
    this.term = term
    this.votedTerm = Math.max(this.votedTerm, term)
    this.leader = leader
    this.candidacy = null
    this.lastLeaderSeen = now
    return 'follow'
  }

  /**
   * Called periodically. Returns the term of a candidacy this peer starts now, if any: when it has
   * no live leader, has waited its rank's slot, and is not holding off.
   * `ranked` lists the live peers (self included) by proven rounds, most first, then peer id.
   */
  tick (now: number, ranked: string[]): number | undefined {
    this.settleLostVote(now)
    if (this.isLeader || now < this.holdOffUntil) return undefined
    if (this.leaderLive(now)) return undefined
    if (this.candidacy !== null && now - this.candidacy.startedAt < this.leaseMs) return undefined
    const rank = Math.max(0, ranked.indexOf(this.self))
    const waitedFrom = this.candidacy?.startedAt ?? this.lastLeaderSeen
    const fresh = this.fresh
    if (fresh && rank === 0 && this.roundPeers >= 2 && ranked.length >= this.roundPeers) return this.stand(now)
    const joiningAlone = fresh && this.expectsPeers && ranked.length < 2
    if (joiningAlone && this.roundPeers >= 2) return undefined
    const wait = fresh && !joiningAlone ? this.firstWaitMs : this.leaseMs
    if (now - waitedFrom < wait + rank * this.slotMs) return undefined
    return this.stand(now)
  }

  /** No term known, voted in or heard of (a checkpoint's term counts as heard): a fresh start. */
  get fresh (): boolean {
    return this.term === 0 && this.votedTerm === 0 && this.heardTerm === 0
  }

  /** Stands for the next term now, voting for itself. */
  stand (now: number): number {
    const term = Math.max(this.term, this.votedTerm, this.heardTerm) + 1
    this.votedTerm = term
    this.votedFor = this.self
    this.leader = null
    this.candidacy = { term, startedAt: now, votes: new Map() }
    return term
  }

  /**
   * Decides on a vote request. `candidateRounds` is what the candidate proved, `ourRounds` what we
   * hold; `leaderProven` whether the leader we follow is still proven by our view of the members.
   */
  decide (request: { term: number, candidate: string }, candidateRounds: number, ourRounds: number, leaderProven: boolean, now: number): VoteRefusal | undefined {
    if (now < this.votesLostUntil) return 'vote-lost'
    this.settleLostVote(now)
    if (request.term <= this.votedTerm || request.term <= this.term) return 'stale-term'
    if (request.term > this.term + MAX_TERM_STEP) return 'term-out-of-reach'
    const ourLeader = request.candidate === this.leader
    if (this.leaderLive(now) && leaderProven && !ourLeader) return 'has-leader'
    if (candidateRounds < ourRounds) return 'fewer-rounds'
    if ((this.distrusted.get(request.candidate) ?? 0) > now) return 'distrusted'
    return undefined
  }

  /**
   * Whether a vote request is refused whatever the candidate proves: the rounds it claims are the
   * most a proof could show. Asked before any proof is fetched, so a request no proof could change
   * costs no transfer.
   */
  refusableUnproven (request: { term: number, candidate: string, round: number }, ourRounds: number, leaderProven: boolean, now: number): boolean {
    return this.decide(request, request.round, ourRounds, leaderProven, now) !== undefined
  }

  /** The vote this peer gave before it restarted (saved): it votes no more in that term. */
  restoreVote (term: number, candidate: string): void {
    if (term <= this.votedTerm) return
    this.votedTerm = term
    this.votedFor = candidate
  }

  /**
   * The vote this peer saved could not be read: before it went down it may have voted in any term
   * still in play. It neither votes nor stands for a lease, by when every candidacy that could
   * have had its vote has run out, and then takes every term it heard of meanwhile as voted in.
   * Voting again in such a term would be a double vote, which every peer that hears it punishes.
   */
  voteLost (now: number): void {
    this.votesLostUntil = now + this.leaseMs
    this.holdOffUntil = Math.max(this.holdOffUntil, now + this.leaseMs)
  }

  private settleLostVote (now: number): void {
    if (this.votesLostUntil === 0 || now < this.votesLostUntil) return
    this.votesLostUntil = 0
    this.votedTerm = Math.max(this.votedTerm, this.heardTerm)
  }

  /** We granted our vote for `term` to `candidate`: one per term, and the election clock starts again. */
  voted (term: number, candidate: string, now: number): void {
    if (term > this.votedTerm) {
      this.votedTerm = term
      this.votedFor = candidate
    }
    if (this.leader !== this.self) this.lastLeaderSeen = now
  }

  /**
   * A checked vote for our candidacy. Returns true when `hasQuorum` says the votes are enough:
   * we lead `term` from now on.
   */
  addVote (term: number, voter: string, signature: Uint8Array, hasQuorum: (voters: string[]) => boolean, now: number): boolean {
    const c = this.candidacy
    if (c === null || c.term !== term) return false
    c.votes.set(voter, signature)
    if (!hasQuorum([...c.votes.keys()])) return false
    this.term = term
    this.leader = this.self
    this.lastLeaderSeen = now
    return true
  }

  /** Forgets a leader that went silent or gave up; the lease counts from its last heartbeat. */
  leaderLost (): void {
    if (!this.isLeader) this.leader = null
  }

  /** Our leader said it is leaving: its lease is over now, and the first-ranked stands at once. */
  leaderLeft (now: number): void {
    if (this.isLeader) return
    this.leader = null
    this.lastLeaderSeen = Math.min(this.lastLeaderSeen, now - this.leaseMs)
  }

  /** Gives up leadership: followers elect another; we stand again only after two leases. */
  resign (now: number): void {
    if (!this.isLeader) return
    this.leader = null
    this.lastLeaderSeen = now
    this.holdOffUntil = now + 2 * this.leaseMs
  }

  /** A leader that made no progress: no vote for it, and no following it, until `until`. */
  distrust (peer: string, until: number): void {
    this.distrusted.set(peer, until)
    if (this.leader === peer) this.leader = null
  }

  isDistrusted (peer: string, now: number): boolean {
    return (this.distrusted.get(peer) ?? 0) > now
  }
}

/** Live peers ordered by who should stand first: most proven rounds, then lower peer id. */
export function rankCandidates (peers: Array<{ peer: string, round: number }>): string[] {
  return [...peers].sort((a, b) => (b.round - a.round) || (a.peer < b.peer ? -1 : a.peer > b.peer ? 1 : 0)).map(p => p.peer)
}
