// DmlNode: one peer's engine, wired. It owns the election and routes each control message to the
// unit it concerns: Membership (heartbeats), Worker (round starts), the Coordinator of the term
// (updates and failures, while this peer leads), Replica (offers, finished rounds, catch-up).
// Time comes from an injected clock and the network through the Network interface, so the whole
// engine runs in unit tests on an in-memory network with fake time.
import type { ControlMessage, Device, Heartbeat, RoundStart, Task, UpdateReady, WorkFailed } from '@dml/protocol'
import type { Checkpoint } from './checkpoint.ts'
import { Changes, type Clock, isAbort, Supervisor, systemClock } from './clock.ts'
import { Coordinator, type LeaderStats, type RoundSnapshot, short } from './coordinator.ts'
import { Election, rankCandidates } from './election.ts'
import type { Logger } from './log.ts'
import { Membership } from './membership.ts'
import type { MessageHandlers, Network, Verdict } from './network.ts'
import { Replica, type CheckpointStore } from './replica.ts'
import type { Trainer } from './trainer.ts'
import { Worker, type WorkPhase } from './worker.ts'

export interface NodeConfig {
  task: Task
  minPeers: number
  /** --shard: train this slice instead of the assigned one */
  shard: [number, number] | null
  heartbeatMs: number
  leaseMs: number
  roundTimeoutMs: number
  /** deadline of one transfer from one source; also how long a leader waits for its model to spread */
  transferTimeoutMs: number
}

export interface BackendInfo {
  backend: string
  device: Device
  source: string
  warning?: string
}

export interface NodeDeps {
  net: Network
  trainer: Trainer
  backend: BackendInfo
  log: Logger
  store: CheckpointStore
  clock?: Clock
}

/** What /api/status shows of the engine: a copy, taken at once. */
export interface NodeStatus {
  peerId: string
  isLeader: boolean
  leader: string | null
  /** where the leader listens, as its heartbeats say */
  leaderAddrs: string[]
  term: number
  state: 'electing' | 'waiting-for-peers' | 'training' | 'finished'
  round: number
  totalRounds: number
  progress: number
  currentRound: RoundSnapshot | WorkPhase | null
  accuracy: number | null
  loss: number | null
  modelHash: string | null
  activeNodes: number
  gpuNodes: number
  cpuNodes: number
  nodes: Array<{ peerId: string, device: Device, backend: string, round: number, samplesPerSec: number, isLeader: boolean }>
  backend: { name: string, device: Device, source: string, warning: string | null }
  task: Task
  recovery: Record<string, number>
  rejectedMessages: Record<string, number>
  rejectedUpdates: Record<string, number>
  history: Array<Record<string, unknown>>
}

const LEADER_MESSAGES = new Set(['round-start', 'model-offer', 'round-done'])

export class DmlNode implements MessageHandlers {
  readonly peerId: string
  readonly config: NodeConfig
  readonly election: Election
  readonly membership: Membership
  readonly replica: Replica
  readonly worker: Worker
  /** the network's task: ours until a leader's RoundStart says otherwise */
  task: Task
  readonly stats: LeaderStats = { roundsRetried: 0, roundsFailed: 0, resignations: 0, rejectedUpdates: {} }
  readonly counters = { leaderChanges: 0, checkpointsCorrupt: 0 }
  /** control messages rejected, by reason */
  readonly rejectedMessages: Record<string, number> = {}
  private readonly net: Network
  private readonly trainer: Trainer
  private readonly backend: BackendInfo
  private readonly log: Logger
  private readonly clock: Clock
  private readonly supervisor: Supervisor
  private readonly changes: Changes
  /** aborts when the node stops: ends the transfers no round owns (offers, catch-up) */
  private readonly lifetime = new AbortController()
  private coordinator: Coordinator | null = null
  private timer: unknown
  private running = false
  private readonly lastSaid = new Map<string, number>()

