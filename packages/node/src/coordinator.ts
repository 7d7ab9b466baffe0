// Coordinator: leads one term. It runs one round at a time as a state machine,
//   collecting → aggregating → evaluating → certifying → done,
// with a quorum (--min-peers updates) and a deadline. Work goes only to peers that follow this
// leader (they checked its term certificate). A round is done only with a certificate: the
// leader proposes its result, its checkers (a few of the round's members, drawn by hash when the
// round starts, see roundCheckers) check it, compute the model themselves and sign, and a quorum
// of signatures is published with RoundDone. It is supervised: a failed step is logged with its
// cause and the round tried again; after MAX_FAILURES_IN_A_ROW failures, or no progress for the
// round's budget plus a grace, it gives up leadership so that the others elect another. A leader
// never stays a leader that leads nothing.
import { encodeResult, encodeRoundCert, encodeTensors, findNonFinite, PROTOCOL_VERSION, resultSigningBytes, roundVoteSigningBytes, roundEvaluation, type Assignment, type Heartbeat, type NamedTensor, type RoundCertVote, type RoundMetrics, type RoundResult, type RoundStart, type RoundVote, type StrategySpec, type Task, type Unstamped, type UpdateReady, type WorkFailed } from '@dml/protocol'
import { aggregateRound, type ClientUpdate } from '@dml/trainer'
import { allocateWork, expectedSeconds, roundParticipants } from './allocation.ts'
import { certVoteOf, drawCheckers, majority, poolSlack, quorumFollowers, roundQuorum, type QuorumPolicy, type Signer, type Standing } from './certificates.ts'
import { AbortError, abortReason, type Changes, type Clock, sleep, type Supervisor } from './clock.ts'
import { short, type Logger } from './log.ts'
import type { Network } from './network.ts'
import type { Replica } from './replica.ts'
import type { Trainer } from './trainer.ts'
import type { Offence } from './misbehaviour.ts'
import { checkUpdate, type UpdateRejection } from './update-check.ts'
import { probationSlots } from './proven.ts'
import { Counts } from './counts.ts'

/** Failed attempts at a round, in a row, after which the leader hands over. */
export const MAX_FAILURES_IN_A_ROW = 3
/** The longest a peer that brings nothing goes without work, in rounds. */
const MAX_BENCH_ROUNDS = 32

export interface CoordinatorConfig {
  minPeers: number
  heartbeatMs: number
  leaseMs: number
  roundTimeoutMs: number
  transferTimeoutMs: number
  /** the size of a model or update blob of this task */
  modelBytes: number
}

export interface CoordinatorDeps {
  self: string
  term: number
  /** this term's certificate: its hash goes into every round result */
  termCert: { hash: string, bytes: Uint8Array }
  signer: Signer
  policy: QuorumPolicy
  config: CoordinatorConfig
  clock: Clock
  net: Network
  log: Logger
  trainer: Trainer
  replica: Replica
  changes: Changes
  supervisor: Supervisor
  counts: Counts
  /** live peers, this one included */
  live: () => Array<Unstamped<Heartbeat>>
  /** who counts for this peer now: the round's pool is of members, and its quorum is what every peer asks (roundQuorum) */
  standing: () => Standing
  /** a peer did what no honest peer does (a forged signature, a non-finite update) */
  offence: (peer: string, reason: Offence, detail: string) => void
  /** a peer did something suspicious that an honest peer may also do (an update over the norm bound) */
  note: (peer: string, reason: string, detail: string) => void
  task: () => Task
  /** the leader trains too: hand its own worker the round */
  startLocalWork: (start: Unstamped<RoundStart>) => void
  /** give up leadership, saying why */
  resign: (reason: string) => void
}

export type RoundPhase = 'collecting' | 'aggregating' | 'evaluating' | 'certifying' | 'done'

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

type AcceptedUpdate = ClientUpdate & { trainMs: number, hash: string }

class RoundError extends Error {
  override name = 'RoundError'
}

/** One round, as its coordinator runs it. */
class RoundState {
  phase: RoundPhase = 'collecting'
  readonly start: Unstamped<RoundStart>
  readonly startedAt: number
  readonly updates = new Map<string, AcceptedUpdate>()
  /** peers whose update will not count this round, and why */
  readonly dropped = new Map<string, string>()
  readonly fetching = new Set<string>()
  /** when the last update was announced, and when the last update blob arrived */
  lastAnnounced: number
  lastFetched: number
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
  /**
   * Peers that took work and brought no update that counts (nothing at all, a bad update, a
   * failure): no work for them until `untilRound`, for 1, 2, 4, ... rounds in a row. One that
   * contributes again starts afresh. A follower that never delivers costs one round, not every one.
   */
  private readonly bench = new Map<string, { untilRound: number, misses: number }>()
  /** checkers that did not sign a result they could check, and until which round they are not drawn again */
  private readonly unsigned = new Map<string, number>()

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
      signatures: r.votes.size,
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

