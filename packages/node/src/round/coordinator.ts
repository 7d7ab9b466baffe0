// Coordinator: leads one term. It runs one round at a time through the phases of RoundState
// (round-state.ts), with a quorum (--min-peers updates) and a deadline. Work goes only to peers
// that follow this leader (they checked its term certificate), as the Roster picks them; their
// updates are collected by the UpdateCollector. A round is done only with a certificate: the
// leader proposes its result, its checkers (a few of the round's members, drawn by hash when the
// round starts, see roundCheckers) check it, compute the model themselves and sign, and a quorum
// of signatures is published with RoundDone. It is supervised: a failed step is logged with its
// cause and the round tried again; after MAX_FAILURES_IN_A_ROW failures, or no progress for the
// round's budget plus a grace, it gives up leadership so that the others elect another. A leader
// never stays a leader that leads nothing.
import { encodeResult, encodeTensors, findNonFinite, PROTOCOL_VERSION, resultSigningBytes, roundVoteSigningBytes, roundEvaluation, type Heartbeat, type NamedTensor, type RoundMetrics, type RoundResult, type RoundStart, type RoundVote, type StrategySpec, type Task, type Unstamped, type UpdateReady, type WorkFailed } from '@dml/protocol'
import { aggregateRound } from '@dml/trainer/aggregation'
import { allocateWork, expectedSeconds, roundParticipants } from './allocation.ts'
import { certVoteOf, drawCheckers, roundCertificate, quorumFollowers, roundQuorum, type QuorumPolicy, type Signer, type Standing } from '../proof/certificates.ts'
import { AbortError, abortReason, type Changes, type Clock, sleep, type Supervisor } from '../clock.ts'
import { count, short, type Logger } from '../log.ts'
import type { Network } from '../net/network.ts'
import type { Replica } from '../state/replica.ts'
import type { Trainer } from './trainer.ts'
import type { Offence } from '../state/misbehaviour.ts'
import { UpdateCollector } from './update-collector.ts'
import { Roster } from './roster.ts'
import { Counts } from '../state/counts.ts'
import { RoundError, RoundState, type AcceptedUpdate, type RoundPhase, type RoundSnapshot } from './round-state.ts'

/** Failed attempts at a round, in a row, after which the leader hands over. */
export const MAX_FAILURES_IN_A_ROW = 3

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

export class Coordinator {
  readonly term: number
  private readonly deps: CoordinatorDeps
  private readonly controller = new AbortController()
  private current: RoundState | null = null
  /** no phase change by then means the round is stuck: hand over (the watchdog) */
  private stallAt = Infinity
  private saidWaiting = false
  private saidAlone = false
  /** who gets work, and who checks (roster.ts) */
  private readonly roster: Roster
  private readonly updates: UpdateCollector

  constructor (deps: CoordinatorDeps) {
    this.deps = deps
    this.term = deps.term
    this.roster = new Roster({ self: deps.self, policy: deps.policy, proven: deps.replica.proven, standing: deps.standing, live: deps.live, log: deps.log })
    this.updates = new UpdateCollector({ ...deps, isNewcomer: (peer) => this.roster.isNewcomer(peer) })
  }

  get active (): boolean { return !this.controller.signal.aborted }

  /** Ends the term: aborts the round and every transfer in it. */
  stop (reason: string): void {
    this.controller.abort(new AbortError(reason))
  }