  constructor (config: NodeConfig, deps: NodeDeps) {
    this.config = config
    this.task = config.task
    this.net = deps.net
    this.peerId = deps.net.peerId
    this.trainer = deps.trainer
    this.backend = deps.backend
    this.log = deps.log
    this.clock = deps.clock ?? systemClock
    this.changes = new Changes(this.clock)
    this.supervisor = new Supervisor((task, err) => {
      if (isAbort(err) && !this.running) return // stopping ends transfers on purpose
      this.log.warn('task-failed', { task, error: (err as Error)?.message ?? String(err) }, `${task} failed: ${(err as Error)?.message ?? String(err)}`)
    })
    this.election = new Election(this.peerId, config.leaseMs, this.clock.now())
    this.membership = new Membership(config.leaseMs)
    this.replica = new Replica({
      net: this.net,
      store: deps.store,
      log: this.log,
      supervisor: this.supervisor,
      signal: this.lifetime.signal,
      transferTimeoutMs: config.transferTimeoutMs,
      term: () => this.election.term,
      task: () => this.task,
      onHolds: () => { this.sendHeartbeat() }
    })
    this.worker = new Worker({
      self: this.peerId,
      net: this.net,
      trainer: this.trainer,
      replica: this.replica,
      log: this.log,
      now: () => this.clock.now(),
      shard: config.shard,
      sources: () => this.membership.live(this.clock.now()).map(h => h.peer),
      report: async (message) => { await this.report(message) }
    })
  }

  get isLeading (): boolean { return this.coordinator !== null }

  /** Starts heartbeats and the election, from a checkpoint if there is one. */
  start (checkpoint?: Checkpoint): void {
    if (checkpoint !== undefined) {
      this.replica.restore(checkpoint)
      this.election.noteTerm(checkpoint.term)
      const accuracy = checkpoint.history.at(-1)?.metrics.accuracy
      this.log.info('checkpoint-loaded', { round: checkpoint.round, term: checkpoint.term, modelHash: checkpoint.modelHash, accuracy },
        `resumed from checkpoint: round ${checkpoint.round}, term ${checkpoint.term}`)
      if (checkpoint.round >= this.task.totalRounds || (accuracy ?? 0) >= this.task.targetAccuracy) this.replica.finish()
    }
    this.running = true
    this.tick()
  }

  async stop (): Promise<void> {
    this.running = false
    this.clock.clearTimeout(this.timer)
    this.endTerm('the peer is stopping')
    this.lifetime.abort()
    this.changes.notify()
    await this.worker.stop()
    await this.supervisor.drain()
  }

  async whenFinished (): Promise<void> {
    await this.replica.whenFinished()
  }

  /** Waits (up to `ms`) until every live peer holds our model, so leaving loses nothing. */
  async drain (ms: number): Promise<void> {
    const until = this.clock.now() + ms
    while (this.clock.now() < until && this.membership.live(this.clock.now()).some(h => h.round < this.replica.round)) {
      await this.changes.wait(Math.min(250, until - this.clock.now()))
    }
  }

  /** Live peers, this one first. */
  live (): Heartbeat[] {
    return [this.heartbeat(), ...this.membership.live(this.clock.now())]
  }

  // ---- what the network hands us ----------------------------------------------------------

  judge (message: ControlMessage, from: string): Verdict {
    if (!this.running) return 'ignore'
    if (message.type === 'heartbeat') {
      if (message.leader === message.peer && message.term < this.election.term && message.round <= this.replica.round) return { reject: 'stale' }
      return 'accept'
    }
    if (message.term < this.election.term) return { reject: 'stale' }
    if (LEADER_MESSAGES.has(message.type) && message.term === this.election.term && from !== this.election.leader) return { reject: 'not-leader' }
    return 'accept'
  }

  deliver (message: ControlMessage): void {
    if (!this.running) return
    switch (message.type) {
      case 'heartbeat': this.onHeartbeat(message); break
      case 'round-start':
        if (this.followClaim(message.leader, message.term, message.round - 1)) this.onRoundStart(message)
        break
      case 'update-ready': this.coordinator?.onUpdate(message); break
      case 'work-failed': this.coordinator?.onFailure(message); break
      case 'model-offer':
        if (this.followClaim(message.leader, message.term, message.round - 1)) this.replica.offered(message, this.sources(message.leader))
        break
      case 'round-done':
        if (this.followClaim(message.leader, message.term, message.round)) this.replica.announce(message, this.sources(message.leader))
        break
      default: {
        const never: never = message
        throw new Error(`unhandled message ${String(never)}`)
      }
    }
  }

  /** Counts a rejected control message; logs it at most once per peer and reason every 10 s. */
  rejected (reason: string, from: string): void {
    this.rejectedMessages[reason] = (this.rejectedMessages[reason] ?? 0) + 1
    this.sayEvery(`${reason}:${from}`, 10_000, () => {
      this.log.warn('message-rejected', { reason, from, total: this.rejectedMessages[reason] }, `rejected a ${reason} control message from ${short(from)} (${this.rejectedMessages[reason]} so far)`)
    })
  }

