// Leader election: terms as in Raft, without a log. A leader announces itself in its heartbeats.
// A peer that has seen no valid leader heartbeat for the lease claims the next term; to avoid
// duelling claims, peers wait their rank (most finished rounds first, then peer id) in slots.
// Among leaders, the one with the most finished rounds wins, then the higher term, then the
// lower peer id; a leader that loses steps down, a winner behind in term bumps its term past
// the loser's, so no finished round is ever given up for a leader that lacks it.
// Pure logic: time is passed in, so the rules are tested with fake time.

export interface LeaderClaim {
  /** the claiming peer */
  peer: string
  term: number
  /** finished rounds the claimant holds */
  round: number
}

export type ObserveResult =
  | { kind: 'follow' } // accepted: this peer now follows claim.peer
  | { kind: 'keep' } // the current leader is kept (claim lost the tie-break or is stale)
  | { kind: 'stale' } // claim is for an older term: reject the message
  | { kind: 'claim' } // claim is behind us: we claimed a higher term ourselves

export interface ElectionState {
  term: number
  leader: string | null
}

export class Election {
  term = 0
  leader: string | null = null
  readonly self: string
  leaseMs: number
  slotMs: number
  /** when a valid heartbeat of the current leader was last seen (or when we started waiting) */
  private lastLeaderSeen: number
  /** highest term seen in any message; a claim always goes past it */
  private maxTermSeen = 0
  /** after giving up leadership, no claim before this time: another peer should lead */
  private holdOffUntil = 0
  elections = 0

  constructor (self: string, leaseMs: number, now: number, slotMs = Math.max(200, leaseMs / 5)) {
    this.self = self
    this.leaseMs = leaseMs
    this.slotMs = slotMs
    this.lastLeaderSeen = now
  }

  get isLeader (): boolean { return this.leader === this.self }

  /** Any message's term: remembered so a later claim goes past it. */
  noteTerm (term: number): void {
    if (term > this.maxTermSeen) this.maxTermSeen = term
  }

  /** Decides on a leader claim (a leader's heartbeat or leader-only message); `myRound` is our finished rounds. */
  observe (claim: LeaderClaim, myRound: number, now: number): ObserveResult {
    this.noteTerm(claim.term)
    if (claim.peer === this.self) return { kind: 'keep' }
    if (claim.peer === this.leader && claim.term === this.term) {
      this.lastLeaderSeen = now
      return { kind: 'keep' }
    }
    if (claim.round < myRound) {
      // the claimant lacks rounds we finished: it must not lead. Take over with a higher term
      // (a current leader does the same, so its followers stay with it).
      this.claim(now)
      return { kind: 'claim' }
    }
    if (claim.term < this.term) {
      // an old term, but more finished rounds than ours (a healed partition): its leader bumps
      // its term when it sees ours; until then we keep ours
      return { kind: 'stale' }
    }
    if (claim.term === this.term && this.leader !== null && !beats(claim, { peer: this.leader, term: this.term, round: myRound })) {
      return { kind: 'keep' }
    }
    this.term = claim.term
    this.leader = claim.peer
    this.lastLeaderSeen = now
    return { kind: 'follow' }
  }

  /**
   * Called periodically. Returns true when this peer claimed leadership for a new term.
   * `ranked` lists the live peers (self included) by (round desc, id asc): the first claims first.
   */
  tick (now: number, ranked: string[]): boolean {
    if (this.isLeader || now < this.holdOffUntil) return false
    const rank = Math.max(0, ranked.indexOf(this.self))
    if (now - this.lastLeaderSeen < this.leaseMs + rank * this.slotMs) return false
    this.claim(now)
    return true
  }

  /** A leader hearing of a higher term that it still beats moves past it and stays leader. */
  bumpTerm (term: number): void {
    this.noteTerm(term)
    if (this.isLeader && this.term <= term) this.term = this.maxTermSeen + 1
    this.maxTermSeen = Math.max(this.maxTermSeen, this.term)
  }

  /**
   * Forgets a leader that went silent. The lease keeps counting from its last heartbeat, so the
   * best-ranked peer claims at once instead of waiting a second lease.
   */
  leaderLost (): void {
    this.leader = null
  }

  /**
   * Gives up leadership (the coordinator could not make progress). Followers see our heartbeat
   * follow no one and elect another; we do not claim again for two leases, unless nobody else does.
   */
  resign (now: number): void {
    if (!this.isLeader) return
    this.leader = null
    this.lastLeaderSeen = now
    this.holdOffUntil = now + 2 * this.leaseMs
  }

  private claim (now: number): void {
    this.term = Math.max(this.term, this.maxTermSeen) + 1
    this.maxTermSeen = this.term
    this.leader = this.self
    this.lastLeaderSeen = now
    this.elections++
  }
}

/** Whether leader claim `a` wins over `b` at the same term: more rounds, then lower peer id. */
export function beats (a: LeaderClaim, b: LeaderClaim): boolean {
  if (a.round !== b.round) return a.round > b.round
  if (a.term !== b.term) return a.term > b.term
  return a.peer < b.peer
}

/** Live peers ordered by who should claim leadership first. */
export function rankCandidates (peers: Array<{ peer: string, round: number }>): string[] {
  return [...peers].sort((a, b) => (b.round - a.round) || (a.peer < b.peer ? -1 : a.peer > b.peer ? 1 : 0)).map(p => p.peer)
}
