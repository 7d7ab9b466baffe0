// Admission: which control messages are new, and how many a peer may bring. Before a message is
// judged against the engine's state, it must be newer than every message of its kind its author
// sent that this peer took (its `seq`, the author's message clock), and within its author's and
// its relay's budgets.
//
// A signature proves who said something, not that it was said now: a member that recorded a dead
// leader's heartbeats could replay them and keep everyone following a leader that is gone. Gossip
// forgets a message after a couple of minutes, and a copy after that is new to it, not to us: we
// keep the newest seq of each author and kind. Gossip keeps no order, so an older message that
// comes a little late is only dropped; one older by more than REPLAY_AFTER_MS, or that comes that
// long after the newest, was replayed: it is refused (gossipsub scores down the peer that relayed
// it) and the relay is named. The author did nothing wrong.
//
// Budgets are token buckets: an author may send AUTHOR_BURST messages at once and AUTHOR_RATE a
// second (honest peers send a few a second; a leader of 32 answers up to 31 newcomers at once);
// a relay, which forwards everyone's, twenty times that, and brings at most NEW_AUTHOR_BURST
// authors this peer has not heard of at once, NEW_AUTHOR_RATE a second after that (keys are free:
// a liar could make up a new author for every message). Beyond, each message is refused as an
// offence of its author (`flood`) or relay (`relay-flood`), so a flooder is banned within a few
// dozen messages, and what a peer keeps per author and relay is bounded.
import type { ControlMessage } from '@dml/protocol'

/** An older message than the newest of its kind by this much (by its author's clock, or ours since the newest came) was replayed. */
export const REPLAY_AFTER_MS = 30_000
/** What is kept of an author silent this long is forgotten (a dead peer's newest seq need not be kept forever). */
export const FORGET_AFTER_MS = 60 * 60_000
/** Authors and relays kept at most (keys are free): the least recently heard go first. */
const MAX_KEPT = 4096

export const AUTHOR_BURST = 200
export const AUTHOR_RATE = 20
export const RELAY_BURST = 4000
export const RELAY_RATE = 400
export const NEW_AUTHOR_BURST = 1024
export const NEW_AUTHOR_RATE = 8

export type Admitted = { admit: true } | { admit: false, reason: 'not-newer' | 'replayed' | 'flood' | 'relay-flood', culprit: string, detail: string }

interface Author {
  /** by kind of message: the newest seq taken, and when it came */
  newest: Map<string, { seq: number, at: number }>
  bucket: Bucket
  heardAt: number
}

interface Bucket { tokens: number, at: number }

interface Relay { messages: Bucket, newAuthors: Bucket }

export class Admission {
  private readonly authors = new Map<string, Author>()
  private readonly relays = new Map<string, Relay>()

  /** Whether `message` of `author`, relayed by `relay`, is new and within budget, at `now`. */
  admit (message: ControlMessage, author: string, relay: string, now: number): Admitted {
    const budget = this.relay(relay, now)
    if (!take(budget.messages, RELAY_BURST, RELAY_RATE, now)) {
      return { admit: false, reason: 'relay-flood', culprit: relay, detail: `relays more than ${RELAY_RATE} control messages a second` }
    }
    if (!this.authors.has(author) && !take(budget.newAuthors, NEW_AUTHOR_BURST, NEW_AUTHOR_RATE, now)) {
      return { admit: false, reason: 'relay-flood', culprit: relay, detail: `brings more than ${NEW_AUTHOR_RATE} authors never heard of a second` }
    }
    const record = this.author(author, now)
    const kind = message.type
    const newest = record.newest.get(kind)
    if (newest !== undefined && message.seq <= newest.seq) {
      const replayed = newest.seq - message.seq > REPLAY_AFTER_MS || now - newest.at > REPLAY_AFTER_MS
      if (!replayed) return { admit: false, reason: 'not-newer', culprit: relay, detail: '' }
      return { admit: false, reason: 'replayed', culprit: relay, detail: `a ${kind} of ${author.slice(-6)} ${Math.round((newest.seq - message.seq) / 1000)} s older than its newest, ${Math.round((now - newest.at) / 1000)} s after that came` }
    }
    if (!take(record.bucket, AUTHOR_BURST, AUTHOR_RATE, now)) {
      return { admit: false, reason: 'flood', culprit: author, detail: `sends more than ${AUTHOR_RATE} control messages a second` }
    }
    record.newest.set(kind, { seq: message.seq, at: now })
    record.heardAt = now
    return { admit: true }
  }

  /** Authors kept now (for the flood test's account of memory). */
  get size (): number {
    return this.authors.size
  }

  private author (peer: string, now: number): Author {
    let record = this.authors.get(peer)
    if (record === undefined) {
      record = { newest: new Map(), bucket: { tokens: AUTHOR_BURST, at: now }, heardAt: now }
    } else {
      this.authors.delete(peer) // kept in order of last use: the first is the least recently heard
    }
    this.authors.set(peer, record)
    for (const [key, oldest] of this.authors) {
      if (this.authors.size <= MAX_KEPT && now - oldest.heardAt < FORGET_AFTER_MS) break
      this.authors.delete(key)
    }
    return record
  }

  private relay (peer: string, now: number): Relay {
    let relay = this.relays.get(peer)
    if (relay === undefined) {
      relay = { messages: { tokens: RELAY_BURST, at: now }, newAuthors: { tokens: NEW_AUTHOR_BURST, at: now } }
      this.relays.set(peer, relay)
      if (this.relays.size > MAX_KEPT) this.relays.delete(this.relays.keys().next().value!)
    }
    return relay
  }
}

/** Takes one token from `bucket`, refilled at `rate` a second up to `burst`; false when empty. */
function take (bucket: Bucket, burst: number, rate: number, now: number): boolean {
  bucket.tokens = Math.min(burst, bucket.tokens + rate * Math.max(0, now - bucket.at) / 1000)
  bucket.at = now
  if (bucket.tokens < 1) return false
  bucket.tokens -= 1
  return true
}
