// Who this peer dials, and how often. Peers found by mDNS or named with --bootstrap are trusted
// sources: they are redialed whenever the connection is gone, with backoff, for as long as it takes.
// Addresses a peer announces in its heartbeats are hints, not orders: a liar can name anyone's
// address. So a hinted address is dialed only for the peer id that signed the heartbeat naming it,
// at most `maxAddrsPerPeer` of them, each address at most `attemptsPerAddr` times within
// `memoryMs` (whatever peer ids it is dialed for), with backoff between attempts. An address
// that answered as a peer is that peer's own: it is dialed again for it, with backoff, like a
// trusted one (a restart, a partition); for any other peer id it stays on its budget. A relayed
// address (`<relay>/p2p-circuit`) is one relay's for every peer behind it: its budget is kept per
// peer (a dial through a member's relay aims at that peer, and the relay bounds what it relays).
import type { Clock } from '../clock.ts'

export interface DialerOptions {
  /** failed attempts after which a hinted address is left alone */
  attemptsPerAddr: number
  /** hinted addresses taken from one peer's heartbeat */
  maxAddrsPerPeer: number
  /** how long failed attempts at an address are remembered */
  memoryMs: number
  minBackoffMs: number
  maxBackoffMs: number
  /** peers remembered at most (the oldest are forgotten) */
  maxPeers: number
}

export const DEFAULT_DIALER: DialerOptions = { attemptsPerAddr: 3, maxAddrsPerPeer: 4, memoryMs: 3_600_000, minBackoffMs: 250, maxBackoffMs: 30_000, maxPeers: 1000 }

export interface DialerDeps {
  clock: Clock
  /** dials a peer: by id (trusted: any address libp2p knows), or at one address */
  dial: (peer: string, addr?: string) => Promise<void>
  connected: (peer: string) => boolean
  /** a hint the budgets refused (`too-many-addrs`, `addr-budget`), for the peer that gave it */
  refused: (reason: string, peer: string, detail: string) => void
}

interface Target {
  peer: string
  /** undefined: dial by peer id (a trusted source) */
  addr?: string
  nextDial: number
  backoffMs: number
  /** when it was last dialed */
  dialedAt: number
  lastError?: string
}

/** The soonest a peer heard again is redialed after its last dial, whatever its backoff. */
const HEARD_REDIAL_MS = 2000

interface AddrRecord {
  /** when it was dialed for a peer it has not answered as (counted as the dial starts: dials run at once) */
  attempts: Array<{ at: number }>
  answeredAs: Set<string>
}

export class Dialer {
  private readonly deps: DialerDeps
  private readonly options: DialerOptions
  private readonly targets = new Map<string, Target>()
  private readonly addrs = new Map<string, AddrRecord>()
  private readonly dialing = new Set<string>()
  /** the hints refused for their budget already, by peer and address: said once, not at every heartbeat */
  private readonly told = new Set<string>()

  constructor (deps: DialerDeps, options: DialerOptions = DEFAULT_DIALER) {
    this.deps = deps
    this.options = options
  }

  /** A peer from mDNS or --bootstrap: redialed whenever it is not connected. */
  trust (peer: string): void {
    this.add({ peer, nextDial: 0, backoffMs: this.options.minBackoffMs, dialedAt: -Infinity })
  }

  /** Addresses a peer announced for itself: dialed within the budgets. */
  hint (peer: string, addrs: string[]): void {
    if (this.deps.connected(peer)) return
    this.heard(peer, addrs)
    let taken = 0
    for (const addr of addrs) {
      if (taken >= this.options.maxAddrsPerPeer) {
        this.deps.refused('too-many-addrs', peer, `${addrs.length} addresses in one heartbeat; ${this.options.maxAddrsPerPeer} taken`)
        break
      }
      taken++
      if (!this.withinBudget(addr, peer)) {
        const key = `${peer} ${addr}`
        if (!this.told.has(key)) {
          if (this.told.size >= 4 * this.options.maxPeers) this.told.clear()
          this.told.add(key)
          this.deps.refused('addr-budget', peer, `${addr} was dialed ${this.options.attemptsPerAddr} times lately and never answered as this peer`)
        }
        continue
      }
      this.add({ peer, addr, nextDial: 0, backoffMs: this.options.minBackoffMs, dialedAt: -Infinity })
    }
    this.tick()
  }

