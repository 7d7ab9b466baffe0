// The peer's local trainer: the data set, the current task's model, and this peer's shard.
// The round engine sees it through the Trainer interface, so unit tests can give it a fake. Where
// the data comes from (disk-data.ts in Node, the node's HTTP server in a browser tab) and what
// trains (worker threads in Node, the tab's own thread) are handed to it: the rest is one trainer.
import { buildModel, DataError, evaluate, holdoutSplit, lrOfRound, modelPart, parseLrSchedule, withServerState, type OptimizerName, type ServerOptimizerName, readWeights, parsePartition, partitionIndices, trainLocal, writeWeights, type DataShape, type Evaluation, type ImageSet, type ModelSpec, type TrainOptions, type TrainResult, tf } from '@dml/trainer/browser'
import { parseInputShape, type NamedTensor, type Task } from '@dml/protocol'

export interface TrainJob {
  task: Task
  /** the global model to start from */
  weights: NamedTensor[]
  shard: [number, number]
  /** the round the work is of: it sets the learning rate (--lr-schedule) */
  round: number
  samples: number
  seed: number
  onProgress: (done: number, total: number, loss: number) => void
  /** the round's signal: training stops (TrainingAborted) once it aborts */
  signal: AbortSignal
  /** at most this many threads (undefined: all the trainer has) */
  threads?: number
}

/** What the round engine needs of local training. */
export interface Trainer {
  /** examples this peer trains on (its own data, or the whole shared set) */
  readonly examples: number
  /** examples in part `index` of `count` of the task's shared data set (a partition makes them unequal) */
  partSize?: (task: Task, index: number, count: number) => number
  /** threads that train now (--threads; 1 if the others could not start) */
  readonly threads?: number
  initialWeights: (task: Task) => Promise<NamedTensor[]>
  train: (job: TrainJob) => Promise<TrainResult>
  evaluate: (task: Task, weights: NamedTensor[], signal?: AbortSignal) => Promise<Evaluation>
}

export interface LoadedData {
  /** the examples are the peer's own (--data, or files a tab's user picked): trained whole, whatever shard it is given */
  own: boolean
  train: ImageSet
  /** the examples this peer may train on (its holdout excluded) */
  trainable: Uint32Array
  /** what this peer evaluates on: its holdout, else the shared data set's test set */
  evalSet: ImageSet
  evalExamples: Uint32Array | number
}

/** What `task` asks of every peer's examples: their shape, their classes, their scale. */
export function dataShape (task: Task): DataShape {
  return { input: parseInputShape(task.input) ?? [], classes: task.classes, scale: task.inputScale }
}

/** A peer's own examples, `holdout` of them kept to evaluate on (a node's --data, a tab's picked files); `tooFew` says why when that keeps none. */
export function ownExamples (train: ImageSet, holdout: number, tooFew: (count: number) => string): LoadedData {
  const split = holdoutSplit(train.count, holdout)
  if (split.holdout.length === 0) throw new DataError(tooFew(train.count))
  return { own: true, train, trainable: split.train, evalSet: train, evalExamples: split.holdout }
}

/** Where a peer's examples come from: `key` names what `load` gives for a task (loaded again when it changes). */
export interface DataLoader {
  key: (task: Task) => string
  load: (task: Task) => Promise<LoadedData>
}

/** What trains: TrainingThreads in Node, or ONE_THREAD. */
export interface TrainingPool {
  readonly active: number
  train: (model: tf.LayersModel, name: string, spec: ModelSpec, set: ImageSet, shard: Uint32Array, options: TrainOptions, threads?: number) => Promise<TrainResult>
  start: () => Promise<boolean>
  close: () => Promise<void>
}

/** Training on the calling thread alone. */
export const ONE_THREAD: TrainingPool = {
  active: 1,
  train: async (model, _name, _spec, set, shard, options) => await trainLocal(model, set, shard, options),
  start: async () => false,
  close: async () => {}
}

export class LocalTrainer implements Trainer {
  private readonly source: DataLoader
  private data: (LoadedData & { key: string }) | undefined
  private model: tf.LayersModel | undefined
  private modelKey = ''
  /** parts of the shared set cut so far (this peer's shard, and the parts a leader weighs work by), by index/count and partition */
  private readonly parts = new Map<string, Uint32Array>()