  /** A new neighbour on the control topic hears from us now, not at the next tick. */
  subscribed (): void {
    if (this.running) this.sendHeartbeat()
  }

  // ---- membership and election ------------------------------------------------------------

  private heartbeat (): Heartbeat {
    return {
      type: 'heartbeat',
      v: 1,
      term: this.election.term,
      peer: this.peerId,
      leader: this.election.leader,
      round: this.replica.round,
      modelHash: this.replica.global?.hash ?? null,
      device: this.backend.device,
      backend: this.backend.backend,
      speed: this.worker.speed,
      addrs: this.net.listenAddrs().slice(0, 16),
      holds: this.replica.holds
    }
  }

  private sendHeartbeat (): void {
    const heartbeat = this.heartbeat()
    this.supervisor.run('heartbeat', async () => {
      try {
        await this.net.publish(heartbeat)
      } catch (err) {
        this.sayEvery(`publish:${(err as Error).message}`, 60_000, () => {
          this.log.warn('publish-failed', { error: (err as Error).message }, `could not send a heartbeat: ${(err as Error).message}`)
        })
      }
    })
  }

  private tick (): void {
    if (!this.running) return
    const now = this.clock.now()
    const lost = this.membership.expire(now)
    for (const peer of lost) {
      this.log.warn('peer-lost', { peer }, `peer ${short(peer)} silent for ${this.config.leaseMs} ms: dropped`)
      if (peer === this.election.leader) {
        this.log.warn('leader-lost', { peer, term: this.election.term }, `leader ${short(peer)} lost (term ${this.election.term})`)
        this.election.leaderLost()
        this.worker.abandon(`the leader of term ${this.election.term} is gone`)
      }
    }
    if (lost.length > 0) this.changes.notify()
    this.coordinator?.checkProgress(now)
    const ranked = rankCandidates(this.live().map(h => ({ peer: h.peer, round: h.round })))
    if (this.election.tick(now, ranked)) this.becameLeader()
    this.sendHeartbeat()
    this.timer = this.clock.setTimeout(() => { this.tick() }, this.config.heartbeatMs)
  }

  private onHeartbeat (hb: Heartbeat): void {
    if (this.membership.observe(hb, this.clock.now())) {
      this.log.info('peer-joined', { peer: hb.peer, device: hb.device, backend: hb.backend }, `peer ${short(hb.peer)} joined (${hb.device}, ${hb.backend})`)
      this.net.dialAddrs(hb.peer, hb.addrs)
    }
    // membership, rounds and held models changed: the coordinator and drain() wait on this
    this.changes.notify()
    this.election.noteTerm(hb.term)
    if (hb.leader === hb.peer) {
      const follows = this.followClaim(hb.peer, hb.term, hb.round)
      // catch up: a leader ahead of us has a model we lack (late join, restart, missed RoundDone)
      if (follows && hb.round > this.replica.round && hb.modelHash !== null) this.replica.catchUp(hb.round, hb.modelHash, this.sources(hb.peer))
    } else if (hb.peer === this.election.leader && hb.term >= this.election.term) {
      // our leader no longer leads (it gave up, or follows another): elect anew
      this.log.warn('leader-lost', { peer: hb.peer, term: this.election.term }, `leader ${short(hb.peer)} no longer leads term ${this.election.term}`)
      this.election.leaderLost()
      this.worker.abandon(`the leader of term ${this.election.term} gave up`)
    }
  }

  /** Applies a leader claim; true when `leader` is (now) the leader we follow. */
  private followClaim (leader: string, term: number, round: number): boolean {
    const wasLeader = this.election.isLeader
    const before = this.election.leader
    const result = this.election.observe({ peer: leader, term, round }, this.replica.round, this.clock.now())
    if (result.kind === 'claim') {
      // the claimant lacks rounds we finished: we lead a newer term ourselves
      this.becameLeader()
      return false
    }
    if (result.kind === 'follow') {
      if (wasLeader) {
        this.log.warn('stepped-down', { term, leader }, `stepping down: ${short(leader)} leads term ${term}`)
        this.endTerm(`${short(leader)} leads term ${term}`)
      }
      if (before !== leader) this.worker.abandon(`now following ${short(leader)}`)
      this.counters.leaderChanges++
      this.log.info('leader-followed', { term, leader }, `following leader ${short(leader)} (term ${term})`)
    }
    return this.election.leader === leader && this.election.term === term
  }