  snapshot (): RoundSnapshot | null {
    return this.current?.snapshot(this.term) ?? null
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

  /** An update-ready for our round: fetched and judged in the background (update-collector.ts). */
  onUpdate (update: Unstamped<UpdateReady>): void {
    const state = this.collecting(update.term, update.round, update.peer)
    if (state !== undefined) this.updates.take(state, update)
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

  /**
   * A heartbeat of a peer that follows us and that our round waits for, saying it works on no round
   * of ours: it restarted (a reloaded tab, a restarted node) after the start went out, and has no
   * start to take up, so the round would wait out its deadline for it. The start goes out again
   * (stamped anew: the peers that hold it take it as the same start) once the peer has had two
   * heartbeat intervals to take the first, at most once an interval.
   */
  onHeartbeat (hb: Unstamped<Heartbeat>): void {
    const state = this.current
    if (state === null || !this.active || hb.leader !== this.deps.self || !this.updates.waitsFor(state, hb.peer)) return
    if (hb.work !== null && hb.work.round === state.start.round) return
    const { clock, config, log, net, supervisor } = this.deps
    const now = clock.now()
    if (now - state.startedAt < 2 * config.heartbeatMs || now - state.startResentAt < config.heartbeatMs) return
    state.startResentAt = now
    log.info('round-start-resent', { round: state.start.round, peer: hb.peer }, `round ${state.start.round}: ${short(hb.peer)} follows this peer but works on no round of it (restarted?): its start sent again`)
    supervisor.run(`round ${state.start.round}'s start, again`, async () => { await net.publish(state.start) })
  }

  /** A peer could not do its work: name it, and stop waiting for it. */
  onFailure (failure: Unstamped<WorkFailed>): void {
    const state = this.collecting(failure.term, failure.round, failure.peer)
    if (state !== undefined) this.updates.failed(state, failure)
  }

  /** The round this message is for, if we are collecting it and still wait for its peer. */
  private collecting (term: number, round: number, peer: string): RoundState | undefined {
    const state = this.current
    if (state === null || !this.active || term !== this.term || round !== state.start.round || !this.updates.waitsFor(state, peer)) return undefined
    return state
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
    const live = this.roster.workers(followers, round, config.minPeers)
    if (live.length < config.minPeers) {
      if (!this.saidWaiting) log.info('waiting-for-peers', { have: live.length, need: config.minPeers }, `waiting for peers to follow: ${live.length} of ${config.minPeers}`)
      this.saidWaiting = true
      this.stallAt = Infinity // too few peers is not a stuck leader: another would wait the same
      await changes.wait(config.heartbeatMs, this.controller.signal)
      return 'waiting'
    }
    this.saidWaiting = false
    return await this.runRound(live, this.roster.pool(followers.map(h => h.peer), round))
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
        `round ${round}/${task.totalRounds}: ${count(assignments.length, 'peer')}, deadline in ${Math.round(timeoutMs / 1000)} s`)
      await net.publish(start)
      this.deps.startLocalWork(start)
      await this.updates.collect(state)
      this.roster.collected(state)
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
        kind: 'round-result', v: PROTOCOL_VERSION, term: this.term, round, leader: this.deps.self, deadline: start.deadline, prevHash: global.hash, modelHash,
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
      state.done()
      net.blobs.unpin(certHash) // the replica keeps it pinned while it is the newest
      // said before the commit: a commit that finishes training may end the process (--exit-when-done)
      log.info('round-done', { round, term: this.term, modelHash, certHash, signers: votes.length, ...metrics },
        `round ${round} done in ${(durationMs / 1000).toFixed(1)} s: accuracy ${(100 * metrics.accuracy).toFixed(2)}%, loss ${metrics.loss.toFixed(4)}, ${count(updates.length, 'update')}, signed by ${votes.length} of ${count(state.checkers.length, 'checker')}`)
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
        `round ${round}: proposed the model of ${count(updates, 'update')} after ${(proposedMs / 1000).toFixed(1)} s; ${state.checkers.length === 1 ? '1 checker checks' : `${state.checkers.length} checkers check`} it`)
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
      this.roster.signed(state)
      const certBytes = roundCertificate(resultBytes, leaderSignature, state.votes.values())
      return { certBytes, evalMs, certifyMs: clock.now() - certifyStart }
    } catch (err) {
      net.blobs.unpin(modelHash)
      throw err
    } finally {
      net.blobs.unpin(resultHash) // the certificate carries the result from now on
    }
  }

  private enter (state: RoundState, phase: Exclude<RoundPhase, 'done'>, budgetMs: number): void {
    state.enter(phase)
    this.touch(budgetMs)
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
      this.roster.unsignedFailed(unsigned, round)
      const missing = checkers.filter(p => !state.votes.has(p)).map(short)
      throw new RoundError(`only ${state.votes.size} of ${checkers.length} checkers signed the result of round ${round} within ${until - started} ms, ${needed} needed (missing: ${missing.join(', ')})`)
    }
  }
}
