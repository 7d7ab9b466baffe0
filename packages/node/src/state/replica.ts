// Replica: this peer's copy of the global model, the history of finished rounds, and the
// checkpoints on disk. A model counts as a finished round only with its round certificate: the
// signatures of a quorum of the round's checkers (a few of its participants), on the result of a
// leader with a term certificate. The certificate is kept with the model (and on disk), so this
// peer can prove its rounds to others. Every peer has one; the coordinator commits its rounds
// through it too.
import { assertSameShapes, contentHash, decodeRoundCert, decodeTensors, encodeTensors, type NamedTensor, type RoundDone, type RoundMetrics, type Task } from '@dml/protocol'
import type { Checkpoint, RoundRecord } from './checkpoint.ts'
import type { Supervisor } from '../clock.ts'
import { count, type Logger } from '../log.ts'
import type { Network } from '../net/network.ts'
import type { ProvenRound, Proofs } from '../proof/proofs.ts'
import { ProvenPeers } from '../proof/proven.ts'
import type { Counts } from './counts.ts'

export interface GlobalModel {
  round: number
  hash: string
  weights: NamedTensor[]
}

/** The certificate of the round a peer holds, and of its term: what proves the round to others. */
export interface HeldCert {
  hash: string
  bytes: Uint8Array
  termBytes: Uint8Array
}

/** Where checkpoints go: files in --data-dir (checkpoint.ts), or memory in unit tests. */
export interface CheckpointStore {
  save: (checkpoint: Checkpoint) => Promise<void>
}

export interface ReplicaDeps {
  net: Network
  store: CheckpointStore
  proofs: Proofs
  log: Logger
  supervisor: Supervisor
  /** aborts when the peer stops: ends fetches that no round owns */
  signal: AbortSignal
  counts: Counts
  now: () => number
  transferTimeoutMs: number
  /** the size of a model blob of this task: the most a model transfer may bring */
  modelBytes: number
  /** the term and task recorded with a checkpoint */
  term: () => number
  task: () => Task
  /** whether training is over after `round` with a certified `accuracy` (this peer's own options decide) */
  finishedAfter: (round: number, accuracy: number) => boolean
  /** a certificate `claimant` named does not prove its round here: forged, or too few of its signers count here */
  rejected: (claimant: string, err: Error) => void
}

export class Replica {
  global: GlobalModel | null = null
  history: RoundRecord[] = []
  finished = false
  /** when this peer took up the model it holds (its clock) */
  installedAt = -Infinity
  cert: HeldCert | null = null
  /** the peers whose updates counted in the certified rounds this replica holds, lately */
  readonly proven = new ProvenPeers()
  private readonly deps: ReplicaDeps
  private readonly adopting = new Set<string>()
  /** a model this peer computed while checking a proposal, kept (and served) until a round is committed */
  private held: string | null = null
  /** the last model fetched to train from, which may not be a finished round we hold */
  private fetched: GlobalModel | null = null
  private readonly finishedListeners: Array<() => void> = []

  constructor (deps: ReplicaDeps) { this.deps = deps }

  get round (): number { return this.global?.round ?? 0 }

  /** Takes up a checkpoint loaded at start. */
  restore (checkpoint: Checkpoint): void {
    this.global = { round: checkpoint.round, hash: checkpoint.modelHash, weights: decodeTensors(checkpoint.model) }
    this.installedAt = this.deps.now()
    this.deps.net.blobs.put(checkpoint.model, true)
    this.history = checkpoint.history
    this.proven.restore(checkpoint.proven ?? [])
    if (checkpoint.roundCert !== null && checkpoint.termCert !== null) {
      this.keepCert(checkpoint.roundCert, checkpoint.termCert)
      // the certificate was checked when its round was adopted, and its file is checksummed
      try {
        const cert = decodeRoundCert(checkpoint.roundCert)
        this.proven.sawRound({ result: cert.parsed, signers: cert.votes.map(v => v.peer) })
      } catch {
        // an older encoding: nobody is proven until the next certified round, so everyone counts
      }
    }
  }

  /** Starts from fresh weights (round 0, nothing to prove or checkpoint yet); returns their blob. */
  initialise (weights: NamedTensor[]): Uint8Array {
    const bytes = encodeTensors(weights)
    this.global = { round: 0, hash: this.deps.net.blobs.put(bytes, true), weights }
    return bytes
  }

  /** The weights of model `hash`: ours, or the last fetched, or fetched now from `from` and checked. */
  async weights (hash: string, from: string[], signal: AbortSignal): Promise<NamedTensor[]> {
    if (this.global?.hash === hash) return this.global.weights
    if (this.fetched?.hash === hash) return this.fetched.weights
    const bytes = await this.deps.net.fetchBlob(hash, from, { signal, timeoutMs: this.deps.transferTimeoutMs, maxBytes: this.deps.modelBytes })
    const weights = decodeTensors(bytes)
    if (this.global !== null) assertSameShapes(weights, this.global.weights)
    this.fetched = { round: -1, hash, weights }
    return weights
  }

  /** Keeps (and serves) a model this peer computed itself, until a round is committed. */
  hold (bytes: Uint8Array): void {
    const hash = this.deps.net.blobs.put(bytes, true)
    if (this.held !== null && this.held !== hash && this.held !== this.global?.hash) this.deps.net.blobs.unpin(this.held)
    this.held = hash
  }

  /** A RoundDone of our leader: adopt its model once its certificate checks out. */
  announce (done: RoundDone, from: string[]): void {
    this.adopt(done.certHash, from, done.leader, done.metrics)
  }

