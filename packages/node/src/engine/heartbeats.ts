// When this peer's heartbeats go out. A tick sends one when what others act on changed or the
// last one's interval is nearly over; a neighbour that just subscribed hears one soon, several at
// once one between them; a follower of a large network beats less often, so that what each peer
// receives stays the same as the network grows. What a heartbeat says is the node's.
import { MAX_HEARTBEAT_EVERY_MS, type Heartbeat, type Unstamped } from '@dml/protocol'
import type { Clock } from '../clock.ts'

/**
 * About how many heartbeats the whole network sends per heartbeat interval. Every peer hears every
 * heartbeat (several times over, through gossip), so a follower of a network larger than this
 * beats less often. The leader beats every interval, as its silence is what starts an election.
 */
const HEARTBEATS_PER_INTERVAL = 8

export interface HeartbeatsDeps {
  heartbeatMs: number
  clock: Clock
  /** this peer's heartbeat as of now */
  compose: () => Unstamped<Heartbeat>
  publish: (heartbeat: Unstamped<Heartbeat>) => void
  isLeader: () => boolean
  /** the live members other than this peer */
  members: () => number
  running: () => boolean
}

export class Heartbeats {
  private readonly d: HeartbeatsDeps
  /** the last heartbeat sent: when, what in it others act on, and the interval it announced */
  private last: { at: number, news: string, everyMs: number } | null = null
  /** the timer of a heartbeat owed to neighbours that subscribed within a quarter interval of the last (subscribed) */
  private neighbourBeat: unknown

  constructor (deps: HeartbeatsDeps) {
    this.d = deps
  }

  /** The interval this peer's heartbeats announce: the leader's is the base one, a follower's grows with the network. */
  everyMs (): number {
    const peers = 1 + this.d.members()
    const intervals = this.d.isLeader() ? 1 : Math.ceil(peers / HEARTBEATS_PER_INTERVAL)
    return Math.min(MAX_HEARTBEAT_EVERY_MS, this.d.heartbeatMs * intervals)
  }

  /**
   * Sends this peer's heartbeat: now, or (`due`, at a tick) when what others act on changed (the
   * leader it follows, its round, its model, a certificate, its addresses) or its last heartbeat's
   * interval is nearly over.
   */
  send (when: 'now' | 'due' = 'now'): void {
    const now = this.d.clock.now()
    const heartbeat = this.d.compose()
    const news = JSON.stringify([heartbeat.term, heartbeat.leader, heartbeat.round, heartbeat.modelHash, heartbeat.termCert, heartbeat.roundCert, heartbeat.addrs])
    const last = this.last
    // half a tick early: a timer that fires a little late must not push the heartbeat a whole tick
    if (when === 'due' && last !== null && news === last.news && now + this.d.heartbeatMs / 2 < last.at + last.everyMs) return
    this.last = { at: now, news, everyMs: heartbeat.everyMs }
    this.d.publish(heartbeat)
  }

  /**
   * A new neighbour on the control topic hears from us now, not at the next tick; many at once
   * (a network starting) hear one heartbeat each quarter interval, not one each: those that come
   * within a quarter interval of the last heartbeat hear the next, at its end. (Dropping them
   * instead cost a peer just started, whose first heartbeat went out before it had neighbours,
   * a whole interval before anyone heard of it.)
   */
  subscribed (): void {
    if (!this.d.running() || this.neighbourBeat !== undefined) return
    const { clock } = this.d
    const wait = this.last === null ? 0 : this.last.at + this.d.heartbeatMs / 4 - clock.now()
    if (wait <= 0) {
      this.send()
      return
    }
    const since = clock.now()
    this.neighbourBeat = clock.setTimeout(() => {
      this.neighbourBeat = undefined
      // a heartbeat sent since (a tick) reached them
      if (this.d.running() && (this.last?.at ?? -Infinity) <= since) this.send()
    }, wait)
  }

  stop (): void {
    if (this.neighbourBeat !== undefined) this.d.clock.clearTimeout(this.neighbourBeat)
  }
}
