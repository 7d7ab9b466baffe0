// A dml peer: membership by heartbeats, election, and the round engine in both roles.
// As leader it starts rounds, collects and aggregates updates, evaluates and publishes the new
// model; as a worker (the leader is one too) it trains on its shard and announces its update.
import { assertSameShapes, decodeTensors, encodeTensors, type Assignment, type ControlMessage, type Heartbeat, type ModelOffer, type NamedTensor, type RoundDone, type RoundMetrics, type RoundStart, type Task, type UpdateReady } from '@dml/protocol'
import { getStrategy, type BackendChoice, type ClientUpdate } from '@dml/trainer'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { allocateWork, expectedSeconds } from './allocation.ts'
import { loadLatestCheckpoint, saveCheckpoint, type RoundRecord } from './checkpoint.ts'
import { ConfigError } from './config.ts'
import { Election, rankCandidates } from './election.ts'
import { startHost, type DmlHost, type Verdict } from './host.ts'
import type { Logger } from './log.ts'
import type { LocalTrainer } from './trainer.ts'

export interface RuntimeConfig {
  task: Task
  minPeers: number
  shard: [number, number] | null
  host: string
  port: number
  bootstrap: string[]
  mdns: boolean
  swarmKey?: Uint8Array
  dataDir: string
  heartbeatMs: number
  leaseMs: number
  roundTimeoutMs: number
  httpPort: number
}

interface Member {
  heartbeat: Heartbeat
  lastSeen: number
}

interface GlobalModel {
  round: number
  hash: string
  weights: NamedTensor[]
}

interface LeaderRound {
  term: number
  start: RoundStart
  startedAt: number
  updates: Map<string, ClientUpdate & { trainMs: number }>
  fetching: Set<string>
  /** when the last update was announced, and when the last update blob arrived (ms) */
  lastAnnounced: number
  lastFetched: number
}

const BLOB_TIMEOUT_MS = 120_000
const REPLICATION_TIMEOUT_MS = 10_000

export class DmlNode {
  readonly config: RuntimeConfig
  readonly log: Logger
  readonly trainer: LocalTrainer
  readonly backend: BackendChoice
  host!: DmlHost
  election!: Election
  task: Task
  global: GlobalModel | null = null
  history: RoundRecord[] = []
  finished = false
  readonly members = new Map<string, Member>()
  readonly counters = { leaderChanges: 0, peersLost: 0, peersJoined: 0, roundsRetried: 0, checkpointsCorrupt: 0 }
  /** round being trained locally, for status */
  phase: { round: number, state: string, done: number, total: number } | null = null
  leading: LeaderRound | null = null
  private latestStart: RoundStart | null = null
  private speed = 0
  private timer: NodeJS.Timeout | undefined
  private trainQueue: Promise<void> = Promise.resolve()
  private adopting = new Set<string>()
  /** RoundDone messages by model hash, kept until we hold that model */
  private readonly announced = new Map<string, RoundDone>()
  private readonly lastRejectLog = new Map<string, number>()
  /** hash of the newest offered model we fetched (announced in heartbeats) */
  private holds: string | null = null
  private wakeUp: (() => void) | undefined
  private readonly doneListeners: Array<() => void> = []
  private stopped = false

  constructor (config: RuntimeConfig, trainer: LocalTrainer, backend: BackendChoice, log: Logger) {
    this.config = config
    this.trainer = trainer
    this.backend = backend
    this.log = log
    this.task = config.task
  }

  get peerId (): string { return this.host.peerId }
  get round (): number { return this.global?.round ?? 0 }