  /**
   * A newer round than ours, with its certificate: catch up. `claimant`: the peer that showed it
   * (a proven leader's heartbeat), told of if the certificate proves nothing; none for one this
   * peer made itself.
   */
  catchUp (certHash: string, from: string[], claimant?: string): void {
    this.adopt(certHash, from, claimant)
  }

  private adopt (certHash: string, from: string[], claimant?: string, metrics?: RoundMetrics): void {
    if (this.cert?.hash === certHash || this.adopting.has(certHash)) return
    this.adopting.add(certHash)
    this.deps.supervisor.run(`adopt the round of certificate ${certHash.slice(0, 12)}`, async () => {
      try {
        let proven: ProvenRound
        try {
          proven = await this.deps.proofs.round(certHash, from)
        } catch (err) {
          const name = (err as Error).name
          if (name !== 'CertificateError' && name !== 'MessageError') throw err
          this.deps.counts.add('certificatesRejected')
          if (claimant === undefined) throw err
          this.deps.rejected(claimant, err as Error)
          return
        }
        const { result } = proven
        if (result.round <= this.round) return
        const bytes = this.deps.net.blobs.get(result.modelHash) ?? await this.deps.net.fetchBlob(result.modelHash, from, { signal: this.deps.signal, timeoutMs: this.deps.transferTimeoutMs, maxBytes: this.deps.modelBytes })
        if (contentHash(bytes) !== result.modelHash) throw new Error('the model does not match its certificate')
        const weights = decodeTensors(bytes)
        if (this.global !== null) assertSameShapes(weights, this.global.weights)
        if (result.round <= this.round) return
        // said before the commit: a commit that finishes training may end the process (--exit-when-done)
        this.deps.log.info('model-adopted', { round: result.round, modelHash: result.modelHash, accuracy: proven.evaluation.accuracy, signers: proven.signers.length },
          `round ${result.round} done: accuracy ${(100 * proven.evaluation.accuracy).toFixed(2)}%, loss ${proven.evaluation.loss.toFixed(4)}, signed by ${proven.signers.length} of its ${count(proven.checkers.length, 'checker')}`)
        await this.commit({ round: result.round, hash: result.modelHash, weights }, bytes, proven, recordOf(proven, metrics), [...result.contributions.map(c => c.peer), ...proven.signers])
      } finally {
        this.adopting.delete(certHash)
      }
    })
  }

  /** Installs a proven round's model, with its certificate (which names its `members`: contributors and signers), and checkpoints it. */
  async commit (model: GlobalModel, bytes: Uint8Array, proof: { certBytes: Uint8Array, termCertBytes: Uint8Array }, record: RoundRecord, members: string[]): Promise<void> {
    const previous = this.global?.hash
    this.global = model
    this.installedAt = this.deps.now()
    this.fetched = null
    this.deps.net.blobs.put(bytes, true)
    if (previous !== undefined && previous !== model.hash) this.deps.net.blobs.unpin(previous)
    if (this.held !== null && this.held !== model.hash) this.deps.net.blobs.unpin(this.held)
    this.held = null
    this.keepCert(proof.certBytes, proof.termCertBytes)
    this.proven.saw(model.round, members)
    this.history.push(record)
    await this.checkpoint()
    if (this.deps.finishedAfter(model.round, record.metrics.accuracy)) this.finish()
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

  private keepCert (bytes: Uint8Array, termBytes: Uint8Array): void {
    const hash = this.deps.net.blobs.put(bytes, true)
    const termHash = this.deps.net.blobs.put(termBytes, true)
    if (this.cert !== null && this.cert.hash !== hash) {
      this.deps.net.blobs.unpin(this.cert.hash)
      const oldTerm = contentHash(this.cert.termBytes)
      if (oldTerm !== termHash) this.deps.net.blobs.unpin(oldTerm)
    }
    this.cert = { hash, bytes, termBytes }
  }

  /** A checkpoint that cannot be written is said and counted; the round stays committed in memory. */
  private async checkpoint (): Promise<void> {
    const model = this.global!
    try {
      await this.deps.store.save({
        round: model.round, term: this.deps.term(), modelHash: model.hash, model: this.deps.net.blobs.get(model.hash)!,
        task: this.deps.task(), history: this.history, roundCert: this.cert?.bytes ?? null, termCert: this.cert?.termBytes ?? null, proven: this.proven.entries()
      })
    } catch (err) {
      this.deps.counts.add('checkpointErrors')
      this.deps.log.warn('checkpoint-failed', { round: model.round, error: (err as Error).message }, `could not write the checkpoint of round ${model.round}: ${(err as Error).message}`)
    }
  }
}

/** The history record of a proven round: the leader's account if we have it, with the certified accuracy and loss. */
function recordOf (proven: ProvenRound, metrics: RoundMetrics | undefined): RoundRecord {
  const { result } = proven
  const base: RoundMetrics = metrics ?? {
    accuracy: 0, loss: 0, federatedAccuracy: 0, federatedLoss: 0, evaluatedSamples: 0, participants: result.contributions.map(c => c.peer), activeNodes: 0, gpuNodes: 0, cpuNodes: 0,
    durationMs: 0, trainMs: 0, transferMs: 0, aggregateMs: 0, evalMs: 0, idleMs: 0, finishedAt: 0
  }
  return { round: result.round, term: result.term, modelHash: result.modelHash, certHash: contentHash(proven.certBytes), metrics: { ...base, ...proven.evaluation } }
}