  private readonly pool: TrainingPool

  /** `pool`: how local training is split over threads (default: this one alone). */
  constructor (source: DataLoader, pool: TrainingPool = ONE_THREAD) {
    this.source = source
    this.pool = pool
  }

  get threads (): number { return this.pool.active }

  /** Starts the training threads now rather than at the first round; false if this thread trains alone. */
  async startThreads (): Promise<boolean> { return await this.pool.start() }

  async close (): Promise<void> { await this.pool.close() }

  /** Loads this peer's data for the task, checked against the task's input shape and classes. */
  async load (task: Task): Promise<LoadedData> {
    const key = this.source.key(task)
    if (this.data?.key === key) return this.data
    this.data = { ...await this.source.load(task), key }
    this.parts.clear()
    return this.data
  }

  /** Examples this peer trains on: its own, or (before it knows its shard) the whole shared set. */
  get examples (): number { return this.data?.trainable.length ?? 0 }

  private async modelFor (task: Task): Promise<tf.LayersModel> {
    await this.load(task)
    const key = `${task.model} ${task.input} ${task.classes}`
    if (this.model === undefined || this.modelKey !== key) {
      this.model?.dispose()
      this.model = buildModel(task.model, modelSpec(task))
      this.modelKey = key
    }
    return this.model
  }

  /** Fresh weights of the task's model for round 0, with the server optimizer's zero state. */
  async initialWeights (task: Task): Promise<NamedTensor[]> {
    const model = buildModel(task.model, modelSpec(task))
    const weights = withServerState(readWeights(model), task.strategy.serverOptimizer as ServerOptimizerName)
    model.dispose()
    return weights
  }

  async train ({ task, weights, shard, round, samples, seed, onProgress, signal, threads }: TrainJob): Promise<TrainResult> {
    const model = await this.modelFor(task)
    const data = this.data!
    writeWeights(model, modelPart(weights))
    return await this.pool.train(model, task.model, modelSpec(task), data.train, this.indicesFor(task, shard), {
      samples,
      batchSize: task.batchSize,
      lr: lrOfRound(task.lr, parseLrSchedule(task.lrSchedule), round),
      optimizer: task.optimizer as OptimizerName, // the peer's own task, checked by --optimizer
      proxMu: task.proxMu,
      seed,
      onProgress,
      signal
    }, threads)
  }

  /** Own data: all of it, whatever shard the leader names. A shared set: the shard's part of the partition. */
  private indicesFor (task: Task, shard: [number, number]): Uint32Array {
    if (this.data!.own) return this.data!.trainable
    const indices = this.sharedPart(task, shard[0], shard[1])
    if (indices.length === 0) throw new Error(`partition ${task.partition} gives shard ${shard[0]}/${shard[1]} no examples`)
    return indices
  }

  /** Part `index` of `count` of the shared set under the task's partition, its held-out examples left out. */
  private sharedPart (task: Task, index: number, count: number): Uint32Array {
    const data = this.data!
    const key = `${index}/${count} ${task.partition}`
    let part = this.parts.get(key)
    if (part === undefined) {
      part = partitionIndices(data.train.labels, data.train.numClasses, index, count, parsePartition(task.partition))
      if (data.trainable.length !== data.train.count) {
        const trainable = new Set(data.trainable)
        part = part.filter(i => trainable.has(i))
      }
      // a leader asks for every part of every round's peer count: keep about one set's worth
      if (this.parts.size >= 256) this.parts.clear()
      this.parts.set(key, part)
    }
    return part
  }

  /** What a leader weighs a shared-set peer's work by: the size of its part, as the peer will cut it. */
  partSize (task: Task, index: number, count: number): number {
    if (this.data === undefined || this.data.own) return this.examples / count
    return this.sharedPart(task, index, count).length
  }

  async evaluate (task: Task, weights: NamedTensor[], signal?: AbortSignal): Promise<Evaluation> {
    const model = await this.modelFor(task)
    writeWeights(model, modelPart(weights))
    const { evalSet, evalExamples } = this.data!
    return await evaluate(model, evalSet, evalExamples, signal)
  }
}

export function modelSpec (task: Task): { inputShape: number[], numClasses: number } {
  return { inputShape: parseInputShape(task.input) ?? [], numClasses: task.classes }
}
