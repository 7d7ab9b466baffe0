// Who takes part in a term's rounds, its leader's side of participant selection (aggregation is
// the other half, in the strategy): the followers given work, less those on the bench (peers that
// took work and brought nothing that counts, for 1, 2, 4, ... rounds as their misses add up);
// newcomers on probation (a few a round, at a typical speed); and the pool the checkers are drawn
// from, less the members that did not sign lately.
import type { Heartbeat, Unstamped } from '@dml/protocol'
import { poolSlack, type QuorumPolicy, type Standing } from '../proof/certificates.ts'
import { short, type Logger } from '../log.ts'
import { probationSlots, type ProvenPeers } from '../proof/proven.ts'
import type { RoundState } from './round-state.ts'

/** The longest a peer that brings nothing goes without work, in rounds. */
const MAX_BENCH_ROUNDS = 32

export interface RosterDeps {
  self: string
  policy: QuorumPolicy
  /** the peers proven by counted updates lately */
  proven: ProvenPeers
  standing: () => Standing
  /** live peers, this one included */
  live: () => Array<Unstamped<Heartbeat>>
  log: Logger
}

export class Roster {
  private readonly d: RosterDeps
  /**
   * Peers that took work and brought no update that counts (nothing at all, a bad update, a
   * failure): no work for them until `untilRound`. One that contributes again starts afresh. A
   * follower that never delivers costs one round, not every one.
   */
  private readonly bench = new Map<string, { untilRound: number, misses: number }>()
  /** checkers that did not sign a result they could check, and until which round they are not drawn again */
  private readonly unsigned = new Map<string, number>()

  constructor (deps: RosterDeps) {
    this.d = deps
  }

  /** The followers to give round `round` work: those not on the bench, unless there would be fewer than `minPeers` without them; newcomers on probation. */
  workers (followers: Array<Unstamped<Heartbeat>>, round: number, minPeers: number): Array<Unstamped<Heartbeat>> {
    const rested = followers.filter(h => (this.bench.get(h.peer)?.untilRound ?? 0) <= round)
    return this.onProbation(rested.length >= minPeers ? rested : followers)
  }

  /**
   * The round's members, to draw its checkers from: the followers (this peer too) that are
   * members, sorted, less those that did not sign lately, as long as the pool still leaves out no
   * more of them than a peer accepts (poolSlack).
   */
  pool (followers: string[], round: number): string[] {
    const standing = this.d.standing()
    const members = followers.filter(p => standing.isMember(p)).sort()
    const slack = standing.byWork ? poolSlack(members.length) : Infinity
    let left = 0
    return members.filter(p => {
      if ((this.unsigned.get(p) ?? 0) <= round || left >= slack) return true
      left++
      return false
    })
  }

  /** A peer not proven by a counted update (this one never is a newcomer; before any round nobody is). */
  isNewcomer (peer: string): boolean {
    const { proven } = this.d
    return proven.any && peer !== this.d.self && !proven.has(peer)
  }

  /** The round's updates are in: its assigned live peers that brought none that counts go on the bench. */
  collected (state: RoundState): void {
    const round = state.start.round
    // a peer that went silent (a crash, a partition) is out of the membership already: not benched,
    // or a healed partition would leave honest peers without work for rounds
    const live = new Set(this.d.live().map(h => h.peer))
    for (const { peer } of state.start.assignments) {
      if (peer === this.d.self || !live.has(peer)) continue
      if (state.updates.has(peer)) {
        // a checker's misses end once it signs too (see signed)
        if (!state.checkers.includes(peer)) this.bench.delete(peer)
        continue
      }
      const reason = state.dropped.get(peer) ?? 'no update'
      this.benchPeer(peer, round, `brought no update that counts (${reason})`, reason)
    }
  }

  /** The round's signatures are in: a checker that signed is drawn again, and one that also brought an update is in good standing. */
  signed (state: RoundState): void {
    for (const peer of state.votes.keys()) {
      this.unsigned.delete(peer)
      if (state.updates.has(peer)) this.bench.delete(peer)
    }
  }

  /** Checkers that did not sign a round that failed for want of signatures: benched, and not drawn again for as long. */
  unsignedFailed (peers: string[], round: number): void {
    for (const peer of peers) this.unsigned.set(peer, this.benchPeer(peer, round, 'did not sign the result', 'no signature'))
  }

  /**
   * Newcomers (peers not proven by a counted update, see proven.ts) get work a few at a time, and
   * at the proven peers' median speed at most: a made-up identity claiming a huge speed can neither
   * take the round's samples nor outnumber the peers that sign its result.
   */
  private onProbation (followers: Array<Unstamped<Heartbeat>>): Array<Unstamped<Heartbeat>> {
    if (!this.d.proven.any) return followers
    const proven = followers.filter(h => !this.isNewcomer(h.peer))
    const speeds = proven.map(h => h.speed).sort((a, b) => a - b)
    const typical = speeds[speeds.length >> 1]
    const newcomers = followers.filter(h => this.isNewcomer(h.peer)).slice(0, probationSlots(this.d.policy, proven.length))
    return [...proven, ...newcomers.map(h => ({ ...h, speed: Math.min(h.speed, typical) }))]
  }

  /** No work for `peer` for 1, 2, 4, ... rounds (MAX_BENCH_ROUNDS at most) as its misses add up; returns the round it may work again. */
  private benchPeer (peer: string, round: number, what: string, reason: string): number {
    const misses = (this.bench.get(peer)?.misses ?? 0) + 1
    const rounds = Math.min(MAX_BENCH_ROUNDS, 2 ** (misses - 1))
    const untilRound = round + rounds + 1
    this.bench.set(peer, { untilRound, misses })
    this.d.log.info('peer-benched', { peer, round, rounds, reason },
      `round ${round}: peer ${short(peer)} ${what}: no work for it for ${rounds} round${rounds === 1 ? '' : 's'}`)
    return untilRound
  }
}