  async start (privateKey: PrivateKey): Promise<void> {
    await this.trainer.load(this.task.dataset)
    const checkpoint = await loadLatestCheckpoint(this.config.dataDir, (err) => {
      this.counters.checkpointsCorrupt++
      this.log.warn('checkpoint-corrupt', { error: err.message }, `skipping corrupt checkpoint: ${err.message}`)
    })
    if (checkpoint !== undefined) {
      const { model, dataset } = checkpoint.task
      if (model !== this.task.model || dataset !== this.task.dataset) {
        throw new ConfigError(`the checkpoint in ${this.config.dataDir} is of model "${model}" on "${dataset}", not "${this.task.model}" on "${this.task.dataset}": pass --model ${model} --dataset ${dataset}, or use another --data-dir`)
      }
    }
    // the election exists before the host: messages can arrive while the host is still starting
    this.election = new Election(peerIdFromPrivateKey(privateKey).toString(), this.config.leaseMs, Date.now())
    this.host = await startHost({
      privateKey,
      host: this.config.host,
      port: this.config.port,
      bootstrap: this.config.bootstrap,
      mdns: this.config.mdns,
      swarmKey: this.config.swarmKey
    }, (m, from) => this.judge(m, from), (m) => { this.deliver(m) }, (reason, from) => { this.onRejected(reason, from) },
    // a new neighbour on the control topic hears from us now, not at the next tick: a peer that
    // joins or restarts is known to the leader before the next round starts
    () => { this.host?.publish(this.heartbeat()).catch(() => {}) })
    if (checkpoint !== undefined) {
      this.global = { round: checkpoint.round, hash: checkpoint.modelHash, weights: decodeTensors(checkpoint.model) }
      this.host.blobs.put(checkpoint.model, true)
      this.history = checkpoint.history
      this.election.noteTerm(checkpoint.term)
      if (this.isFinished(this.round, this.history.at(-1)?.metrics.accuracy ?? 0)) this.finish()
      this.log.info('checkpoint-loaded', { round: checkpoint.round, term: checkpoint.term, modelHash: checkpoint.modelHash, accuracy: this.history.at(-1)?.metrics.accuracy },
        `resumed from checkpoint: round ${checkpoint.round}, term ${checkpoint.term}`)
    }
    this.timer = setInterval(() => { this.tick() }, this.config.heartbeatMs)
    this.tick()
  }

  async stop (): Promise<void> {
    this.stopped = true
    clearInterval(this.timer)
    this.wake()
    await this.host?.stop()
  }

  /** Resolves when training has finished (rounds done or target reached). */
  async whenFinished (): Promise<void> {
    if (this.finished) return
    await new Promise<void>(resolve => this.doneListeners.push(resolve))
  }

  /** Waits (up to `ms`) until every live peer holds our model, so leaving loses nothing. */
  async drain (ms: number): Promise<void> {
    const until = Date.now() + ms
    while (Date.now() < until && this.liveMembers().some(h => h.round < this.round)) await this.changed(250)
  }

  // ---- membership and election ------------------------------------------------------------

  liveMembers (now = Date.now()): Heartbeat[] {
    const live = [...this.members.values()].filter(m => now - m.lastSeen < this.config.leaseMs).map(m => m.heartbeat)
    return [this.heartbeat(), ...live]
  }

  private heartbeat (): Heartbeat {
    return {
      type: 'heartbeat',
      v: 1,
      term: this.election.term,
      peer: this.peerId,
      leader: this.election.leader,
      round: this.round,
      modelHash: this.global?.hash ?? null,
      device: this.backend.device,
      backend: this.backend.backend,
      speed: this.speed,
      addrs: this.host.listenAddrs().slice(0, 16),
      holds: this.holds
    }
  }

  private tick (): void {
    if (this.stopped) return
    const now = Date.now()
    for (const [peer, member] of this.members) {
      if (now - member.lastSeen >= this.config.leaseMs) {
        this.members.delete(peer)
        this.counters.peersLost++
        this.log.warn('peer-lost', { peer }, `peer ${short(peer)} silent for ${this.config.leaseMs} ms: dropped`)
        if (peer === this.election.leader) {
          this.log.warn('leader-lost', { peer, term: this.election.term }, `leader ${short(peer)} lost (term ${this.election.term})`)
          this.election.leaderLost()
        }
        this.wake()
      }
    }
    const ranked = rankCandidates(this.liveMembers(now).map(h => ({ peer: h.peer, round: h.round })))
    if (this.election.tick(now, ranked)) this.becameLeader()
    this.host.publish(this.heartbeat()).catch(() => {})
  }

