// Worker: trains what a RoundStart assigns this peer and reports the result to the round's
// leader: an update, or the reason it could not do the work. One job at a time (the model is
// shared); a newer round, a new leader or stop() aborts the current job through its signal,
// which reaches the transfer of the start model and every training batch.
import { encodeUpdate, findNonFinite, OWN_DATA, PROTOCOL_VERSION, trainingDifference, type Assignment, type Compression, type NamedTensor, type RoundStart, type Task, type Unstamped, type UpdateReady, type WorkFailed } from '@dml/protocol'
import { modelPart } from '@dml/trainer/server-optimizer'
import { AbortError, isAbort } from '../clock.ts'
import type { Logger } from '../log.ts'
import type { Network } from '../net/network.ts'
import type { Replica } from '../state/replica.ts'
import type { Trainer } from './trainer.ts'

export interface WorkPhase {
  round: number
  state: 'fetching model' | 'training' | 'sent'
  done: number
  total: number
}

export interface WorkerDeps {
  self: string
  net: Network
  trainer: Trainer
  replica: Replica
  log: Logger
  now: () => number
  /** --compression: how updates are sent (none: whole float32 weights) */
  compression: Compression
  /** --shard: train this slice instead of the assigned one */
  shard: [number, number] | null
  /** this peer's own task: it trains only that, whatever a leader asks */
  task: () => Task
  /** peers to ask for a start model after the leader */
  sources: () => string[]
  /** the threads to train a round on (undefined: all the trainer has) */
  threads?: () => number | undefined
  /** hands our update-ready or work-failed to the round's leader */
  report: (message: Unstamped<UpdateReady> | Unstamped<WorkFailed>) => Promise<void>
}

interface Job {
  start: Unstamped<RoundStart>
  controller: AbortController
  done: Promise<void>
}

export class Worker {
  /** samples per second in the last local training (0 before the first) */
  speed = 0
  phase: WorkPhase | null = null
  private readonly deps: WorkerDeps
  private job: Job | null = null
  /** with compression: what rounding has left out of the updates sent so far, owed to the next */
  private residual: NamedTensor[] | null = null
  /** the start of the last job that sent its update or failure: one abandoned after that lost nothing */
  private reported: Unstamped<RoundStart> | null = null
  /** the start of work abandoned before it reported, while its leader seemed gone (see resumable) */
  private dropped: Unstamped<RoundStart> | null = null

  constructor (deps: WorkerDeps) { this.deps = deps }

  /** A new round started: abandon older work, and do ours if the round assigns us any. */
  start (start: Unstamped<RoundStart>): void {
    this.dropped = null
    const previous = this.job
    previous?.controller.abort(new AbortError(`round ${start.round} of term ${start.term} superseded it`))
    const assignment = start.assignments.find(a => a.peer === this.deps.self)
    if (assignment === undefined) {
      this.job = null
      return
    }
    const controller = new AbortController()
    const done = (async () => {
      await previous?.done // one training at a time
      await this.work(start, assignment, controller.signal)
    })()
    this.job = { start, controller, done }
  }

  /** Stops the current job (the leader changed or gave up). */
  abandon (reason: string): void {
    const job = this.job
    if (job !== null && !job.controller.signal.aborted && this.reported !== job.start) this.dropped = job.start
    job?.controller.abort(new AbortError(reason))
  }

  /**
   * The round start of work abandoned unreported, if `leader` led it in `term`: a peer that took
   * its leader for lost (silent for a lease under load, say) and follows it again in the same term
   * takes the round up again, which the leader still waits for. Given once.
   */
  resumable (leader: string, term: number): Unstamped<RoundStart> | undefined {
    const dropped = this.dropped
    if (dropped === null || dropped.leader !== leader || dropped.term !== term) return undefined
    this.dropped = null
    return dropped
  }

  async stop (): Promise<void> {
    this.abandon('the peer is stopping')
    await this.job?.done
  }