  /**
   * A new leader's first round waits (a few heartbeats at most) until the live peers follow it:
   * each checks its term certificate first, and only a follower gets work.
   */
  private async gatherFollowers (): Promise<void> {
    const { clock, config, changes } = this.deps
    const until = clock.now() + 3 * config.heartbeatMs
    while (this.active && clock.now() < until) {
      const live = this.deps.live()
      if (live.every(h => h.peer === this.deps.self || (h.leader === this.deps.self && h.term === this.term))) return
      await changes.wait(until - clock.now(), this.controller.signal)
    }
  }

  private async lead (): Promise<void> {
    const { log, counts, config } = this.deps
    let failures = 0
    await this.gatherFollowers()
    while (this.active) {
      try {
        const outcome = await this.step()
        if (outcome === 'finished') return
        if (outcome === 'closed') failures = 0
      } catch (err) {
        if (!this.active) return
        failures++
        counts.add('roundsFailed')
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
  onUpdate (update: Unstamped<UpdateReady>): void {
    const state = this.collecting(update.term, update.round, update.peer)
    if (state === undefined) return
    const assigned = state.start.assignments.find(a => a.peer === update.peer)!.samples
    const { clock, net, config, changes, replica } = this.deps
    state.fetching.add(update.peer)
    state.lastAnnounced = Math.max(state.lastAnnounced, clock.now())
    this.deps.supervisor.run(`update of ${short(update.peer)} for round ${update.round}`, async () => {
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

  /** A checker's signature of our proposed result: checked, then counted. */
  onRoundVote (vote: RoundVote): void {
    const state = this.current
    if (state === null || !this.active || vote.term !== this.term || vote.round !== state.start.round) return
    // resultHash is set once the result is proposed: votes count from then on, also those of
    // checkers that finish before this coordinator has finished its own evaluation
    if (state.resultHash === null || vote.resultHash !== state.resultHash || state.votes.has(vote.peer)) return
    if (!state.checkers.includes(vote.peer)) {
      // its signature counts nowhere: the round start named the checkers
      this.deps.note(vote.peer, 'not-checker', `signed the result of round ${vote.round}, which it was not drawn to check`)
      return
    }
    this.deps.supervisor.run(`signature of ${short(vote.peer)} for round ${vote.round}`, async () => {
      const checked = await certVoteOf(vote)
      if (checked === undefined) {
        this.deps.offence(vote.peer, 'bad-vote', `its signature of round ${vote.round} does not check out`)
        return
      }
      state.votes.set(vote.peer, checked)
      this.deps.changes.notify()
    })
  }

  /** A peer could not do its work: name it, and stop waiting for it. */
  onFailure (failure: Unstamped<WorkFailed>): void {
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

  private drop (state: RoundState, peer: string, reason: UpdateRejection | 'fetch-failed' | 'work-failed', detail: string): void {
    state.dropped.set(peer, reason)
    const { counts, log } = this.deps
    Counts.bump(counts.rejectedUpdates, reason)
    const round = state.start.round
    if (reason === 'work-failed') {
      log.warn('work-failed', { peer, round, reason: detail }, `round ${round}: peer ${short(peer)} could not do its work: ${detail}`)
    } else {
      log.warn('update-rejected', { peer, round, reason, detail }, `round ${round}: update of peer ${short(peer)} dropped (${reason}): ${detail}`)
      // a failed fetch may be the network's fault; a bad update is the peer's
      if (reason !== 'fetch-failed') this.deps.offence(peer, reason, `its update of round ${round}: ${detail}`)
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
    // work goes to the peers that follow this leader (they have checked its term certificate),
    // and not to those on the bench, unless there would be too few without them
    const followers = this.deps.live().filter(h => h.peer === this.deps.self || (h.leader === this.deps.self && h.term === this.term))
    const round = replica.round + 1
    const rested = followers.filter(h => (this.bench.get(h.peer)?.untilRound ?? 0) <= round)
    const live = this.onProbation(rested.length >= config.minPeers ? rested : followers)
    if (live.length < config.minPeers) {
      if (!this.saidWaiting) log.info('waiting-for-peers', { have: live.length, need: config.minPeers }, `waiting for peers to follow: ${live.length} of ${config.minPeers}`)
      this.saidWaiting = true
      this.stallAt = Infinity // too few peers is not a stuck leader: another would wait the same
      await changes.wait(config.heartbeatMs, this.controller.signal)
      return 'waiting'
    }
    this.saidWaiting = false
    return await this.runRound(live, this.pool(followers.map(h => h.peer), round))
  }

  /**
   * The round's members, to draw its checkers from: the followers (this peer too) that are
   * members, sorted, less those that did not sign lately, as long as the pool still leaves out no
   * more of them than a peer accepts (poolSlack).
   */
  private pool (followers: string[], round: number): string[] {
    const standing = this.deps.standing()
    const members = followers.filter(p => standing.isMember(p)).sort()
    const slack = standing.byWork ? poolSlack(members.length) : Infinity
    let left = 0
    return members.filter(p => {
      if ((this.unsigned.get(p) ?? 0) <= round || left >= slack) return true
      left++
      return false
    })
  }

  /**
   * Newcomers (peers not proven by a counted update, see proven.ts) get work a few at a time, and
   * at the proven peers' median speed at most: a made-up identity claiming a huge speed can neither
   * take the round's samples nor outnumber the peers that sign its result.
   */
  private onProbation (followers: Array<Unstamped<Heartbeat>>): Array<Unstamped<Heartbeat>> {
    if (!this.deps.replica.proven.any) return followers
    const proven = followers.filter(h => !this.isNewcomer(h.peer))
    const speeds = proven.map(h => h.speed).sort((a, b) => a - b)
    const typical = speeds[speeds.length >> 1]
    const newcomers = followers.filter(h => this.isNewcomer(h.peer)).slice(0, probationSlots(this.deps.policy, proven.length))
    return [...proven, ...newcomers.map(h => ({ ...h, speed: Math.min(h.speed, typical) }))]
  }

  /** A peer not proven by a counted update (this one never is a newcomer; before any round nobody is). */
  private isNewcomer (peer: string): boolean {
    const { proven } = this.deps.replica
    return proven.any && peer !== this.deps.self && !proven.has(peer)
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

  private async runRound (live: Array<Unstamped<Heartbeat>>, pool: string[]): Promise<'closed' | 'retry'> {
    const { clock, net, log, config, replica, counts } = this.deps
    const task = this.deps.task()
    const global = replica.global!
    const round = global.round + 1
    const participants = roundParticipants(live, round).map(h => ({ peer: h.peer, speed: h.speed, examples: h.examples }))
    const assignments = allocateWork({ workers: participants, sharedSize: this.deps.trainer.examples, sharedPart: (i, n) => this.deps.trainer.partSize?.(task, i, n) ?? this.deps.trainer.examples / n, localEpochs: task.localEpochs, batchSize: task.batchSize })
    const expected = expectedSeconds(assignments, participants)
    const timeoutMs = expected === undefined ? config.roundTimeoutMs : Math.min(config.roundTimeoutMs, 3000 * expected + 30_000)
    const startedAt = clock.now()
    const checkers = drawCheckers(this.deps.policy, pool, global.hash)
    const start: Unstamped<RoundStart> = { type: 'round-start', v: PROTOCOL_VERSION, term: this.term, round, leader: this.deps.self, modelHash: global.hash, deadline: startedAt + timeoutMs, task, assignments, checkers }
    const state = new RoundState(start, pool, startedAt, this.controller.signal)
    this.current = state
    this.touch(timeoutMs + config.transferTimeoutMs)
    try {
      log.info('round-start', { round, term: this.term, peers: assignments.length, deadline: start.deadline },
        `round ${round}/${task.totalRounds}: ${assignments.length} peers, deadline in ${Math.round(timeoutMs / 1000)} s`)
      await net.publish(start)
      this.deps.startLocalWork(start)
      await this.collect(state)
      this.benchNonContributors(state)
      const updates = [...state.updates.values()]
      if (updates.length < config.minPeers) {
        counts.add('roundsRetried')
        log.warn('round-retry', { round, updates: updates.length, need: config.minPeers, dropped: Object.fromEntries(state.dropped) },
          `round ${round}: only ${updates.length} of ${config.minPeers} needed updates by the deadline; retrying`)
        await sleep(clock, config.heartbeatMs, this.controller.signal)
        return 'retry'
      }

      this.enter(state, 'aggregating', timeoutMs)
      const { weights, aggregateMs } = this.aggregate(updates, global.weights, task.strategy, round)
      const bytes = encodeTensors(weights)
      const modelHash = net.blobs.put(bytes, true)
      const result: RoundResult = {
        kind: 'round-result', v: PROTOCOL_VERSION, term: this.term, round, leader: this.deps.self, prevHash: global.hash, modelHash,
        strategy: { ...task.strategy },
        participants: assignments.map(a => a.peer),
        pool,
        checkers,
        contributions: updates.map(u => ({ peer: u.peer, hash: u.hash, numSamples: u.numSamples })).sort((a, b) => (a.peer < b.peer ? -1 : 1)),
        termCert: this.deps.termCert.hash
      }
      const resultBytes = encodeResult(result)
      const resultHash = net.blobs.put(resultBytes, true)
      const { certBytes, evalMs, certifyMs } = await this.certify(state, { modelHash, resultHash, resultBytes, weights, updates: updates.length, timeoutMs })
      const certHash = net.blobs.put(certBytes, true)

      const now = clock.now()
      const durationMs = now - startedAt
      const trainMs = Math.max(...updates.map(u => u.trainMs))
      // the split is of the leader's timeline, so its parts add up to the round: transfer is the wait
      // for update blobs after the last announcement, plus the participants checking and signing
      const transferMs = Math.max(0, state.lastFetched - state.lastAnnounced) + certifyMs
      const liveNow = this.deps.live()
      const votes = [...state.votes.values()]
      const metrics: RoundMetrics = {
        ...roundEvaluation(votes),
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
      const finished = round >= task.totalRounds || metrics.accuracy >= task.targetAccuracy
      if (!this.active) throw abortReason(this.controller.signal)
      await net.publish({ type: 'round-done', v: PROTOCOL_VERSION, term: this.term, round, leader: this.deps.self, modelHash, certHash, metrics, finished })
      // RoundDone is out: the round is finished network-wide, whatever happens to this term now
      state.phase = 'done'
      net.blobs.unpin(certHash) // the replica keeps it pinned while it is the newest
      // said before the commit: a commit that finishes training may end the process (--exit-when-done)
      log.info('round-done', { round, term: this.term, modelHash, certHash, signers: votes.length, ...metrics },
        `round ${round} done in ${(durationMs / 1000).toFixed(1)} s: accuracy ${(100 * metrics.accuracy).toFixed(2)}%, loss ${metrics.loss.toFixed(4)}, ${updates.length} updates, signed by ${votes.length} of ${state.checkers.length} checkers`)
      await replica.commit({ round, hash: modelHash, weights }, bytes, { certBytes, termCertBytes: this.deps.termCert.bytes }, { round, term: this.term, modelHash, certHash, metrics }, [...updates.map(u => u.peer), ...votes.map(v => v.peer)])
      return 'closed'
    } finally {
      state.end()
      if (this.current === state) this.current = null
    }
  }

  /** The round's aggregate of `updates` (aggregateRound), with the updates the norm bound left out named; an aggregate that is not finite fails the round. */
  private aggregate (updates: AcceptedUpdate[], current: NamedTensor[], strategy: StrategySpec, round: number): { weights: NamedTensor[], aggregateMs: number } {
    const { counts, log } = this.deps
    const aggregateStart = performance.now()
    const { weights, dropped } = aggregateRound(updates, current, strategy)
    const aggregateMs = performance.now() - aggregateStart
    for (const d of dropped) {
      Counts.bump(counts.rejectedUpdates, 'norm-bound')
      log.warn('update-rejected', { peer: d.peer, round, reason: 'norm-bound', detail: `distance ${d.distance.toPrecision(3)} over the bound ${d.limit.toPrecision(3)}` },
        `round ${round}: update of peer ${short(d.peer)} left out of the aggregate: its distance from the model, ${d.distance.toPrecision(3)}, is over the bound ${d.limit.toPrecision(3)} (--norm-bound)`)
      this.deps.note(d.peer, 'norm-bound', `its update of round ${round} is ${d.distance.toPrecision(3)} from the model, over the bound ${d.limit.toPrecision(3)}`)
    }
    const bad = findNonFinite(weights)
    if (bad !== undefined) throw new RoundError(`the aggregate holds ${bad.value} at ${bad.tensor}[${bad.index}]`)
    return { weights, aggregateMs }
  }

  /**
   * Proposes the round's result, evaluates the new model if this leader is one of the checkers,
   * and collects the checkers' signatures into the round certificate. The result blob is unpinned
   * either way (the certificate carries it from now on); the model blob too, if this fails.
   */
  private async certify (state: RoundState, proposed: { modelHash: string, resultHash: string, resultBytes: Uint8Array, weights: NamedTensor[], updates: number, timeoutMs: number }): Promise<{ certBytes: Uint8Array, evalMs: number, certifyMs: number }> {
    const { clock, net, log, config } = this.deps
    const { modelHash, resultHash, resultBytes, weights, updates, timeoutMs } = proposed
    const { round, task } = state.start
    try {
      const leaderSignature = await this.deps.signer.sign(resultSigningBytes(resultHash))
      state.resultHash = resultHash
      // proposed before our own evaluation: the checkers fetch, check and evaluate meanwhile
      await net.publish({ type: 'round-proposal', v: PROTOCOL_VERSION, term: this.term, round, leader: this.deps.self, resultHash, modelHash, signature: leaderSignature })
      const proposedMs = clock.now() - state.startedAt
      log.info('round-proposed', { round, updates, checkers: state.checkers.length, ms: proposedMs },
        `round ${round}: proposed the model of ${updates} updates after ${(proposedMs / 1000).toFixed(1)} s; ${state.checkers.length} checkers check it`)
      let evalMs = 0
      if (state.checkers.includes(this.deps.self)) {
        this.enter(state, 'evaluating', timeoutMs)
        const evalStart = performance.now()
        const evaluation = await this.deps.trainer.evaluate(task, weights, state.signal)
        evalMs = performance.now() - evalStart
        const ownVote = { peer: this.deps.self, accuracy: evaluation.accuracy, loss: evaluation.loss, samples: evaluation.samples, signature: await this.deps.signer.sign(roundVoteSigningBytes(resultHash, evaluation.accuracy, evaluation.loss, evaluation.samples)) }
        state.votes.set(this.deps.self, ownVote)
        // published like any checker's: with it, the checkers can build the certificate themselves
        await net.publish({ type: 'round-vote', v: PROTOCOL_VERSION, term: this.term, round, resultHash, ...ownVote })
      }
      const certifyBudget = config.transferTimeoutMs + Math.max(30_000, 4 * evalMs) + 2 * config.heartbeatMs
      this.enter(state, 'certifying', certifyBudget)
      const certifyStart = clock.now()
      await this.collectSignatures(state, certifyStart + certifyBudget)
      // a checker that brought an update and signed is in good standing again
      for (const peer of state.votes.keys()) {
        this.unsigned.delete(peer)
        if (state.updates.has(peer)) this.bench.delete(peer)
      }
      const certBytes = encodeRoundCert({ kind: 'round-cert', v: PROTOCOL_VERSION, result: resultBytes, leaderSignature, votes: [...state.votes.values()].sort((a, b) => (a.peer < b.peer ? -1 : 1)) })
      return { certBytes, evalMs, certifyMs: clock.now() - certifyStart }
    } catch (err) {
      net.blobs.unpin(modelHash)
      throw err
    } finally {
      net.blobs.unpin(resultHash) // the certificate carries the result from now on
    }
  }

  private benchNonContributors (state: RoundState): void {
    const round = state.start.round
    // a peer that went silent (a crash, a partition) is out of the membership already: not benched,
    // or a healed partition would leave honest peers without work for rounds
    const live = new Set(this.deps.live().map(h => h.peer))
    for (const { peer } of state.start.assignments) {
      if (peer === this.deps.self || !live.has(peer)) continue
      if (state.updates.has(peer)) {
        // a checker's misses end once it signs too (see collectSignatures)
        if (!state.checkers.includes(peer)) this.bench.delete(peer)
        continue
      }
      const reason = state.dropped.get(peer) ?? 'no update'
      this.benchPeer(peer, round, `brought no update that counts (${reason})`, reason)
    }
  }

  /** No work for `peer` for 1, 2, 4, ... rounds (MAX_BENCH_ROUNDS at most) as its misses add up; returns the round it may work again. */
  private benchPeer (peer: string, round: number, what: string, reason: string): number {
    const misses = (this.bench.get(peer)?.misses ?? 0) + 1
    const rounds = Math.min(MAX_BENCH_ROUNDS, 2 ** (misses - 1))
    const untilRound = round + rounds + 1
    this.bench.set(peer, { untilRound, misses })
    this.deps.log.info('peer-benched', { peer, round, rounds, reason },
      `round ${round}: peer ${short(peer)} ${what}: no work for it for ${rounds} round${rounds === 1 ? '' : 's'}`)
    return untilRound
  }

  private enter (state: RoundState, phase: RoundPhase, budgetMs: number): void {
    if (state.signal.aborted) throw abortReason(state.signal)
    state.phase = phase
    this.touch(budgetMs)
  }

  /**
   * Waits until every assigned live peer has reported (or been dropped), or the deadline. Once
   * enough updates are in (--min-peers, and a majority of the assigned peers), or only newcomers
   * are missing, the others are waited for about as long again as the round took so far, longer in
   * proportion to the work they were given beyond that of the peers that delivered: a peer that
   * takes work and brings nothing costs a round little, not its deadline, while one with more data
   * than the others (more work) is still waited for.
   */
  private async collect (state: RoundState): Promise<void> {
    const { clock, changes, config } = this.deps
    const started = clock.now()
    const assigned = state.start.assignments
    const enough = Math.max(config.minPeers, majority(assigned.length))
    let graceEnd: number | undefined
    while (!state.signal.aborted && clock.now() < state.start.deadline) {
      const live = new Set(this.deps.live().map(h => h.peer))
      const missing = assigned.filter(a => live.has(a.peer) && !state.updates.has(a.peer) && !state.dropped.has(a.peer))
      if (missing.length === 0 && state.fetching.size === 0) return
      if (missing.length > 0 && (state.updates.size >= enough || missing.every(a => this.isNewcomer(a.peer)))) {
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

  /**
   * Waits for the checkers' signatures: until every live checker has signed, or once a quorum
   * has (roundQuorum: what the peers ask), at most about as long again as that took (a member that
   * never signs must not hold every round up), or the deadline. Without a quorum the round fails:
   * it is done again. A live checker that did not sign what others signed is named.
   */
  private async collectSignatures (state: RoundState, until: number): Promise<void> {
    const { clock, config, changes, policy } = this.deps
    const round = state.start.round
    const checkers = state.checkers
    const quorum = (): number => roundQuorum(policy, checkers.length, quorumFollowers(this.deps.standing(), { leader: this.deps.self, term: this.term, round, pool: state.pool }))
    let needed = quorum()
    if (checkers.length === 1 && policy.allowed === undefined) {
      if (!this.saidAlone) this.deps.log.warn('alone', { round }, `round ${round} is signed by this peer alone: it proves nothing to others until more peers take part`)
      this.saidAlone = true
    } else {
      this.saidAlone = false
    }
    const started = clock.now()
    let quorumAt: number | undefined
    while (!state.signal.aborted && clock.now() < until) {
      const live = new Set(this.deps.live().map(h => h.peer))
      needed = quorum()
      if (checkers.every(p => state.votes.has(p) || !live.has(p))) break
      let waitUntil = until
      if (state.votes.size >= needed) {
        quorumAt ??= clock.now()
        waitUntil = Math.min(until, quorumAt + Math.max(2 * config.heartbeatMs, quorumAt - started))
        if (clock.now() >= waitUntil) break
      }
      await changes.wait(waitUntil - clock.now(), state.signal)
    }
    if (state.signal.aborted) throw abortReason(state.signal)
    // Some other checker could check the result, so the live ones that did not sign chose not to,
    // or were too slow. When none could, the fault may be this leader's (a result nobody can
    // fetch): nobody is named for it.
    const live = new Set(this.deps.live().map(h => h.peer))
    const othersSigned = [...state.votes.keys()].some(p => p !== this.deps.self)
    const unsigned = othersSigned ? checkers.filter(p => !state.votes.has(p) && live.has(p) && p !== this.deps.self) : []
    for (const peer of unsigned) this.deps.note(peer, 'no-signature', `did not sign the result of round ${round}, which ${state.votes.size} other checkers signed`)
    if (state.votes.size < needed) {
      // benched, and not drawn again for as long: the round is done again with other
      // participants and other checkers (the same ones would fail it again and again)
      for (const peer of unsigned) this.unsigned.set(peer, this.benchPeer(peer, round, 'did not sign the result', 'no signature'))
      const missing = checkers.filter(p => !state.votes.has(p)).map(short)
      throw new RoundError(`only ${state.votes.size} of ${checkers.length} checkers signed the result of round ${round} within ${until - started} ms, ${needed} needed (missing: ${missing.join(', ')})`)
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