  private becameLeader (): void {
    this.counters.leaderChanges++
    this.log.info('leader-elected', { term: this.election.term, round: this.round, peer: this.peerId },
      `elected leader for term ${this.election.term} at round ${this.round}`)
    this.host.publish(this.heartbeat()).catch(() => {})
    const term = this.election.term
    this.lead(term).catch(err => { this.log.warn('leader-error', { error: String(err) }, `leading failed: ${(err as Error).stack ?? String(err)}`) })
  }

  /** Logs a rejected control message: at most once per peer and reason every 10 s. */
  private onRejected (reason: string, from: string): void {
    const key = `${reason}:${from}`
    const now = Date.now()
    if (now - (this.lastRejectLog.get(key) ?? 0) < 10_000) return
    this.lastRejectLog.set(key, now)
    this.log.warn('message-rejected', { reason, from, total: this.host.rejected[reason] }, `rejected a ${reason} control message from ${short(from)} (${this.host.rejected[reason]} so far)`)
  }

  /** Decides in the gossip validator whether a well-formed message is current. */
  private judge (message: ControlMessage, from: string): Verdict {
    if (message.type === 'heartbeat') {
      if (message.leader === message.peer && message.term < this.election.term && message.round <= this.round) return { reject: 'stale' }
      return 'accept'
    }
    if (message.term < this.election.term) return { reject: 'stale' }
    if ((message.type === 'round-start' || message.type === 'model-offer' || message.type === 'round-done') && message.term === this.election.term && from !== this.election.leader) {
      return { reject: 'not-leader' }
    }
    return 'accept'
  }

  private deliver (message: ControlMessage): void {
    // until startHost returns there is no host to answer with; heartbeats repeat, nothing is lost
    if (this.stopped || this.host === undefined) return
    switch (message.type) {
      case 'heartbeat': this.onHeartbeat(message); break
      case 'round-start':
        if (this.followClaim(message.leader, message.term, message.round - 1)) this.onRoundStart(message)
        break
      case 'update-ready': this.onUpdateReady(message); break
      case 'model-offer':
        if (this.followClaim(message.leader, message.term, message.round - 1)) this.onModelOffer(message)
        break
      case 'round-done':
        if (this.followClaim(message.leader, message.term, message.round)) this.onRoundDone(message)
        break
      default: {
        const never: never = message
        throw new Error(`unhandled message ${String(never)}`)
      }
    }
  }

  /** Applies a leader claim; true when `leader` is (now) the leader we follow. */
  private followClaim (leader: string, term: number, round: number): boolean {
    const wasLeader = this.election.isLeader
    const result = this.election.observe({ peer: leader, term, round }, this.round, Date.now())
    if (result.kind === 'claim') {
      if (!wasLeader) this.becameLeader()
      else this.host.publish(this.heartbeat()).catch(() => {})
      return false
    }
    if (result.kind === 'follow') {
      if (wasLeader) {
        this.log.warn('stepped-down', { term, leader }, `stepping down: ${short(leader)} leads term ${term}`)
        this.leading = null
        this.wake()
      }
      this.counters.leaderChanges++
      this.log.info('leader-followed', { term, leader }, `following leader ${short(leader)} (term ${term})`)
    }
    return this.election.leader === leader && this.election.term === term
  }

  private onHeartbeat (hb: Heartbeat): void {
    const known = this.members.get(hb.peer)
    if (known === undefined) {
      this.counters.peersJoined++
      this.log.info('peer-joined', { peer: hb.peer, device: hb.device, backend: hb.backend }, `peer ${short(hb.peer)} joined (${hb.device}, ${hb.backend})`)
      this.host.dialAddrs(hb.peer, hb.addrs)
    }
    this.members.set(hb.peer, { heartbeat: hb, lastSeen: Date.now() })
    // membership, rounds and held models changed: the leader loop and drain() wait on this
    this.wake()
    this.election.noteTerm(hb.term)
    if (hb.leader === hb.peer) {
      const follows = this.followClaim(hb.peer, hb.term, hb.round)
      // catch up: a leader ahead of us has a model we lack (late join, restart, missed RoundDone)
      if (follows && hb.round > this.round && hb.modelHash !== null) this.adopt(hb.round, hb.modelHash, [hb.peer])
    }
  }

