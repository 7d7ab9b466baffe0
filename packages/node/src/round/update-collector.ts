// The collecting phase of a term's rounds: each update announced for the round is fetched and
// judged on its own (update-check.ts), a peer that could not do its work is named, and the round
// waits until every assigned live peer has reported, or not much longer once enough have.
import type { Assignment, Heartbeat, Unstamped, UpdateReady, WorkFailed } from '@dml/protocol'
import { majority } from '../proof/certificates.ts'
import type { Changes, Clock, Supervisor } from '../clock.ts'
import { abortReason } from '../clock.ts'
import { Counts } from '../state/counts.ts'
import { short, type Logger } from '../log.ts'
import type { Offence } from '../state/misbehaviour.ts'
import type { Network } from '../net/network.ts'
import type { Replica } from '../state/replica.ts'
import type { RoundState } from './round-state.ts'
import { checkUpdate, type UpdateRejection } from './update-check.ts'

export interface UpdateCollectorDeps {
  config: { minPeers: number, heartbeatMs: number, transferTimeoutMs: number, modelBytes: number }
  clock: Clock
  net: Network
  log: Logger
  replica: Replica
  changes: Changes
  supervisor: Supervisor
  counts: Counts
  /** live peers, this one included */
  live: () => Array<Unstamped<Heartbeat>>
  /** a peer not proven by a counted update (roster.ts) */
  isNewcomer: (peer: string) => boolean
  offence: (peer: string, reason: Offence, detail: string) => void
}

export class UpdateCollector {
  private readonly d: UpdateCollectorDeps

  constructor (deps: UpdateCollectorDeps) {
    this.d = deps
  }

  /** Whether the round still waits for `peer`'s report: it was assigned work and has not reported. */
  waitsFor (state: RoundState, peer: string): boolean {
    return state.phase === 'collecting' && state.start.assignments.some(a => a.peer === peer) &&
      !state.updates.has(peer) && !state.fetching.has(peer) && !state.dropped.has(peer)
  }

  /** An update-ready for the round: fetch it and judge it, alone, in the background. */
  take (state: RoundState, update: Unstamped<UpdateReady>): void {
    const assigned = state.start.assignments.find(a => a.peer === update.peer)!.samples
    const { clock, net, config, changes, replica } = this.d
    state.fetching.add(update.peer)
    state.lastAnnounced = Math.max(state.lastAnnounced, clock.now())
    this.d.supervisor.run(`update of ${short(update.peer)} for round ${update.round}`, async () => {
      try {
        const bytes = await net.fetchBlob(update.hash, [update.peer], { signal: state.signal, timeoutMs: config.transferTimeoutMs, maxBytes: config.modelBytes })
        const verdict = checkUpdate(bytes, update.numSamples, assigned, replica.global!.weights, replica.global!.hash)
        if (!verdict.ok) {
          this.drop(state, update.peer, verdict.reason, verdict.detail)
          return
        }
        state.lastFetched = Math.max(state.lastFetched, clock.now())
        state.updates.set(update.peer, { peer: update.peer, weights: verdict.weights, numSamples: update.numSamples, trainMs: update.metrics.trainMs, hash: update.hash })
      } catch (err) {
        if (state.signal.aborted) return // the round is over; nothing to judge
        this.drop(state, update.peer, 'fetch-failed', (err as Error).message)
      } finally {
        state.fetching.delete(update.peer)
        changes.notify()
      }
    })
  }

  /** A peer could not do its work: name it, and stop waiting for it. */
  failed (state: RoundState, failure: Unstamped<WorkFailed>): void {
    this.drop(state, failure.peer, 'work-failed', failure.reason)
    this.d.changes.notify()
  }

  /**
   * Waits until every assigned live peer has reported (or been dropped), or the deadline. Once
   * enough updates are in (--min-peers, and a majority of the assigned peers), or only newcomers
   * are missing, the others are waited for about as long again as the round took so far, longer in
   * proportion to the work they were given beyond that of the peers that delivered: a peer that
   * takes work and brings nothing costs a round little, not its deadline, while one with more data
   * than the others (more work) is still waited for.
   */
  async collect (state: RoundState): Promise<void> {
    const { clock, changes, config } = this.d
    const started = clock.now()
    const assigned = state.start.assignments
    const enough = Math.max(config.minPeers, majority(assigned.length))
    let graceEnd: number | undefined
    while (!state.signal.aborted && clock.now() < state.start.deadline) {
      const live = new Set(this.d.live().map(h => h.peer))
      const missing = assigned.filter(a => live.has(a.peer) && !state.updates.has(a.peer) && !state.dropped.has(a.peer))
      if (missing.length === 0 && state.fetching.size === 0) return
      if (missing.length > 0 && (state.updates.size >= enough || missing.every(a => this.d.isNewcomer(a.peer)))) {
        graceEnd ??= started + graceMs(clock.now() - started, missing, assigned.filter(a => state.updates.has(a.peer)), 2 * config.heartbeatMs)
        // an update on its way is not thrown away (its fetch has bounds of its own)
        if (clock.now() >= graceEnd && state.fetching.size === 0) return
      } else {
        graceEnd = undefined
      }
      const until = graceEnd !== undefined && clock.now() < graceEnd ? graceEnd : state.start.deadline
      await changes.wait(until - clock.now(), state.signal)
    }
    if (state.signal.aborted) throw abortReason(state.signal)
  }

  private drop (state: RoundState, peer: string, reason: UpdateRejection | 'fetch-failed' | 'work-failed', detail: string): void {
    state.dropped.set(peer, reason)
    const { counts, log } = this.d
    Counts.bump(counts.rejectedUpdates, reason)
    const round = state.start.round
    if (reason === 'work-failed') {
      log.warn('work-failed', { peer, round, reason: detail }, `round ${round}: peer ${short(peer)} could not do its work: ${detail}`)
    } else {
      log.warn('update-rejected', { peer, round, reason, detail }, `round ${round}: update of peer ${short(peer)} dropped (${reason}): ${detail}`)
      // a failed fetch may be the network's fault; a bad update is the peer's
      if (reason !== 'fetch-failed') this.d.offence(peer, reason, `its update of round ${round}: ${detail}`)
    }
  }
}

/**
 * How long from its start a round waits for its `missing` peers, once enough are in after `tookMs`:
 * twice that, or in proportion to the most work a missing peer was given against the median of
 * those that delivered, one and a half times over; and at least `minMs` more.
 */
export function graceMs (tookMs: number, missing: Assignment[], delivered: Assignment[], minMs: number): number {
  const sizes = delivered.map(a => a.samples).sort((a, b) => a - b)
  const typical = sizes.length > 0 ? sizes[sizes.length >> 1] : 0
  const most = Math.max(...missing.map(a => a.samples))
  const factor = typical > 0 ? Math.max(2, 1.5 * most / typical) : 2
  return Math.max(factor * tookMs, tookMs + minMs)
}
