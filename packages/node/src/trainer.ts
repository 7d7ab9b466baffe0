// The peer's local trainer: the data set, the current task's model, and this peer's shard.
// The round engine sees it through the Trainer interface, so unit tests can give it a fake.
import { buildModel, evaluate, loadDataset, readWeights, parsePartition, partitionIndices, trainLocal, writeWeights, type Dataset, type Evaluation, type TrainResult, tf } from '@dml/trainer'
import type { NamedTensor, Task } from '@dml/protocol'

export interface TrainJob {
  task: Task
  /** the global model to start from */
  weights: NamedTensor[]
  shard: [number, number]
  samples: number
  seed: number
  onProgress: (done: number, total: number, loss: number) => void
  /** the round's signal: training stops (TrainingAborted) once it aborts */
  signal: AbortSignal
}

/** What the round engine needs of local training. */
export interface Trainer {
  /** examples in the training set this peer holds */
  readonly trainSize: number
  initialWeights: (task: Task) => Promise<NamedTensor[]>
  train: (job: TrainJob) => Promise<TrainResult>
  evaluate: (task: Task, weights: NamedTensor[], signal?: AbortSignal) => Promise<Evaluation>
}

export class LocalTrainer implements Trainer {
  private dataset: Dataset | undefined
  private model: tf.LayersModel | undefined
  private modelName = ''
  private shard: { key: string, indices: Uint32Array } | undefined

  async load (datasetSpec: string): Promise<Dataset> {
    if (this.dataset?.name !== datasetSpec) this.dataset = await loadDataset(datasetSpec)
    return this.dataset
  }

  get trainSize (): number { return this.dataset?.train.count ?? 0 }

  private async modelFor (task: Task): Promise<tf.LayersModel> {
    const dataset = await this.load(task.dataset)
    if (this.model === undefined || this.modelName !== task.model) {
      this.model?.dispose()
      this.model = buildModel(task.model, { inputShape: dataset.train.exampleShape, numClasses: dataset.train.numClasses })
      this.modelName = task.model
    }
    return this.model
  }

  /** Fresh weights of the task's model, for round 0. */
  async initialWeights (task: Task): Promise<NamedTensor[]> {
    const dataset = await this.load(task.dataset)
    const model = buildModel(task.model, { inputShape: dataset.train.exampleShape, numClasses: dataset.train.numClasses })
    const weights = readWeights(model)
    model.dispose()
    return weights
  }

  async train ({ task, weights, shard, samples, seed, onProgress, signal }: TrainJob): Promise<TrainResult> {
    const model = await this.modelFor(task)
    const dataset = this.dataset!
    const key = `${shard[0]}/${shard[1]} ${task.partition}`
    if (this.shard?.key !== key) this.shard = { key, indices: partitionIndices(dataset.train.labels, dataset.train.numClasses, shard[0], shard[1], parsePartition(task.partition)) }
    if (this.shard.indices.length === 0) throw new Error(`partition ${task.partition} gives shard ${key} no examples`)
    writeWeights(model, weights)
    return await trainLocal(model, dataset.train, this.shard.indices, { samples, batchSize: task.batchSize, lr: task.lr, seed, onProgress, signal })
  }

  async evaluate (task: Task, weights: NamedTensor[], signal?: AbortSignal): Promise<Evaluation> {
    const model = await this.modelFor(task)
    writeWeights(model, weights)
    return await evaluate(model, this.dataset!.test, task.evalSamples, signal)
  }
}