  // ---- worker ------------------------------------------------------------------------------

  private onRoundStart (rs: RoundStart): void {
    const mine = rs.assignments.find(a => a.peer === this.peerId)
    this.task = rs.task
    this.latestStart = rs
    if (mine === undefined) return
    this.trainQueue = this.trainQueue.then(async () => { await this.trainRound(rs, mine) }).catch(err => {
      if ((err as Error).name === 'TrainingAborted') {
        this.log.info('train-aborted', { round: rs.round, term: rs.term }, `round ${rs.round} (term ${rs.term}): local training abandoned, the round was superseded`)
      } else {
        this.log.warn('train-error', { round: rs.round, error: String(err) }, `round ${rs.round}: local training failed: ${(err as Error).message}`)
      }
    })
  }

  /** Whether `rs` is still the round to work on: the latest start from the leader we follow. */
  private stillCurrent (rs: RoundStart): boolean {
    return !this.stopped && this.latestStart === rs && this.election.term === rs.term && this.election.leader === rs.leader
  }

  private async trainRound (rs: RoundStart, assignment: Assignment): Promise<void> {
    if (!this.stillCurrent(rs)) return
    const weights = await this.modelWeights(rs.modelHash, [rs.leader, ...this.liveMembers().map(m => m.peer)])
    if (!this.stillCurrent(rs)) return
    const shard = this.config.shard ?? assignment.shard
    this.phase = { round: rs.round, state: 'training', done: 0, total: assignment.samples }
    this.log.info('train-start', { round: rs.round, samples: assignment.samples, shard }, `round ${rs.round}: training on ${assignment.samples} samples of shard ${shard[0]}/${shard[1]}`)
    let lastLog = 0
    const result = await this.trainer.train(rs.task, weights, shard, assignment.samples, rs.round * 1000 + shard[0], (done, total, loss) => {
      this.phase = { round: rs.round, state: 'training', done, total }
      if (Date.now() - lastLog > 2000) {
        lastLog = Date.now()
        this.log.info('train-progress', { round: rs.round, done, total, loss }, `round ${rs.round}: ${Math.round(100 * done / total)}% of local epoch work, loss ${loss.toFixed(4)}`)
      }
    }, () => !this.stillCurrent(rs)) // a newer round or a new leader makes this work pointless
    this.speed = result.numSamples / (result.trainMs / 1000)
    this.phase = { round: rs.round, state: 'sending', done: assignment.samples, total: assignment.samples }
    const hash = this.host.blobs.put(encodeTensors(result.weights))
    const update: UpdateReady = {
      type: 'update-ready', v: 1, term: rs.term, round: rs.round, peer: this.peerId, hash, numSamples: result.numSamples,
      metrics: { loss: result.loss, trainMs: result.trainMs, samplesPerSec: this.speed }
    }
    this.log.info('train-done', { round: rs.round, loss: result.loss, trainMs: result.trainMs, samplesPerSec: this.speed },
      `round ${rs.round}: trained in ${(result.trainMs / 1000).toFixed(1)} s (${Math.round(this.speed)} samples/s), loss ${result.loss.toFixed(4)}`)
    if (this.election.isLeader) this.onUpdateReady(update)
    else await this.host.publish(update)
  }

  /** The weights of model `hash`: ours if we hold it, else fetched from `from` and verified. */
  private async modelWeights (hash: string, from: string[]): Promise<NamedTensor[]> {
    if (this.global?.hash === hash) return this.global.weights
    const bytes = await this.host.fetchBlob(hash, from, BLOB_TIMEOUT_MS)
    return decodeTensors(bytes)
  }

  private onRoundDone (rd: RoundDone): void {
    this.announced.set(rd.modelHash, rd)
    if (rd.round <= this.round) this.recordAnnounced()
    else this.adopt(rd.round, rd.modelHash, [rd.leader, ...this.liveMembers().map(m => m.peer)])
  }

