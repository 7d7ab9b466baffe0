// Coordinator: leads one term. It runs one round at a time as a state machine,
//   collecting → aggregating → evaluating → replicating → done,
// with a quorum (--min-peers updates) and a deadline. It is supervised: a failed step is logged
// with its cause and the round tried again; after MAX_FAILURES_IN_A_ROW failures, or no progress
// for the round's budget plus a grace, it gives up leadership so that the others elect another.
// A leader never stays a leader that leads nothing.
import { encodeTensors, findNonFinite, type Heartbeat, type RoundMetrics, type RoundStart, type Task, type UpdateReady, type WorkFailed } from '@dml/protocol'
import { getStrategy, type ClientUpdate } from '@dml/trainer'
import { allocateWork, expectedSeconds, roundParticipants } from './allocation.ts'
import { AbortError, abortReason, type Changes, type Clock, sleep, type Supervisor } from './clock.ts'
import type { Logger } from './log.ts'
import type { Network } from './network.ts'
import type { Replica } from './replica.ts'
import type { Trainer } from './trainer.ts'
import { checkUpdate } from './update-check.ts'

/** Failed attempts at a round, in a row, after which the leader hands over. */
export const MAX_FAILURES_IN_A_ROW = 3

export interface CoordinatorConfig {
  minPeers: number
  heartbeatMs: number
  leaseMs: number
  roundTimeoutMs: number
  transferTimeoutMs: number
}

/** What the leaders of every term add up (the node owns it; each term's coordinator writes to it). */
export interface LeaderStats {
  roundsRetried: number
  roundsFailed: number
  resignations: number
  /** updates dropped, by reason (including work a peer reported it could not do) */
  rejectedUpdates: Record<string, number>
}

export interface CoordinatorDeps {
  self: string
  term: number
  config: CoordinatorConfig
  clock: Clock
  net: Network
  log: Logger
  trainer: Trainer
  replica: Replica
  changes: Changes
  supervisor: Supervisor
  stats: LeaderStats
  /** live peers, this one included */
  live: () => Heartbeat[]
  task: () => Task
  /** the leader trains too: hand its own worker the round */
  startLocalWork: (start: RoundStart) => void
  /** give up leadership, saying why */
  resign: (reason: string) => void
}

export type RoundPhase = 'collecting' | 'aggregating' | 'evaluating' | 'replicating' | 'done'

export interface RoundSnapshot {
  round: number
  term: number
  state: RoundPhase
  updates: number
  expected: number
  dropped: Array<{ peer: string, reason: string }>
  deadline: number
}

type AcceptedUpdate = ClientUpdate & { trainMs: number }

class RoundError extends Error {
  override name = 'RoundError'
}

/** One round, as its coordinator runs it. */
class RoundState {
  phase: RoundPhase = 'collecting'
  readonly start: RoundStart
  readonly startedAt: number
  readonly updates = new Map<string, AcceptedUpdate>()
  /** peers whose update will not count this round, and why */
  readonly dropped = new Map<string, string>()
  readonly fetching = new Set<string>()
  /** when the last update was announced, and when the last update blob arrived */
  lastAnnounced: number
  lastFetched: number
  /** aborts when the round is over or the term ends: stops every fetch of the round */
  private readonly controller = new AbortController()
  private readonly term: AbortSignal
  private readonly onTermEnd = (): void => { this.controller.abort(abortReason(this.term)) }

  constructor (start: RoundStart, startedAt: number, term: AbortSignal) {
    this.start = start
    this.startedAt = startedAt
    this.lastAnnounced = this.lastFetched = startedAt
    this.term = term
    if (term.aborted) this.onTermEnd()
    else term.addEventListener('abort', this.onTermEnd, { once: true })
  }

  get signal (): AbortSignal { return this.controller.signal }

  /** The round is over: end its transfers, and stop listening to the term (rounds come and go, the term stays). */
  end (): void {
    this.term.removeEventListener('abort', this.onTermEnd)
    this.controller.abort(new AbortError(`round ${this.start.round} is over`))
  }
}

export class Coordinator {
  readonly term: number
  private readonly deps: CoordinatorDeps
  private readonly controller = new AbortController()
  private current: RoundState | null = null
  /** no phase change by then means the round is stuck: hand over (the watchdog) */
  private stallAt = Infinity
  private saidWaiting = false
  private saidAlone = false

  constructor (deps: CoordinatorDeps) {
    this.deps = deps
    this.term = deps.term
  }

  get active (): boolean { return !this.controller.signal.aborted }

