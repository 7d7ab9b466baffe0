// Membership: who is out there, from their heartbeats. A peer heard within the lease is live; one
// silent for the lease is dropped. Pure state: time is passed in.
import type { Heartbeat } from '@dml/protocol'

interface Member {
  heartbeat: Heartbeat
  lastSeen: number
}

export class Membership {
  readonly leaseMs: number
  readonly counters = { peersJoined: 0, peersLost: 0 }
  private readonly members = new Map<string, Member>()

  constructor (leaseMs: number) { this.leaseMs = leaseMs }

  /** Records a heartbeat; true when its peer was not a member. */
  observe (heartbeat: Heartbeat, now: number): boolean {
    const joined = !this.members.has(heartbeat.peer)
    if (joined) this.counters.peersJoined++
    this.members.set(heartbeat.peer, { heartbeat, lastSeen: now })
    return joined
  }

  /** Drops and returns the peers silent for the lease. */
  expire (now: number): string[] {
    const lost: string[] = []
    for (const [peer, member] of this.members) {
      if (now - member.lastSeen >= this.leaseMs) {
        this.members.delete(peer)
        lost.push(peer)
      }
    }
    this.counters.peersLost += lost.length
    return lost
  }

  /** The latest heartbeats of the peers heard within the lease (this peer is not a member). */
  live (now: number): Heartbeat[] {
    return [...this.members.values()].filter(m => now - m.lastSeen < this.leaseMs).map(m => m.heartbeat)
  }

  /** When `peer` was last heard, while it is a member. */
  lastSeen (peer: string): number | undefined {
    return this.members.get(peer)?.lastSeen
  }

  get (peer: string): Heartbeat | undefined {
    return this.members.get(peer)?.heartbeat
  }
}