  /**
   * Makes round `round`'s model ours: fetch, verify, checkpoint. Reached from a RoundDone, or
   * from a leader heartbeat that shows we are behind (late join, restart, a missed RoundDone).
   */
  private adopt (round: number, hash: string, from: string[]): void {
    if (round <= this.round || this.adopting.has(hash)) return
    this.adopting.add(hash)
    this.host.fetchBlob(hash, from, BLOB_TIMEOUT_MS).then(async (bytes) => {
      if (round <= this.round) return
      const weights = decodeTensors(bytes)
      if (this.global !== null) assertSameShapes(weights, this.global.weights)
      const done = this.announced.get(hash)
      await this.commit({ round, hash, weights }, bytes, done === undefined ? undefined : roundRecord(done))
      this.phase = null
      this.log.info('model-adopted', { round, modelHash: hash, accuracy: done?.metrics.accuracy },
        done !== undefined
          ? `round ${round} done: accuracy ${(100 * done.metrics.accuracy).toFixed(2)}%, loss ${done.metrics.loss.toFixed(4)}, ${done.metrics.participants.length} peers`
          : `caught up to round ${round}`)
      await this.recordAnnounced()
    }).catch(err => {
      this.log.warn('adopt-failed', { round, error: String(err) }, `could not get the model of round ${round}: ${(err as Error).message}`)
    }).finally(() => this.adopting.delete(hash))
  }

  /** Records the RoundDone of the model we hold, if it came after the model itself; finishes if it says so. */
  private async recordAnnounced (): Promise<void> {
    for (const [hash, done] of this.announced) {
      if (done.round < this.round) this.announced.delete(hash)
      if (this.global?.hash !== hash) continue
      this.announced.delete(hash)
      if (this.history.at(-1)?.round !== done.round) {
        this.history.push(roundRecord(done))
        await this.checkpoint()
      }
      if (done.finished) this.finish()
    }
  }

  /** Installs a new global model and checkpoints it. */
  private async commit (model: GlobalModel, bytes: Uint8Array, record: RoundRecord | undefined): Promise<void> {
    const previous = this.global?.hash
    this.global = model
    this.host.blobs.put(bytes, true)
    if (previous !== undefined) this.host.blobs.unpin(previous)
    if (record !== undefined) this.history.push(record)
    await this.checkpoint()
  }

  private async checkpoint (): Promise<void> {
    const model = this.global!
    const bytes = this.host.blobs.get(model.hash) ?? encodeTensors(model.weights)
    await saveCheckpoint(this.config.dataDir, { round: model.round, term: this.election.term, modelHash: model.hash, model: bytes, task: this.task, history: this.history })
  }

  /** Training is over (rounds done or target reached): say so once and release whenFinished(). */
  private finish (): void {
    if (this.finished) return
    this.finished = true
    const last = this.history.at(-1)
    this.log.info('training-finished', { round: this.round, accuracy: last?.metrics.accuracy, modelHash: this.global?.hash },
      `training finished at round ${this.round}: accuracy ${(100 * (last?.metrics.accuracy ?? 0)).toFixed(2)}%`)
    for (const listener of this.doneListeners.splice(0)) listener()
  }

  // ---- leader ------------------------------------------------------------------------------

  private isFinished (round: number, accuracy: number): boolean {
    return round >= this.task.totalRounds || accuracy >= this.task.targetAccuracy
  }

  private wake (): void {
    const w = this.wakeUp
    this.wakeUp = undefined
    w?.()
  }

  /** Waits until something changes (membership, an update) or `ms` pass. */
  private async changed (ms: number): Promise<void> {
    await new Promise<void>(resolve => {
      const timer = setTimeout(() => { this.wakeUp = undefined; resolve() }, Math.max(0, ms))
      this.wakeUp = () => { clearTimeout(timer); resolve() }
    })
  }

  private leads (term: number): boolean {
    return !this.stopped && this.election.isLeader && this.election.term === term
  }