  /** Ends the term: aborts the round and every transfer in it. */
  stop (reason: string): void {
    this.controller.abort(new AbortError(reason))
  }

  snapshot (): RoundSnapshot | null {
    const r = this.current
    if (r === null) return null
    return {
      round: r.start.round,
      term: this.term,
      state: r.phase,
      updates: r.updates.size,
      expected: r.start.assignments.length,
      dropped: [...r.dropped].map(([peer, reason]) => ({ peer, reason })),
      deadline: r.start.deadline
    }
  }

  /** The watchdog, called on every tick: a round that stopped moving hands leadership over. */
  checkProgress (now: number): void {
    if (!this.active || now <= this.stallAt) return
    this.giveUp(`round ${this.current?.start.round ?? this.deps.replica.round + 1} made no progress in its ${this.current?.phase ?? 'current'} phase`)
  }

  /** Leads rounds until the term ends or training finishes. Never rejects. */
  async run (): Promise<void> {
    try {
      await this.lead()
    } finally {
      this.stallAt = Infinity // leading nothing more is not a stall: a finished leader stays leader
    }
  }

  private async lead (): Promise<void> {
    const { log, stats, config } = this.deps
    let failures = 0
    while (this.active) {
      try {
        const outcome = await this.step()
        if (outcome === 'finished') return
        if (outcome === 'closed') failures = 0
      } catch (err) {
        if (!this.active) return
        failures++
        stats.roundsFailed++
        const round = this.deps.replica.round + 1
        const cause = (err as Error).message ?? String(err)
        log.warn('round-failed', { round, term: this.term, failures, error: cause }, `round ${round} failed (${failures} in a row): ${cause}`)
        if (failures >= MAX_FAILURES_IN_A_ROW) {
          this.giveUp(`${failures} attempts at round ${round} failed in a row, the last with: ${cause}`)
          return
        }
        try {
          await sleep(this.deps.clock, config.heartbeatMs * failures, this.controller.signal)
        } catch {
          return // the term ended while we waited
        }
      }
    }
  }

