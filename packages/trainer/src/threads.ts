// Local training on every core. TensorFlow.js's wasm backend runs one thread under Node, so a
// peer on an N-core machine would use one core. Here the peer's work of a round is split between
// N worker threads (training-thread.ts), each with its own backend and its own copy of the model:
// every part starts from the round's model, trains on the round's batches it takes as it goes
// (a faster part takes more), and the parts average their weights every few batches through
// shared memory (replica-sync.ts), weighted by the batches each trained, so that they move the
// model as far as one thread would.
// This thread trains nothing meanwhile, so heartbeats and transfers keep their time. The data
// set is shared with the threads once, not copied per round.
import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import type { NamedTensor } from '@dml/protocol'
import { weightedMean } from './aggregation.ts'
import type { ImageSet } from './data.ts'
import type { ModelSpec } from './models.ts'
import { abortReplicaSync, replicaSyncMemory } from './replica-sync.ts'
import { readWeights, trainingOrder, trainLocal, TrainingAborted, writeWeights, type TrainOptions, type TrainResult } from './train.ts'
import type { LayersModel } from './tf.ts'

/** What a training thread is told. */
export type ToThread =
  | { type: 'init', backend: string, modelModules: string[] }
  | { type: 'data', id: number, set: ImageSet }
  | { type: 'train', job: number, model: string, spec: ModelSpec, weights: NamedTensor[], data: number, shard: Uint32Array, options: ThreadTrainOptions }
  | { type: 'abort', job: number, reason: string }

/** What a training thread answers. */
export type FromThread =
  | { type: 'ready' }
  | { type: 'init-failed', error: string }
  | { type: 'progress', job: number, done: number, total: number, loss: number }
  | { type: 'done', job: number, result: TrainResult }
  | { type: 'failed', job: number, error: string, aborted: boolean }

export type ThreadTrainOptions = Omit<TrainOptions, 'onProgress' | 'signal'>

/**
 * The threads a peer trains with by default: one per core on every CPU backend (tfjs-node's own
 * operations run on one thread each, see backend.ts); one on a GPU, which is a single device.
 */
export function defaultThreads (device: 'gpu' | 'cpu', cores = availableParallelism()): number {
  return device === 'cpu' ? Math.max(1, cores) : 1
}

interface Job {
  resolve: (result: TrainResult) => void
  reject: (err: Error) => void
  onProgress: (done: number, total: number, loss: number) => void
}

/** One worker thread and what it has been given. */
class TrainingThread {
  readonly worker: Worker
  readonly ready: Promise<void>
  private readonly jobs = new Map<number, Job>()
  private readonly sets = new WeakMap<ImageSet, number>()
  private nextJob = 1
  private nextSet = 1
  dead: Error | undefined

  constructor (backend: string, modelModules: string[]) {
    const here = import.meta.url
    // beside this file: training-thread.ts in a checkout, training-thread.js in the built package
    this.worker = new Worker(new URL(here.endsWith('.ts') ? './training-thread.ts' : './training-thread.js', here))
    this.worker.unref()
    this.ready = new Promise((resolve, reject) => {
      const onMessage = (message: FromThread): void => {
        if (message.type === 'ready') resolve()
        else if (message.type === 'init-failed') reject(new Error(`a training thread could not start: ${message.error}`))
        else this.answer(message)
      }
      this.worker.on('message', onMessage)
      this.worker.on('error', (err) => { this.fail(err); reject(err) })
      this.worker.on('exit', (code) => { const err = new Error(`a training thread exited (code ${code})`); this.fail(err); reject(err) })
    })
    this.ready.catch(() => {}) // the caller awaits it; a thread that dies later fails its jobs instead
    this.post({ type: 'init', backend, modelModules })
  }

  private post (message: ToThread): void {
    this.worker.postMessage(message)
  }

  private answer (message: FromThread): void {
    if (message.type === 'ready' || message.type === 'init-failed') return
    const job = this.jobs.get(message.job)
    if (job === undefined) return
    if (message.type === 'progress') {
      job.onProgress(message.done, message.total, message.loss)
      return
    }
    this.jobs.delete(message.job)
    if (message.type === 'done') job.resolve(message.result)
    else job.reject(message.aborted ? new TrainingAborted(message.error) : new Error(`a training thread failed: ${message.error}`))
  }

