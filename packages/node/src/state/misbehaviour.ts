// Misbehaviour costs: every offence a peer commits (a malformed or forged message, a forged
// certificate, a bad update or proposal) is counted against it, logged once per peer and reason,
// lowers its gossipsub score, and a repeat offender is banned for a while: disconnected, its
// connections refused and its messages ignored. Honest accidents (a stale message after a
// partition, a transfer that timed out) are not offences.
import type { Logger } from '../log.ts'
import { Counts } from './counts.ts'

/** Reasons that are offences; anything else a validator rejects is counted but not held against the sender. */
export const OFFENCES = [
  'malformed', 'spoofed', 'not-leader', 'not-allowed', 'bad-vote', 'bad-certificate', 'bad-proposal',
  'non-finite', 'wrong-shape', 'too-many-samples', 'unsigned', 'equivocation', 'flood', 'relay-flood'
] as const

/** What a peer can be held to account for: one of OFFENCES. */
export type Offence = typeof OFFENCES[number]

const OFFENCE_SET: ReadonlySet<string> = new Set(OFFENCES)

export function isOffence (reason: string): reason is Offence {
  return OFFENCE_SET.has(reason)
}

export interface LedgerOptions {
  /** offences after which a peer is banned */
  banAfter: number
  banMs: number
  /** an offence counts for this long */
  memoryMs: number
}

export const DEFAULT_LEDGER: LedgerOptions = { banAfter: 20, banMs: 10 * 60_000, memoryMs: 10 * 60_000 }

interface Record {
  /** times of the offences still remembered */
  times: number[]
  byReason: { [reason: string]: number }
  /** suspicious, but possibly honest: named, never held against the peer */
  notes: { [reason: string]: number }
  bannedUntil: number
}

export class Ledger {
  private readonly peers = new Map<string, Record>()
  private readonly log: Logger
  private readonly now: () => number
  private readonly options: LedgerOptions
  private readonly onBan: (peer: string) => void
  private readonly counts: Counts

  constructor (log: Logger, now: () => number, onBan: (peer: string) => void, counts: Counts, options: LedgerOptions = DEFAULT_LEDGER) {
    this.log = log
    this.counts = counts
    this.now = now
    this.onBan = onBan
    this.options = options
  }

  /** Counts an offence of `peer`; says so the first time for each reason; bans a repeat offender. */
  offence (peer: string, reason: Offence, detail: string): void {
    const now = this.now()
    Counts.bump(this.counts.offences, reason)
    const r = this.record(peer)
    r.times = r.times.filter(t => now - t < this.options.memoryMs)
    r.times.push(now)
    const first = r.byReason[reason] === undefined
    r.byReason[reason] = (r.byReason[reason] ?? 0) + 1
    if (first) this.log.warn('misbehaviour', { peer, reason, detail }, `peer ${peer.slice(-6)} misbehaves (${reason}): ${detail}`)
    if (r.times.length >= this.options.banAfter) this.ban(peer, r, now)
  }

  /**
   * An offence proven beyond doubt by the peer's own signatures (two votes in one term): counted,
   * and the peer banned at once, not after repeat offences.
   */
  convict (peer: string, reason: Offence, detail: string): void {
    this.offence(peer, reason, detail)
    this.ban(peer, this.record(peer), this.now())
  }

  private ban (peer: string, r: Record, now: number): void {
    if (r.bannedUntil > now) return
    r.bannedUntil = now + this.options.banMs
    this.counts.bans++
    this.log.warn('peer-banned', { peer, offences: r.times.length, byReason: { ...r.byReason } },
      `peer ${peer.slice(-6)} banned for ${Math.round(this.options.banMs / 60_000)} min after ${r.times.length} offences (${Object.entries(r.byReason).map(([k, v]) => `${k} ${v}`).join(', ')})`)
    this.onBan(peer)
  }

  /**
   * Something suspicious that an honest peer may also do (a leadership claim we cannot prove, a term
   * beyond reach, an update over the norm bound): named once per peer and reason, counted, never held against it.
   */
  note (peer: string, reason: string, detail: string): void {
    const r = this.record(peer)
    const first = r.notes[reason] === undefined
    r.notes[reason] = (r.notes[reason] ?? 0) + 1
    if (first) this.log.warn('suspicion', { peer, reason, detail }, `peer ${peer.slice(-6)} is suspicious (${reason}): ${detail}`)
  }

  private record (peer: string): Record {
    let r = this.peers.get(peer)
    if (r === undefined) {
      if (this.peers.size >= 10_000) this.peers.delete(this.peers.keys().next().value!)
      r = { times: [], byReason: {}, notes: {}, bannedUntil: 0 }
      this.peers.set(peer, r)
    }
    return r
  }

  isBanned (peer: string): boolean {
    return (this.peers.get(peer)?.bannedUntil ?? 0) > this.now()
  }

  /** For gossipsub's application score: negative with every remembered offence. */
  score (peer: string): number {
    const r = this.peers.get(peer)
    if (r === undefined) return 0
    const now = this.now()
    return r.bannedUntil > now ? -1000 : -10 * r.times.filter(t => now - t < this.options.memoryMs).length
  }

  /** The peers with offences, for /api/status. */
  snapshot (): Array<{ peer: string, offences: { [reason: string]: number }, suspicions: { [reason: string]: number }, banned: boolean }> {
    const now = this.now()
    return [...this.peers].map(([peer, r]) => ({ peer, offences: { ...r.byReason }, suspicions: { ...r.notes }, banned: r.bannedUntil > now }))
  }
}