  /** An update-ready for our round: fetch it and judge it, alone, in the background. */
  onUpdate (update: UpdateReady): void {
    const state = this.collecting(update.term, update.round, update.peer)
    if (state === undefined) return
    const assigned = state.start.assignments.find(a => a.peer === update.peer)!.samples
    const { clock, net, config, changes, replica } = this.deps
    state.fetching.add(update.peer)
    state.lastAnnounced = Math.max(state.lastAnnounced, clock.now())
    this.deps.supervisor.run(`update of ${short(update.peer)} for round ${update.round}`, async () => {
      try {
        const bytes = await net.fetchBlob(update.hash, [update.peer], { signal: state.signal, timeoutMs: config.transferTimeoutMs })
        const verdict = checkUpdate(bytes, update.numSamples, assigned, replica.global!.weights)
        if (!verdict.ok) {
          this.drop(state, update.peer, verdict.reason, verdict.detail)
          return
        }
        state.lastFetched = Math.max(state.lastFetched, clock.now())
        state.updates.set(update.peer, { peer: update.peer, weights: verdict.weights, numSamples: update.numSamples, trainMs: update.metrics.trainMs })
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
  onFailure (failure: WorkFailed): void {
    const state = this.collecting(failure.term, failure.round, failure.peer)
    if (state === undefined) return
    this.drop(state, failure.peer, 'work-failed', failure.reason)
    this.deps.changes.notify()
  }

  /** The round this message is for, if we are collecting it and still wait for its peer. */
  private collecting (term: number, round: number, peer: string): RoundState | undefined {
    const state = this.current
    if (state === null || !this.active || state.phase !== 'collecting' || term !== this.term || round !== state.start.round) return undefined
    if (!state.start.assignments.some(a => a.peer === peer)) return undefined
    if (state.updates.has(peer) || state.fetching.has(peer) || state.dropped.has(peer)) return undefined
    return state
  }

  private drop (state: RoundState, peer: string, reason: string, detail: string): void {
    state.dropped.set(peer, reason)
    const { stats, log } = this.deps
    stats.rejectedUpdates[reason] = (stats.rejectedUpdates[reason] ?? 0) + 1
    const round = state.start.round
    if (reason === 'work-failed') {
      log.warn('work-failed', { peer, round, reason: detail }, `round ${round}: peer ${short(peer)} could not do its work: ${detail}`)
    } else {
      log.warn('update-rejected', { peer, round, reason, detail }, `round ${round}: update of peer ${short(peer)} dropped (${reason}): ${detail}`)
    }
  }

  private touch (budgetMs: number): void {
    this.stallAt = this.deps.clock.now() + budgetMs + 2 * this.deps.config.leaseMs
  }

  private giveUp (reason: string): void {
    if (!this.active) return
    this.stop(reason)
    this.deps.resign(reason)
  }

  private async step (): Promise<'closed' | 'retry' | 'waiting' | 'finished'> {
    const { replica, config, log, changes } = this.deps
    if (replica.finished) return 'finished'
    if (replica.global === null) await this.initialise()
    const live = this.deps.live()
    if (live.length < config.minPeers) {
      if (!this.saidWaiting) log.info('waiting-for-peers', { have: live.length, need: config.minPeers }, `waiting for peers: ${live.length} of ${config.minPeers}`)
      this.saidWaiting = true
      this.stallAt = Infinity // too few peers is not a stuck leader: another would wait the same
      await changes.wait(config.heartbeatMs, this.controller.signal)
      return 'waiting'
    }
    this.saidWaiting = false
    return await this.runRound(live)
  }

  private async initialise (): Promise<void> {
    const task = this.deps.task()
    this.touch(this.deps.config.roundTimeoutMs)
    const weights = await this.deps.trainer.initialWeights(task)
    if (!this.active) throw abortReason(this.controller.signal)
    const bytes = this.deps.replica.initialise(weights)
    this.deps.log.info('model-initialised', { model: task.model, modelHash: this.deps.replica.global!.hash, bytes: bytes.byteLength },
      `initialised ${task.model} (${(bytes.byteLength / 1e6).toFixed(2)} MB)`)
  }

  private async runRound (live: Heartbeat[]): Promise<'closed' | 'retry'> {
    const { clock, net, log, config, replica, stats } = this.deps
    const task = this.deps.task()
    const global = replica.global!
    const round = global.round + 1
    const participants = roundParticipants(live, round).map(h => ({ peer: h.peer, speed: h.speed }))
    const assignments = allocateWork({ workers: participants, trainSize: this.deps.trainer.trainSize, localEpochs: task.localEpochs, batchSize: task.batchSize })
    const expected = expectedSeconds(assignments, participants)
    const timeoutMs = expected === undefined ? config.roundTimeoutMs : Math.min(config.roundTimeoutMs, 3000 * expected + 30_000)
    const startedAt = clock.now()
    const start: RoundStart = { type: 'round-start', v: 1, term: this.term, round, leader: this.deps.self, modelHash: global.hash, deadline: startedAt + timeoutMs, task, assignments }
    const state = new RoundState(start, startedAt, this.controller.signal)
    this.current = state
    this.touch(timeoutMs + config.transferTimeoutMs)
    try {
      log.info('round-start', { round, term: this.term, peers: assignments.length, deadline: start.deadline },
        `round ${round}/${task.totalRounds}: ${assignments.length} peers, deadline in ${Math.round(timeoutMs / 1000)} s`)
      await net.publish(start)
      this.deps.startLocalWork(start)
      await this.collect(state)
      const updates = [...state.updates.values()]
      if (updates.length < config.minPeers) {
        stats.roundsRetried++
        log.warn('round-retry', { round, updates: updates.length, need: config.minPeers, dropped: Object.fromEntries(state.dropped) },
          `round ${round}: only ${updates.length} of ${config.minPeers} needed updates by the deadline; retrying`)
        await sleep(clock, config.heartbeatMs, this.controller.signal)
        return 'retry'
      }

      this.enter(state, 'aggregating', timeoutMs)
      const aggregateStart = performance.now()
      const weights = getStrategy(task.aggregation).aggregate(updates, global.weights)
      const aggregateMs = performance.now() - aggregateStart
      const bad = findNonFinite(weights)
      if (bad !== undefined) throw new RoundError(`the aggregate holds ${bad.value} at ${bad.tensor}[${bad.index}]`)

      this.enter(state, 'evaluating', timeoutMs)
      const evalStart = performance.now()
      const evaluation = await this.deps.trainer.evaluate(task, weights, state.signal)
      const evalMs = performance.now() - evalStart

      this.enter(state, 'replicating', config.transferTimeoutMs)
      const bytes = encodeTensors(weights)
      const hash = net.blobs.put(bytes, true)
      let replicateMs: number
      try {
        replicateMs = await this.replicate(state, hash)
      } catch (err) {
        net.blobs.unpin(hash)
        throw err
      }

      const now = clock.now()
      const durationMs = now - startedAt
      const trainMs = Math.max(...updates.map(u => u.trainMs))
      // the split is of the leader's timeline, so its parts add up to the round: transfer is the wait
      // for update blobs after the last announcement, plus replicating the new model
      const transferMs = Math.max(0, state.lastFetched - state.lastAnnounced) + replicateMs
      const liveNow = this.deps.live()
      const metrics: RoundMetrics = {
        accuracy: evaluation.accuracy,
        loss: evaluation.loss,
        participants: updates.map(u => u.peer),
        activeNodes: liveNow.length,
        gpuNodes: liveNow.filter(h => h.device === 'gpu').length,
        cpuNodes: liveNow.filter(h => h.device === 'cpu').length,
        durationMs,
        trainMs,
        transferMs,
        aggregateMs,
        evalMs,
        idleMs: Math.max(0, durationMs - trainMs - transferMs - aggregateMs - evalMs),
        finishedAt: now
      }
      const finished = round >= task.totalRounds || evaluation.accuracy >= task.targetAccuracy
      if (!this.active) throw abortReason(this.controller.signal)
      await net.publish({ type: 'round-done', v: 1, term: this.term, round, leader: this.deps.self, modelHash: hash, metrics, finished })
      // RoundDone is out: the round is finished network-wide, whatever happens to this term now
      state.phase = 'done'
      await replica.commit({ round, hash, weights }, bytes, { round, term: this.term, modelHash: hash, metrics })
      log.info('round-done', { round, term: this.term, modelHash: hash, ...metrics },
        `round ${round} done in ${(durationMs / 1000).toFixed(1)} s: accuracy ${(100 * evaluation.accuracy).toFixed(2)}%, loss ${evaluation.loss.toFixed(4)}, ${updates.length} updates`)
      if (finished) replica.finish()
      return 'closed'
    } finally {
      state.end()
      if (this.current === state) this.current = null
    }
  }

  private enter (state: RoundState, phase: RoundPhase, budgetMs: number): void {
    if (state.signal.aborted) throw abortReason(state.signal)
    state.phase = phase
    this.touch(budgetMs)
  }

  /** Waits until every assigned live peer has reported (or been dropped), or the deadline. */
  private async collect (state: RoundState): Promise<void> {
    const { clock, changes } = this.deps
    while (!state.signal.aborted && clock.now() < state.start.deadline) {
      const live = new Set(this.deps.live().map(h => h.peer))
      const waiting = state.start.assignments.some(a => live.has(a.peer) && !state.updates.has(a.peer) && !state.dropped.has(a.peer))
      if (!waiting && state.fetching.size === 0) return
      await changes.wait(state.start.deadline - clock.now(), state.signal)
    }
    if (state.signal.aborted) throw abortReason(state.signal)
  }

  /**
   * Offers the round's model and waits until the other live peers hold it. The round counts as
   * finished only if at least one other live peer holds it, so that it outlives this leader; with
   * no other peer at all, it says so and goes on alone. Once one copy is out, the rest get about as
   * long again as the first took: a member that never fetches must not hold every round up.
   */
  private async replicate (state: RoundState, hash: string): Promise<number> {
    const { clock, net, config, changes, log } = this.deps
    const round = state.start.round
    const started = clock.now()
    await net.publish({ type: 'model-offer', v: 1, term: this.term, round, leader: this.deps.self, modelHash: hash })
    const until = started + config.transferTimeoutMs + 2 * config.heartbeatMs
    const holders = (): { others: Heartbeat[], holding: Heartbeat[] } => {
      const others = this.deps.live().filter(h => h.peer !== this.deps.self)
      return { others, holding: others.filter(h => h.holds === hash || h.round >= round) }
    }
    let firstHeldAt: number | undefined
    while (!state.signal.aborted && clock.now() < until) {
      const { others, holding } = holders()
      if (holding.length === others.length) break
      let waitUntil = until
      if (holding.length > 0) {
        firstHeldAt ??= clock.now()
        waitUntil = Math.min(until, firstHeldAt + Math.max(2 * config.heartbeatMs, firstHeldAt - started))
        if (clock.now() >= waitUntil) break
      }
      await changes.wait(waitUntil - clock.now(), state.signal)
    }
    if (state.signal.aborted) throw abortReason(state.signal)
    const { others, holding } = holders()
    if (others.length === 0) {
      if (!this.saidAlone) log.warn('alone', { round }, `round ${round} exists on this peer only: no other peer is live to hold a copy`)
      this.saidAlone = true
    } else if (holding.length === 0) {
      throw new RoundError(`no peer took the model of round ${round} within ${until - started} ms (${others.length} live)`)
    } else {
      this.saidAlone = false
    }
    return clock.now() - started
  }
}

export function short (peer: string): string {
  return peer.slice(-6)
}
