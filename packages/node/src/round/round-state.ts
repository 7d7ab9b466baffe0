// One round as its leader runs it: a typed state machine,
//   collecting → aggregating → (evaluating →) certifying → done,
// that moves only forward (evaluating only when the leader is one of the checkers), holds the
// updates taken and dropped and the checkers' signatures, and ends the round's transfers when it
// is over or the term ends. The Coordinator drives it; the status reads its snapshot.
import type { RoundCertVote, RoundStart, Unstamped } from '@dml/protocol'
import type { ClientUpdate } from '@dml/trainer/aggregation'
import { AbortError, abortReason } from '../clock.ts'

export type RoundPhase = 'collecting' | 'aggregating' | 'evaluating' | 'certifying' | 'done'

/** The phases each phase may move on to. */
const NEXT: Record<RoundPhase, readonly RoundPhase[]> = {
  collecting: ['aggregating'],
  aggregating: ['evaluating', 'certifying'],
  evaluating: ['certifying'],
  certifying: ['done'],
  done: []
}

export interface RoundSnapshot {
  round: number
  term: number
  state: RoundPhase
  updates: number
  expected: number
  dropped: Array<{ peer: string, reason: string }>
  signatures: number
  deadline: number
}

export type AcceptedUpdate = ClientUpdate & { trainMs: number, hash: string }

/** A round that cannot be finished as it stands (too few signatures, an aggregate that is not finite): it is done again. */
export class RoundError extends Error {
  override name = 'RoundError'
}

export class RoundState {
  private current: RoundPhase = 'collecting'
  readonly start: Unstamped<RoundStart>
  readonly startedAt: number
  readonly updates = new Map<string, AcceptedUpdate>()
  /** peers whose update will not count this round, and why */
  readonly dropped = new Map<string, string>()
  readonly fetching = new Set<string>()
  /** when the last update was announced, and when the last update blob arrived */
  lastAnnounced: number
  lastFetched: number
  /** when the start last went out again, for a peer that missed it (Coordinator.onHeartbeat) */
  startResentAt = -Infinity
  /** the members drawn to check the result and sign it (drawCheckers), as the round start says */
  readonly checkers: readonly string[]
  /** the members they were drawn from */
  readonly pool: readonly string[]
  /** while certifying: the result proposed, and the checkers' signatures of it */
  resultHash: string | null = null
  readonly votes = new Map<string, RoundCertVote>()
  /** aborts when the round is over or the term ends: stops every fetch of the round */
  private readonly controller = new AbortController()
  private readonly term: AbortSignal
  private readonly onTermEnd = (): void => { this.controller.abort(abortReason(this.term)) }

  constructor (start: Unstamped<RoundStart>, pool: readonly string[], startedAt: number, term: AbortSignal) {
    this.start = start
    this.checkers = start.checkers
    this.pool = pool
    this.startedAt = startedAt
    this.lastAnnounced = this.lastFetched = startedAt
    this.term = term
    if (term.aborted) this.onTermEnd()
    else term.addEventListener('abort', this.onTermEnd, { once: true })
  }

  get phase (): RoundPhase { return this.current }

  get signal (): AbortSignal { return this.controller.signal }

  /** Moves on to `phase`: only forward, and not once the round was aborted. */
  enter (phase: Exclude<RoundPhase, 'done'>): void {
    if (this.signal.aborted) throw abortReason(this.signal)
    this.move(phase)
  }

  /** Its RoundDone is out: the round is finished network-wide, whatever happens to the term now. */
  done (): void {
    this.move('done')
  }

  private move (phase: RoundPhase): void {
    if (!NEXT[this.current].includes(phase)) throw new Error(`round ${this.start.round} cannot go from ${this.current} to ${phase}`)
    this.current = phase
  }

  snapshot (term: number): RoundSnapshot {
    return {
      round: this.start.round,
      term,
      state: this.current,
      updates: this.updates.size,
      expected: this.start.assignments.length,
      dropped: [...this.dropped].map(([peer, reason]) => ({ peer, reason })),
      signatures: this.votes.size,
      deadline: this.start.deadline
    }
  }

  /** The round is over: end its transfers, and stop listening to the term (rounds come and go, the term stays). */
  end (): void {
    this.term.removeEventListener('abort', this.onTermEnd)
    this.controller.abort(new AbortError(`round ${this.start.round} is over`))
  }
}
