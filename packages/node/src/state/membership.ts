// Membership: who is out there, from their heartbeats. A peer is live until it has been silent
// for the lease, or for SILENT_INTERVALS of the interval its heartbeat announced if that is longer
// (followers of a large network beat less often). Pure state: time is passed in.
import type { Heartbeat } from '@dml/protocol'
import type { Counts } from './counts.ts'

/** Heartbeats a member may miss in a row before it is dropped (when that is longer than the lease). */
export const SILENT_INTERVALS = 3
/** Members kept at most (keys are free): past it, the least recently heard goes. */
export const MAX_KEPT_MEMBERS = 4096

/** How long the peer of `heartbeat` may be silent before it is dropped: the lease, or three of its intervals. */
export function silenceMs (leaseMs: number, heartbeat: { everyMs: number }): number {
  return Math.max(leaseMs, SILENT_INTERVALS * heartbeat.everyMs)
}

/** The peers of `heartbeats` that say they follow `leader` in `term`. */
export function followersOf (heartbeats: Array<{ peer: string, leader: string | null, term: number }>, leader: string, term: number): string[] {
  return heartbeats.filter(h => h.leader === leader && h.term === term).map(h => h.peer)
}

/** followersOf, or if none follow `leader` in `term`, those that follow it in any term (see Standing.followersOf). */
export function followersIn (heartbeats: Array<{ peer: string, leader: string | null, term: number }>, leader: string, term: number): string[] {
  const inTerm = followersOf(heartbeats, leader, term)
  return inTerm.length > 0 ? inTerm : heartbeats.filter(h => h.leader === leader).map(h => h.peer)
}

interface Member {
  heartbeat: Heartbeat
  lastSeen: number
  /** since when its heartbeats have named the leader and term they name now */
  followingSince: number
}

export class Membership {
  readonly leaseMs: number
  private readonly counts: Counts
  private readonly members = new Map<string, Member>()

  constructor (leaseMs: number, counts: Counts) {
    this.leaseMs = leaseMs
    this.counts = counts
  }

  /** Records a heartbeat; true when its peer was not a member. */
  observe (heartbeat: Heartbeat, now: number): boolean {
    const before = this.members.get(heartbeat.peer)
    const joined = !this.members.delete(heartbeat.peer) // kept in the order they were last heard
    if (joined) this.counts.add('peersJoined')
    const same = before !== undefined && before.heartbeat.leader === heartbeat.leader && before.heartbeat.term === heartbeat.term
    this.members.set(heartbeat.peer, { heartbeat, lastSeen: now, followingSince: same ? before.followingSince : now })
    if (this.members.size > MAX_KEPT_MEMBERS) this.members.delete(this.members.keys().next().value!)
    return joined
  }

  get size (): number {
    return this.members.size
  }

  /** Drops and returns the peers silent for longer than they may be, with how long that was. */
  expire (now: number): Array<{ peer: string, silentMs: number }> {
    const lost: Array<{ peer: string, silentMs: number }> = []
    for (const [peer, member] of this.members) {
      if (now - member.lastSeen >= silenceMs(this.leaseMs, member.heartbeat)) {
        this.members.delete(peer)
        lost.push({ peer, silentMs: now - member.lastSeen })
      }
    }
    this.counts.add('peersLost', lost.length)
    return lost
  }

  /** The latest heartbeats of the peers not silent for longer than they may be (this peer is not a member). */
  live (now: number): Heartbeat[] {
    return [...this.members.values()].filter(m => now - m.lastSeen < silenceMs(this.leaseMs, m.heartbeat)).map(m => m.heartbeat)
  }

  /** When `peer` was last heard, while it is a member. */
  lastSeen (peer: string): number | undefined {
    return this.members.get(peer)?.lastSeen
  }

  /** Since when the heartbeats of `peer` have named the leader and term they name now, while it is a member. */
  followingSince (peer: string): number | undefined {
    return this.members.get(peer)?.followingSince
  }

  /** Drops `peer` (it said it is leaving); true if it was a member. */
  forget (peer: string): boolean {
    const was = this.members.delete(peer)
    if (was) this.counts.add('peersLost')
    return was
  }

  get (peer: string): Heartbeat | undefined {
    return this.members.get(peer)?.heartbeat
  }
}