  private async lead (term: number): Promise<void> {
    if (this.global === null) {
      const weights = await this.trainer.initialWeights(this.task)
      const bytes = encodeTensors(weights)
      const hash = this.host.blobs.put(bytes, true)
      this.global = { round: 0, hash, weights }
      this.log.info('model-initialised', { model: this.task.model, modelHash: hash, bytes: bytes.byteLength }, `initialised ${this.task.model} (${(bytes.byteLength / 1e6).toFixed(2)} MB)`)
    }
    let waitingSaid = false
    while (this.leads(term) && !this.finished) {
      const workers = this.liveMembers()
      if (workers.length < this.config.minPeers) {
        if (!waitingSaid) this.log.info('waiting-for-peers', { have: workers.length, need: this.config.minPeers }, `waiting for peers: ${workers.length} of ${this.config.minPeers}`)
        waitingSaid = true
        await this.changed(this.config.heartbeatMs)
        continue
      }
      waitingSaid = false
      const closed = await this.runRound(term, workers)
      if (!closed && this.leads(term)) {
        this.counters.roundsRetried++
        await this.changed(this.config.heartbeatMs)
      }
    }
  }

  private async runRound (term: number, workers: Heartbeat[]): Promise<boolean> {
    const global = this.global!
    const round = global.round + 1
    const speedOf = workers.map(w => ({ peer: w.peer, speed: w.speed }))
    const assignments = allocateWork({ workers: speedOf, trainSize: this.trainer.trainSize, localEpochs: this.task.localEpochs, batchSize: this.task.batchSize })
    const expected = expectedSeconds(assignments, speedOf)
    const timeoutMs = expected === undefined ? this.config.roundTimeoutMs : Math.min(this.config.roundTimeoutMs, 3000 * expected + 30_000)
    const startedAt = Date.now()
    const start: RoundStart = { type: 'round-start', v: 1, term, round, leader: this.peerId, modelHash: global.hash, deadline: startedAt + timeoutMs, task: this.task, assignments }
    this.leading = { term, start, startedAt, updates: new Map(), fetching: new Set(), lastAnnounced: startedAt, lastFetched: startedAt }
    this.log.info('round-start', { round, term, peers: assignments.length, deadline: start.deadline },
      `round ${round}/${this.task.totalRounds}: ${assignments.length} peers, deadline in ${Math.round(timeoutMs / 1000)} s`)
    await this.host.publish(start)
    this.onRoundStart(start)
    const leading = this.leading
    // close when every assigned peer that is still alive has reported, or at the deadline
    while (this.leads(term) && Date.now() < start.deadline) {
      const live = new Set(this.liveMembers().map(h => h.peer))
      const waitingFor = assignments.filter(a => !leading.updates.has(a.peer) && live.has(a.peer))
      if (waitingFor.length === 0 && leading.fetching.size === 0) break
      await this.changed(Math.min(1000, start.deadline - Date.now()))
    }
    if (!this.leads(term) || this.leading !== leading) return false
    const updates = [...leading.updates.values()]
    if (updates.length < this.config.minPeers) {
      this.log.warn('round-retry', { round, updates: updates.length, need: this.config.minPeers },
        `round ${round}: only ${updates.length} of ${this.config.minPeers} needed updates by the deadline; retrying`)
      this.leading = null
      return false
    }
    const aggregateStart = performance.now()
    const weights = getStrategy(this.task.aggregation).aggregate(updates, global.weights)
    const aggregateMs = performance.now() - aggregateStart
    const evalStart = performance.now()
    const evaluation = await this.trainer.evaluate(this.task, weights)
    const evalMs = performance.now() - evalStart
    if (!this.leads(term)) return false
    const bytes = encodeTensors(weights)
    const hash = this.host.blobs.put(bytes, true)
    const replicateMs = await this.replicate(term, round, hash)
    if (!this.leads(term)) {
      this.host.blobs.unpin(hash)
      return false
    }
    const durationMs = Date.now() - startedAt
    const trainMs = Math.max(...updates.map(u => u.trainMs))
    // the split is of the leader's timeline, so its parts add up to the round: transfer is the wait
    // for update blobs after the last announcement, plus replicating the new model
    const transferMs = Math.max(0, leading.lastFetched - leading.lastAnnounced) + replicateMs
    const live = this.liveMembers()
    const metrics: RoundMetrics = {
      accuracy: evaluation.accuracy,
      loss: evaluation.loss,
      participants: updates.map(u => u.peer),
      activeNodes: live.length,
      gpuNodes: live.filter(h => h.device === 'gpu').length,
      cpuNodes: live.filter(h => h.device === 'cpu').length,
      durationMs,
      trainMs,
      transferMs,
      aggregateMs,
      evalMs,
      idleMs: Math.max(0, durationMs - trainMs - transferMs - aggregateMs - evalMs),
      finishedAt: Date.now()
    }
    this.leading = null
    const finished = this.isFinished(round, evaluation.accuracy)
    await this.host.publish({ type: 'round-done', v: 1, term, round, leader: this.peerId, modelHash: hash, metrics, finished })
    await this.commit({ round, hash, weights }, bytes, { round, term, modelHash: hash, metrics })
    this.log.info('round-done', { round, term, modelHash: hash, ...metrics },
      `round ${round} done in ${(durationMs / 1000).toFixed(1)} s: accuracy ${(100 * evaluation.accuracy).toFixed(2)}%, loss ${evaluation.loss.toFixed(4)}, ${updates.length} updates`)
    if (finished) this.finish()
    return true
  }