  private becameLeader (): void {
    this.endTerm('a newer term began')
    const term = this.election.term
    this.counters.leaderChanges++
    this.log.info('leader-elected', { term, round: this.replica.round, peer: this.peerId }, `elected leader for term ${term} at round ${this.replica.round}`)
    this.sendHeartbeat()
    const coordinator: Coordinator = new Coordinator({
      self: this.peerId,
      term,
      config: this.config,
      clock: this.clock,
      net: this.net,
      log: this.log,
      trainer: this.trainer,
      replica: this.replica,
      changes: this.changes,
      supervisor: this.supervisor,
      stats: this.stats,
      live: () => this.live(),
      task: () => this.task,
      startLocalWork: (start) => { this.onRoundStart(start) },
      resign: (reason) => { this.resign(coordinator, reason) }
    })
    this.coordinator = coordinator
    this.supervisor.run(`leading term ${term}`, async () => { await coordinator.run() })
  }

  private endTerm (reason: string): void {
    this.coordinator?.stop(reason)
    this.coordinator = null
  }

  /** The coordinator could not make progress: hand leadership to another peer, saying why. */
  private resign (coordinator: Coordinator, reason: string): void {
    if (this.coordinator !== coordinator) return
    this.endTerm(reason)
    const term = this.election.term
    this.election.resign(this.clock.now())
    this.stats.resignations++
    this.log.warn('leader-resigned', { term, reason }, `giving up leadership of term ${term}: ${reason}`)
    this.worker.abandon(`the leader of term ${term} gave up`)
    this.sendHeartbeat()
  }

  // ---- rounds -------------------------------------------------------------------------------

  private onRoundStart (start: RoundStart): void {
    this.task = start.task
    this.worker.start(start)
  }

  /** Our worker's result goes to the leader: through gossip, or straight in when we lead its term. */
  private async report (message: UpdateReady | WorkFailed): Promise<void> {
    const coordinator = this.coordinator
    if (coordinator !== null && coordinator.term === message.term) {
      if (message.type === 'update-ready') coordinator.onUpdate(message)
      else coordinator.onFailure(message)
      return
    }
    await this.net.publish(message)
  }

  /** Peers to fetch a model from: `first`, then every live peer. */
  private sources (first: string): string[] {
    return [first, ...this.membership.live(this.clock.now()).map(h => h.peer)]
  }

  private sayEvery (key: string, ms: number, say: () => void): void {
    const now = this.clock.now()
    if (now - (this.lastSaid.get(key) ?? -Infinity) < ms) return
    this.lastSaid.set(key, now)
    say()
  }

  // ---- status -------------------------------------------------------------------------------

  status (): NodeStatus {
    const live = this.live()
    const last = this.replica.history.at(-1)
    const leader = this.election.leader
    const totalRounds = this.task.totalRounds
    return {
      peerId: this.peerId,
      isLeader: this.election.isLeader,
      leader,
      leaderAddrs: [...(live.find(h => h.peer === leader)?.addrs ?? [])],
      term: this.election.term,
      state: this.replica.finished ? 'finished' : leader === null ? 'electing' : live.length < this.config.minPeers ? 'waiting-for-peers' : 'training',
      round: this.replica.round,
      totalRounds,
      progress: Math.min(1, this.replica.round / totalRounds),
      currentRound: this.coordinator?.snapshot() ?? (this.worker.phase === null ? null : { ...this.worker.phase }),
      accuracy: last?.metrics.accuracy ?? null,
      loss: last?.metrics.loss ?? null,
      modelHash: this.replica.global?.hash ?? null,
      activeNodes: live.length,
      gpuNodes: live.filter(h => h.device === 'gpu').length,
      cpuNodes: live.filter(h => h.device === 'cpu').length,
      nodes: live.map(h => ({ peerId: h.peer, device: h.device, backend: h.backend, round: h.round, samplesPerSec: Math.round(h.speed), isLeader: h.peer === leader })),
      backend: { name: this.backend.backend, device: this.backend.device, source: this.backend.source, warning: this.backend.warning ?? null },
      task: { ...this.task },
      recovery: {
        ...this.counters,
        ...this.membership.counters,
        electionsWon: this.election.elections,
        roundsRetried: this.stats.roundsRetried,
        roundsFailed: this.stats.roundsFailed,
        resignations: this.stats.resignations,
        checkpointErrors: this.replica.counters.checkpointErrors
      },
      rejectedMessages: { ...this.rejectedMessages },
      rejectedUpdates: { ...this.stats.rejectedUpdates },
      history: this.replica.history.map(r => ({ round: r.round, term: r.term, modelHash: r.modelHash, ...r.metrics }))
    }
  }
}
