// The gate of a peer's control topic: whether a well-formed message the network hands over is
// taken (new, within its author's and its relay's budgets, current) and what a refusal costs its
// sender. Runs inside the gossip validator, so a refused message is not forwarded either.
import { MAX_TERM_STEP, type ControlMessage, type Outgoing, type RoundStart, type Unstamped } from '@dml/protocol'
import { Admission } from '../net/admission.ts'
import { isAllowed, type QuorumPolicy } from '../proof/certificates.ts'
import { Counts } from '../state/counts.ts'
import type { Election } from '../election/election.ts'
import { short, type Logger } from '../log.ts'
import { isOffence, type Ledger } from '../state/misbehaviour.ts'
import type { Verdict } from '../net/network.ts'

export interface GateDeps {
  election: Election
  ledger: Ledger
  counts: Counts
  policy: QuorumPolicy
  log: Logger
  now: () => number
  sayEvery: (key: string, ms: number, say: () => void) => void
  /** a round start of a leader not (yet) proven: kept, to be taken up once its proof comes */
  keepEarly: (start: Unstamped<RoundStart>, from: string) => void
}

export class MessageGate {
  private readonly d: GateDeps
  /** what is new, and what each author and relay may still send (admission.ts) */
  private readonly admission = new Admission()

  constructor (deps: GateDeps) {
    this.d = deps
  }

  /**
   * A message of `from` that `relay` handed over: it must be newer than what we took of its author
   * (a replay is the relay's doing), within its author's and its relay's budgets (admission.ts),
   * and current.
   */
  judge (message: ControlMessage, from: string, relay: string): Verdict {
    const { ledger } = this.d
    if (ledger.isBanned(from)) return { reject: 'banned' }
    if (!isAllowed(this.d.policy, from)) return { reject: 'not-allowed' }
    if (relay !== from && ledger.isBanned(relay)) return { reject: 'banned', culprit: relay }
    const admitted = this.admission.admit(message, from, relay, this.d.now())
    if (!admitted.admit) {
      if (admitted.reason === 'not-newer') return 'ignore' // gossip keeps no order: an older one came late
      if (admitted.reason === 'replayed') ledger.note(admitted.culprit, 'replayed', `relayed ${admitted.detail}`)
      return { reject: admitted.reason, culprit: admitted.culprit }
    }
    return this.current(message, from)
  }

  /** Whether a new message of `from` is current: of the term and leader this peer follows, and within reach. */
  current (message: Outgoing, from: string): Verdict {
    const { election } = this.d
    switch (message.type) {
      case 'vote-request':
        // beyond reach of our certified term: maybe honest and we are behind; never voted for
        if (message.term > election.term + MAX_TERM_STEP) {
          this.d.ledger.note(from, 'term-out-of-reach', `asks for votes for term ${message.term}, beyond ${election.term + MAX_TERM_STEP}`)
          return 'ignore'
        }
        return 'accept'
      case 'round-start':
      case 'round-proposal':
      case 'round-done':
        if (message.term < election.term) return { reject: 'stale' }
        if (message.term > election.term || election.leader === null) {
          // a leader we have not checked (yet, or again): its round start may beat the heartbeat
          // that proves it, so the latest one is kept and played once that proof has come
          if (message.type === 'round-start') this.d.keepEarly(message, from)
          return 'ignore'
        }
        return from === election.leader ? 'accept' : { reject: 'not-leader' }
      default:
        return 'accept' // heartbeats, votes, updates, failures and signatures are checked where they are used
    }
  }

  /** Counts a rejected control message; an offence is held against its sender. */
  rejected (reason: string, from: string): void {
    const total = Counts.bump(this.d.counts.rejectedMessages, reason)
    if (isOffence(reason)) {
      this.d.ledger.offence(from, reason, `a ${reason} control message`)
      return
    }
    this.d.sayEvery(`${reason}:${from}`, 10_000, () => {
      this.d.log.warn('message-rejected', { reason, from, total }, `rejected a ${reason} control message from ${short(from)} (${total} so far)`)
    })
  }
}