  /**
   * Offers the round's model and waits (at most REPLICATION_TIMEOUT_MS) until every other live
   * peer holds it, so that once RoundDone is out the model outlives this leader. Returns the wait.
   */
  private async replicate (term: number, round: number, hash: string): Promise<number> {
    const started = performance.now()
    await this.host.publish({ type: 'model-offer', v: 1, term, round, leader: this.peerId, modelHash: hash })
    const until = Date.now() + REPLICATION_TIMEOUT_MS
    while (this.leads(term) && Date.now() < until) {
      const missing = this.liveMembers().filter(h => h.peer !== this.peerId && h.holds !== hash && h.round < round)
      if (missing.length === 0) break
      await this.changed(until - Date.now())
    }
    return performance.now() - started
  }

  /** A worker fetches the offered model at once and says so in a heartbeat. */
  private onModelOffer (offer: ModelOffer): void {
    if (this.holds === offer.modelHash) return
    this.host.fetchBlob(offer.modelHash, [offer.leader, ...this.liveMembers().map(m => m.peer)], BLOB_TIMEOUT_MS).then(bytes => {
      this.host.blobs.put(bytes, true)
      if (this.holds !== null && this.holds !== this.global?.hash) this.host.blobs.unpin(this.holds)
      this.holds = offer.modelHash
      this.host.publish(this.heartbeat()).catch(() => {})
    }).catch(err => {
      this.log.warn('offer-failed', { round: offer.round, error: String(err) }, `could not fetch the offered model of round ${offer.round}: ${(err as Error).message}`)
    })
  }

  private onUpdateReady (update: UpdateReady): void {
    const leading = this.leading
    if (leading === null || !this.leads(leading.term) || update.term !== leading.term || update.round !== leading.start.round) return
    if (!leading.start.assignments.some(a => a.peer === update.peer) || leading.updates.has(update.peer) || leading.fetching.has(update.peer)) return
    leading.fetching.add(update.peer)
    leading.lastAnnounced = Math.max(leading.lastAnnounced, Date.now())
    this.host.fetchBlob(update.hash, [update.peer], BLOB_TIMEOUT_MS).then(bytes => {
      const weights = decodeTensors(bytes)
      assertSameShapes(weights, this.global!.weights)
      leading.lastFetched = Math.max(leading.lastFetched, Date.now())
      leading.updates.set(update.peer, { peer: update.peer, weights, numSamples: update.numSamples, trainMs: update.metrics.trainMs })
    }).catch(err => {
      this.log.warn('update-rejected', { peer: update.peer, round: update.round, error: String(err) }, `update from ${short(update.peer)} rejected: ${(err as Error).message}`)
    }).finally(() => {
      leading.fetching.delete(update.peer)
      this.wake()
    })
  }
}

function roundRecord (done: RoundDone): RoundRecord {
  return { round: done.round, term: done.term, modelHash: done.modelHash, metrics: done.metrics }
}

export function short (peer: string): string {
  return peer.slice(-6)
}
