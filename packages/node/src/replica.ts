// Replica: this peer's copy of the global model, the history of finished rounds, and the
// checkpoints on disk. Every peer has one; the coordinator commits its rounds through it too.
// Models come from a RoundDone, an offer before it, or a leader heartbeat that shows we are behind.
import { assertSameShapes, decodeTensors, encodeTensors, type ModelOffer, type NamedTensor, type RoundDone, type Task } from '@dml/protocol'
import type { Checkpoint, RoundRecord } from './checkpoint.ts'
import type { Supervisor } from './clock.ts'
import type { Logger } from './log.ts'
import type { Network } from './network.ts'

export interface GlobalModel {
  round: number
  hash: string
  weights: NamedTensor[]
}

/** Where checkpoints go: files in --data-dir (checkpoint.ts), or memory in unit tests. */
export interface CheckpointStore {
  save: (checkpoint: Checkpoint) => Promise<void>
}

export interface ReplicaDeps {
  net: Network
  store: CheckpointStore
  log: Logger
  supervisor: Supervisor
  /** aborts when the peer stops: ends fetches that no round owns */
  signal: AbortSignal
  transferTimeoutMs: number
  /** the term and task recorded with a checkpoint */
  term: () => number
  task: () => Task
  /** this peer now holds a newly offered model: its heartbeat should say so at once */
  onHolds: () => void
}

export class Replica {
  global: GlobalModel | null = null
  history: RoundRecord[] = []
  finished = false
  /** the newest offered model this peer has fetched (its heartbeats say so) */
  holds: string | null = null
  readonly counters = { checkpointErrors: 0 }
  private readonly deps: ReplicaDeps
  private readonly adopting = new Set<string>()
  /** RoundDone messages by model hash, kept until we hold that model */
  private readonly announced = new Map<string, RoundDone>()
  private readonly finishedListeners: Array<() => void> = []

  constructor (deps: ReplicaDeps) { this.deps = deps }

  get round (): number { return this.global?.round ?? 0 }

  /** Takes up a checkpoint loaded at start. */
  restore (checkpoint: Checkpoint): void {
    this.global = { round: checkpoint.round, hash: checkpoint.modelHash, weights: decodeTensors(checkpoint.model) }
    this.deps.net.blobs.put(checkpoint.model, true)
    this.history = checkpoint.history
  }

  /** Starts from fresh weights (round 0, nothing to checkpoint yet); returns their blob. */
  initialise (weights: NamedTensor[]): Uint8Array {
    const bytes = encodeTensors(weights)
    this.global = { round: 0, hash: this.deps.net.blobs.put(bytes, true), weights }
    return bytes
  }

  /** The weights of model `hash`: ours if we hold it, else fetched from `from` and checked. */
  async weights (hash: string, from: string[], signal: AbortSignal): Promise<NamedTensor[]> {
    if (this.global?.hash === hash) return this.global.weights
    const bytes = await this.deps.net.fetchBlob(hash, from, { signal, timeoutMs: this.deps.transferTimeoutMs })
    const weights = decodeTensors(bytes)
    if (this.global !== null) assertSameShapes(weights, this.global.weights)
    return weights
  }

  /** The leader offers its new model before RoundDone: fetch it now, and say we hold it. */
  offered (offer: ModelOffer, from: string[]): void {
    if (this.holds === offer.modelHash || this.adopting.has(offer.modelHash)) return
    this.adopting.add(offer.modelHash)
    this.deps.supervisor.run(`fetch the offered model of round ${offer.round}`, async () => {
      try {
        const bytes = await this.deps.net.fetchBlob(offer.modelHash, from, { signal: this.deps.signal, timeoutMs: this.deps.transferTimeoutMs })
        this.deps.net.blobs.put(bytes, true)
        if (this.holds !== null && this.holds !== this.global?.hash) this.deps.net.blobs.unpin(this.holds)
        this.holds = offer.modelHash
        this.deps.onHolds()
      } finally {
        this.adopting.delete(offer.modelHash)
      }
    })
  }

  /** A RoundDone from our leader: record it, and adopt its model if we do not hold it yet. */
  announce (done: RoundDone, from: string[]): void {
    this.announced.set(done.modelHash, done)
    if (done.round > this.round) this.catchUp(done.round, done.modelHash, from)
    else this.deps.supervisor.run(`record round ${done.round}`, async () => { await this.recordAnnounced() })
  }

  /** Makes round `round`'s model ours: fetch, check the shapes, commit. */
  catchUp (round: number, hash: string, from: string[]): void {
    if (round <= this.round || this.adopting.has(hash)) return
    this.adopting.add(hash)
    this.deps.supervisor.run(`get the model of round ${round}`, async () => {
      try {
        const bytes = await this.deps.net.fetchBlob(hash, from, { signal: this.deps.signal, timeoutMs: this.deps.transferTimeoutMs })
        if (round <= this.round) return
        const weights = decodeTensors(bytes)
        if (this.global !== null) assertSameShapes(weights, this.global.weights)
        const done = this.announced.get(hash)
        await this.commit({ round, hash, weights }, bytes, done === undefined ? undefined : roundRecord(done))
        this.deps.log.info('model-adopted', { round, modelHash: hash, accuracy: done?.metrics.accuracy },
          done !== undefined
            ? `round ${round} done: accuracy ${(100 * done.metrics.accuracy).toFixed(2)}%, loss ${done.metrics.loss.toFixed(4)}, ${done.metrics.participants.length} peers`
            : `caught up to round ${round}`)
        await this.recordAnnounced()
      } finally {
        this.adopting.delete(hash)
      }
    })
  }

  /** Installs a new global model and checkpoints it. */
  async commit (model: GlobalModel, bytes: Uint8Array, record: RoundRecord | undefined): Promise<void> {
    const previous = this.global?.hash
    this.global = model
    this.deps.net.blobs.put(bytes, true)
    if (previous !== undefined && previous !== model.hash) this.deps.net.blobs.unpin(previous)
    if (record !== undefined) this.history.push(record)
    await this.checkpoint()
  }

  /** Training is over (rounds done or target reached): say so once and release whenFinished(). */
  finish (): void {
    if (this.finished) return
    this.finished = true
    const last = this.history.at(-1)
    this.deps.log.info('training-finished', { round: this.round, accuracy: last?.metrics.accuracy, modelHash: this.global?.hash },
      `training finished at round ${this.round}: accuracy ${(100 * (last?.metrics.accuracy ?? 0)).toFixed(2)}%`)
    for (const listener of this.finishedListeners.splice(0)) listener()
  }

  async whenFinished (): Promise<void> {
    if (this.finished) return
    await new Promise<void>(resolve => this.finishedListeners.push(resolve))
  }

  /** Records the RoundDone of the model we hold, if it came after the model; finishes if it says so. */
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

  /** A checkpoint that cannot be written is said and counted; the round stays committed in memory. */
  private async checkpoint (): Promise<void> {
    const model = this.global!
    try {
      await this.deps.store.save({ round: model.round, term: this.deps.term(), modelHash: model.hash, model: this.deps.net.blobs.get(model.hash)!, task: this.deps.task(), history: this.history })
    } catch (err) {
      this.counters.checkpointErrors++
      this.deps.log.warn('checkpoint-failed', { round: model.round, error: (err as Error).message }, `could not write the checkpoint of round ${model.round}: ${(err as Error).message}`)
    }
  }
}

export function roundRecord (done: RoundDone): RoundRecord {
  return { round: done.round, term: done.term, modelHash: done.modelHash, metrics: done.metrics }
}
