// Which peers have proven themselves, the members of an open network: their update counted in a
// certified round lately, or their signature certified one. Keys are free and one address holds
// many of them, so in an open network an identity counts in a quorum (elections, a leader's
// standing, a certificate's signers) only once it has done real work, and a newcomer gets work on
// probation, a few at a time, never so many that the proven peers stop being a quorum of a round.
// Before the first certified round nobody is proven, and every directly connected peer counts. A
// newcomer learns who is proven from the round certificate of the leader it finds.
import { quorumOf, type QuorumPolicy } from './certificates.ts'

/** Rounds after which a peer's last counted update no longer proves it. */
export const PROVEN_FOR_ROUNDS = 20

export class ProvenPeers {
  /** peer → the last certified round its update counted in */
  private readonly lastRound = new Map<string, number>()
  private latest = 0

  /** A certified round: its contributors and the signers that counted are proven. */
  sawRound (round: { result: { round: number, contributions: Array<{ peer: string }> }, signers: Iterable<string> }): void {
    this.saw(round.result.round, [...round.result.contributions.map(c => c.peer), ...round.signers])
  }

  /** The contributors (and signers) of certified round `round`. */
  saw (round: number, contributors: Iterable<string>): void {
    this.latest = Math.max(this.latest, round)
    for (const peer of contributors) this.lastRound.set(peer, Math.max(round, this.lastRound.get(peer) ?? 0))
    for (const [peer, last] of this.lastRound) if (last <= this.latest - PROVEN_FOR_ROUNDS) this.lastRound.delete(peer)
  }

  has (peer: string): boolean {
    return this.lastRound.has(peer)
  }

  /** Who is proven, and by which round: what a checkpoint keeps (see restore). */
  entries (): Array<[string, number]> {
    return [...this.lastRound]
  }

  /**
   * Takes up what a checkpoint kept. A peer back from a restart knew every member its certified
   * rounds proved, not only those of the last one: restored from that alone, a peer that had
   * missed rounds counted a member that had come back meanwhile as nobody, and could prove no
   * leader's term nor round to itself (the chaos suite once ended with three peers so stuck).
   */
  restore (entries: Iterable<[string, number]>): void {
    for (const [peer, round] of entries) this.saw(round, [peer])
  }

  /** Whether any peer has proven itself yet (until then, every peer counts). */
  get any (): boolean {
    return this.lastRound.size > 0
  }

  /**
   * Of `peers`, those that count in a quorum: the proven ones, or all before anyone is proven.
   * This peer too is counted only once proven: a newcomer did not vote for the leader it finds.
   */
  counted (peers: string[]): string[] {
    return this.any ? peers.filter(p => this.has(p)) : peers
  }
}

/**
 * How many newcomers a round may take beside `proven` proven peers: at least one (or nobody new
 * could ever join a small network), and no more than leaves the proven ones a quorum of the
 * round's participants with one of them missing. A permissioned network has no newcomers to doubt.
 */
export function probationSlots (policy: QuorumPolicy, proven: number): number {
  if (policy.allowed !== undefined) return Infinity // allow-listed ids are members already
  let slots = 0
  while (quorumOf(policy, proven + slots + 1) <= proven - 1) slots++
  return Math.max(1, slots)
}