  private fail (err: Error): void {
    this.dead ??= err
    for (const job of this.jobs.values()) job.reject(err)
    this.jobs.clear()
  }

  /** The data set, sent once: its arrays must live in shared memory (shareImageSet). */
  private dataId (set: ImageSet): number {
    let id = this.sets.get(set)
    if (id === undefined) {
      id = this.nextSet++
      this.sets.set(set, id)
      this.post({ type: 'data', id, set })
    }
    return id
  }

  async train (model: string, spec: ModelSpec, weights: NamedTensor[], set: ImageSet, shard: Uint32Array, options: TrainOptions): Promise<TrainResult> {
    await this.ready
    if (this.dead !== undefined) throw this.dead
    const job = this.nextJob++
    const { onProgress, signal, ...plain } = options
    const result = new Promise<TrainResult>((resolve, reject) => {
      this.jobs.set(job, { resolve, reject, onProgress: onProgress ?? (() => {}) })
    })
    const abort = (): void => { this.post({ type: 'abort', job, reason: String((signal?.reason as Error)?.message ?? signal?.reason) }) }
    signal?.addEventListener('abort', abort, { once: true })
    this.post({ type: 'train', job, model, spec, weights, data: this.dataId(set), shard, options: plain })
    try {
      return await result
    } finally {
      signal?.removeEventListener('abort', abort)
    }
  }

  async close (): Promise<void> {
    await this.worker.terminate()
  }
}

const shared = new WeakMap<ImageSet, ImageSet>()

/** The same data set with its arrays in shared memory, made once per set: threads read it in place. */
export function shareImageSet (set: ImageSet): ImageSet {
  if (set.images.buffer instanceof SharedArrayBuffer) return set
  let copy = shared.get(set)
  if (copy === undefined) {
    const images = set.images instanceof Float32Array
      ? new Float32Array(new SharedArrayBuffer(set.images.byteLength))
      : new Uint8Array(new SharedArrayBuffer(set.images.byteLength))
    images.set(set.images)
    const labels = new Uint8Array(new SharedArrayBuffer(set.labels.byteLength))
    labels.set(set.labels)
    copy = { ...set, images, labels }
    shared.set(set, copy)
  }
  return copy
}

/**
 * A peer's training threads: `threads` in all, this one included. With one, training is
 * trainLocal on this thread, as it always was.
 */
export class TrainingThreads {
  readonly threads: number
  private readonly workers: TrainingThread[] = []
  private readonly backend: string
  private readonly modelModules: string[]
  /** why the worker threads could not start: training stays on this thread */
  private broken: Error | undefined

  private readonly onFallBack: (err: Error) => void