  /**
   * `peer` was heard (its signed heartbeat, through others) while not connected: it is back (a
   * partition healed, a restart), so its dials that wait out a backoff (by id, if it is trusted;
   * at addresses that answered as it) are due now, at most once every HEARD_REDIAL_MS.
   */
  private heard (peer: string, addrs: string[]): void {
    const now = this.deps.clock.now()
    const own = addrs.filter(addr => this.addrs.get(budgetKey(addr, peer))?.answeredAs.has(peer) === true)
    for (const key of [peer, ...own.map(addr => `${peer} ${addr}`)]) {
      const t = this.targets.get(key)
      if (t === undefined || t.nextDial <= now || now - t.dialedAt < HEARD_REDIAL_MS) continue
      t.nextDial = now
      t.backoffMs = this.options.minBackoffMs
    }
  }

  /** Dials what is due. Called on every hint and about once a second. */
  tick (): void {
    const now = this.deps.clock.now()
    for (const [key, t] of this.targets) {
      if (this.dialing.has(key) || now < t.nextDial || this.deps.connected(t.peer)) continue
      if (t.addr !== undefined && !this.withinBudget(t.addr, t.peer)) {
        this.targets.delete(key) // spent: a hint no longer worth a dial
        continue
      }
      this.dialing.add(key)
      t.dialedAt = now
      const attempt = t.addr === undefined ? undefined : this.attempted(t.addr, t.peer)
      this.deps.dial(t.peer, t.addr).then(() => {
        t.backoffMs = this.options.minBackoffMs
        t.lastError = undefined
        if (t.addr === undefined) return
        // it answered as its peer: the peer's own address, and not a wasted attempt
        const record = this.record(t.addr, t.peer)
        record.answeredAs.add(t.peer)
        record.attempts = record.attempts.filter(a => a !== attempt)
      }, (err: unknown) => {
        t.lastError = String((err as Error)?.message ?? err).split('\n')[0].slice(0, 200)
        t.nextDial = this.deps.clock.now() + t.backoffMs
        t.backoffMs = Math.min(this.options.maxBackoffMs, t.backoffMs * 2)
      }).finally(() => { this.dialing.delete(key) })
    }
  }

  /** Why the last dial of a trusted peer failed, if it did. */
  lastError (peer: string): string | undefined {
    return this.targets.get(peer)?.lastError
  }

  private add (target: Target): void {
    const key = target.addr === undefined ? target.peer : `${target.peer} ${target.addr}`
    if (this.targets.has(key)) return
    if (this.targets.size >= this.options.maxPeers) this.targets.delete(this.targets.keys().next().value!)
    this.targets.set(key, target)
  }

  private withinBudget (addr: string, peer: string): boolean {
    const record = this.addrs.get(budgetKey(addr, peer))
    if (record === undefined || record.answeredAs.has(peer)) return true
    const since = this.deps.clock.now() - this.options.memoryMs
    record.attempts = record.attempts.filter(a => a.at > since)
    return record.attempts.length < this.options.attemptsPerAddr
  }

  private record (addr: string, peer: string): AddrRecord {
    const key = budgetKey(addr, peer)
    let record = this.addrs.get(key)
    if (record === undefined) {
      if (this.addrs.size >= 4 * this.options.maxPeers) this.addrs.delete(this.addrs.keys().next().value!)
      record = { attempts: [], answeredAs: new Set() }
      this.addrs.set(key, record)
    }
    return record
  }

  /** Counts a dial of `addr` for `peer` against the address's budget; returns the attempt, if counted. */
  private attempted (addr: string, peer: string): { at: number } | undefined {
    const record = this.record(addr, peer)
    if (record.answeredAs.has(peer)) return undefined // the peer's own address: a restart or a partition, not a lie
    const attempt = { at: this.deps.clock.now() }
    record.attempts.push(attempt)
    return attempt
  }
}

/** Whether `addr` goes through a relay (circuit relay v2): the one test of it in the host and the dialer. */
export function isRelayed (addr: string): boolean {
  return addr.includes('/p2p-circuit')
}

/** What a dial of `addr` for `peer` counts against: the address, or for a relayed one, the address and the peer. */
function budgetKey (addr: string, peer: string): string {
  return isRelayed(addr) ? `${addr}/p2p/${peer}` : addr
}