  /** Never throws: every outcome is reported or logged. */
  private async work (start: Unstamped<RoundStart>, assignment: Assignment, signal: AbortSignal): Promise<void> {
    const { log, net, trainer, replica, self } = this.deps
    const round = start.round
    try {
      if (signal.aborted) return
      const task = this.deps.task()
      const difference = trainingDifference(task, start.task)
      if (difference !== undefined) throw new Error(`the leader asks for ${difference.field} ${String(difference.theirs)}; this peer trains with ${String(difference.ours)} (start every peer with the same options)`)
      this.phase = { round, state: 'fetching model', done: 0, total: assignment.samples }
      const weights = await replica.weights(start.modelHash, [start.leader, ...this.deps.sources()], signal)
      const shard = this.deps.shard ?? assignment.shard
      this.phase = { round, state: 'training', done: 0, total: assignment.samples }
      const of = task.dataset === OWN_DATA ? 'its own examples' : `shard ${shard[0]}/${shard[1]}`
      log.info('train-start', { round, samples: assignment.samples, shard }, `round ${round}: training on ${assignment.samples} samples of ${of}`)
      let lastLog = 0
      const result = await trainer.train({
        task,
        weights,
        shard,
        round,
        samples: assignment.samples,
        seed: round * 1000 + shard[0],
        signal,
        threads: this.deps.threads?.(),
        onProgress: (done, total, loss) => {
          this.phase = { round, state: 'training', done, total }
          if (this.deps.now() - lastLog < 2000) return
          lastLog = this.deps.now()
          log.info('train-progress', { round, done, total, loss }, `round ${round}: ${Math.round(100 * done / total)}% of local epoch work, loss ${loss.toFixed(4)}`)
        }
      })
      if (signal.aborted) return
      // an honest peer whose training diverged says so rather than send it (the leader checks too)
      const bad = findNonFinite(result.weights)
      if (!Number.isFinite(result.loss) || bad !== undefined) {
        throw new Error(`training diverged: loss ${result.loss}${bad === undefined ? '' : `, ${bad.tensor}[${bad.index}] = ${bad.value}`}; try a smaller --lr`)
      }
      this.speed = result.numSamples / Math.max(result.trainMs / 1000, 1e-3)
      const update = this.encode(result.weights, modelPart(weights), start.modelHash)
      const hash = net.blobs.put(update)
      log.info('train-done', { round, loss: result.loss, trainMs: result.trainMs, samplesPerSec: this.speed, updateBytes: update.byteLength },
        `round ${round}: trained in ${(result.trainMs / 1000).toFixed(1)} s (${Math.round(this.speed)} samples/s), loss ${result.loss.toFixed(4)}`)
      this.phase = { round, state: 'sent', done: assignment.samples, total: assignment.samples }
      await this.send({
        type: 'update-ready', v: PROTOCOL_VERSION, term: start.term, round, peer: self, hash, numSamples: result.numSamples,
        metrics: { loss: result.loss, trainMs: result.trainMs, samplesPerSec: this.speed }
      })
    } catch (err) {
      this.phase = null
      if (signal.aborted || isAbort(err)) {
        log.info('train-aborted', { round, term: start.term, reason: (err as Error).message }, `round ${round} (term ${start.term}): local work abandoned: ${(err as Error).message}`)
        return
      }
      const reason = (err as Error).message.split('\n')[0].slice(0, 500) || String(err)
      log.warn('train-error', { round, error: reason }, `round ${round}: local work failed: ${reason}`)
      await this.send({ type: 'work-failed', v: PROTOCOL_VERSION, term: start.term, round, peer: self, reason })
    }
  }

  private encode (weights: NamedTensor[], base: NamedTensor[], baseHash: string): Uint8Array {
    const { compression } = this.deps
    if (compression === 'none') return encodeUpdate(weights, base, baseHash, compression)
    const fits = this.residual?.length === weights.length && this.residual.every((r, i) => r.values.length === weights[i].values.length)
    if (!fits) this.residual = weights.map(w => ({ name: w.name, shape: w.shape, values: new Float32Array(w.values.length) }))
    return encodeUpdate(weights, base, baseHash, compression, this.residual!)
  }

  private async send (message: Unstamped<UpdateReady> | Unstamped<WorkFailed>): Promise<void> {
    if (this.job?.start.term === message.term && this.job.start.round === message.round) this.reported = this.job.start
    try {
      await this.deps.report(message)
    } catch (err) {
      this.deps.log.warn('report-failed', { round: message.round, type: message.type, error: (err as Error).message },
        `round ${message.round}: could not send ${message.type} to the leader: ${(err as Error).message}`)
    }
  }
}