  /**
   * `backend`: the key of the backend candidate the threads load (CANDIDATES), the one this peer
   * chose. `onFallBack` hears why, if the worker threads cannot start and this thread trains alone.
   */
  constructor (threads: number, backend: string, modelModules: string[] = [], onFallBack: (err: Error) => void = () => {}) {
    if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`threads must be a whole number from 1, got ${threads}`)
    this.threads = threads
    this.backend = backend
    this.modelModules = modelModules
    this.onFallBack = onFallBack
  }

  /** The threads that train now: all asked for, or 1 once they could not start. */
  get active (): number { return this.broken === undefined ? this.threads : 1 }

  private async fallBack (err: Error): Promise<void> {
    this.broken = err
    this.onFallBack(err)
    await this.close()
  }

  /** Starts the worker threads now (they load TensorFlow.js and their backend), rather than at the first round. False: one thread (asked for, or they could not start). */
  async start (): Promise<boolean> {
    if (this.threads === 1 || this.broken !== undefined) return false
    try {
      await Promise.all(this.pool(this.threads).map(async w => await w.ready))
      return true
    } catch (err) {
      await this.fallBack(err as Error)
      return false
    }
  }

  /** Workers, live ones reused and dead ones replaced. */
  private pool (count: number): TrainingThread[] {
    for (let i = 0; i < count; i++) {
      if (this.workers[i] === undefined || this.workers[i].dead !== undefined) {
        // a dead thread's end: terminating it again has nothing to report
        this.workers[i]?.close().catch(() => {})
        this.workers[i] = new TrainingThread(this.backend, this.modelModules)
      }
    }
    return this.workers.slice(0, count)
  }

  /**
   * Trains `model` (holding the round's weights) on `options.samples` examples of `shard`, split
   * between the worker threads, each on its own model built by `name` and `spec`. `model` ends up
   * holding the average, and the result is the average's. With one thread, trainLocal on `model`.
   * `threads`: at most this many this time (a peer that shares its machine's cores, see defaultThreads).
   */
  async train (model: LayersModel, name: string, spec: ModelSpec, set: ImageSet, shard: Uint32Array, options: TrainOptions, threads = this.threads): Promise<TrainResult> {
    const batches = Math.floor(options.samples / options.batchSize)
    const parts = this.broken !== undefined ? 1 : Math.max(1, Math.min(this.threads, threads, batches, shard.length))
    if (parts === 1) return await trainLocal(model, set, shard, options)
    const started = performance.now()
    const start = readWeights(model)
    const sharedSet = shareImageSet(set)
    // The round's batches in one order, in shared memory: each part takes the next batch none has
    // taken, so a part on a slower core (or one slowed by its neighbour) trains fewer of them and
    // none waits for another. An even split waited for the slowest part: on a machine whose two
    // cores differ by up to a third, two threads got 0.75-0.95 of what the cores gave on the mlp.
    const order = trainingOrder(shard, options.samples, options.batchSize, options.seed)
    const sharedOrder = new Uint32Array(new SharedArrayBuffer(order.byteLength))
    sharedOrder.set(order)
    const claim = new Int32Array(new SharedArrayBuffer(4))
    const progress = Array.from({ length: parts }, () => ({ done: 0, loss: 0 }))
    const total = order.length
    const report = (i: number) => (done: number, _total: number, loss: number): void => {
      progress[i] = { done, loss }
      const doneAll = progress.reduce((a, p) => a + p.done, 0)
      options.onProgress?.(doneAll, total, progress.reduce((a, p) => a + p.loss * p.done, 0) / Math.max(1, doneAll))
    }
    // one failed part stops the others: its error is the round's
    const stop = new AbortController()
    const signal = options.signal === undefined ? stop.signal : AbortSignal.any([options.signal, stop.signal])
    // the replicas average every few batches (replica-sync.ts); a stopped round wakes any waiting on the others
    const memory = replicaSyncMemory(parts, model.trainableWeights.reduce((a, w) => a + w.read().size, 0))
    signal.addEventListener('abort', () => { abortReplicaSync(memory) }, { once: true })
    const partOptions = (i: number): TrainOptions => ({ ...options, samples: total, claim, replicas: { memory, part: i }, onProgress: report(i), signal })
    const workers = this.pool(parts)
    try {
      await Promise.all(workers.map(async w => await w.ready))
    } catch (err) {
      // threads that cannot even start will not start next round either: this thread trains alone from now on
      await this.fallBack(err as Error)
      return await trainLocal(model, set, shard, options)
    }
    const results = await Promise.allSettled(workers.map(async (w, i) => await w.train(name, spec, start, sharedSet, sharedOrder, partOptions(i)))
      .map(async p => await p.catch((err: unknown) => { stop.abort(err); throw err })))
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
    if (failed !== undefined) {
      // the first cause, not an abort it caused in the other parts
      const cause = results.find((r): r is PromiseRejectedResult => r.status === 'rejected' && !(r.reason instanceof TrainingAborted)) ?? failed
      throw cause.reason
    }
    // a part that found every batch taken trained nothing, and is no part of the average
    const trained = results.map(r => (r as PromiseFulfilledResult<TrainResult>).value).filter(r => r.numSamples > 0)
    const weights = averageWeights(trained)
    writeWeights(model, weights)
    const numSamples = trained.reduce((a, r) => a + r.numSamples, 0)
    return { weights, loss: trained.reduce((a, r) => a + r.loss * r.numSamples, 0) / numSamples, numSamples, trainMs: performance.now() - started }
  }

  async close (): Promise<void> {
    await Promise.all(this.workers.map(async w => await w.close()))
    this.workers.length = 0
  }
}

/** The mean of the parts' weights, weighted by the examples each trained on: FedAvg's weighted mean, in float64. */
export function averageWeights (parts: Array<Pick<TrainResult, 'weights' | 'numSamples'>>): NamedTensor[] {
  return weightedMean(parts, parts.map(p => p.numSamples), parts[0].weights)
}
