// The replicas of one peer's round (threads.ts) average their weights every few batches, through
// shared memory, instead of only at the end. Averaged only at the end, two replicas trained from
// the round's model on half the batches each moved it less than one replica on all of them (a lone
// peer on 2 cores: 95.4% after the first round of `mlp` where one thread reached 96.2%, and 97% a
// round later). Averaged every 2-64 batches of each replica, they reached 96.2-96.6%: as far as one
// thread, at the speed of two. Each replica keeps its own optimizer state (momentum) across.
//
// The round's batches are claimed from one shared counter (trainLocal's `claim`); a sync point
// falls every `every` x replicas batches of that count. A replica that claims a batch at or past
// the next point first waits at a barrier for the others to get there (each finishes the batch it
// is on, then claims past the point too), then all take the mean of their weights, weighted by the
// batches each trained since the last point, and train on. Past the last batch there is one more
// point, so every replica ends the round holding the same mean.
// A replica that fails or is stopped marks the memory aborted: the others stop waiting.
import * as tf from './tf.ts'
import { TrainingAborted } from './train-aborted.ts'

/** Batches each replica trains between two averages: fewer cost more syncs, more cost accuracy (see above). */
export const SYNC_EVERY = 32

/** How long a replica waits on the barrier before it looks for an abort again (a notify wakes it at once). */
const WAIT_SLICE_MS = 1000

const ARRIVED = 0
const GENERATION = 1
const ABORTED = 2

/** What the replicas of a round share, all in SharedArrayBuffers (posted to the threads, not copied). */
export interface ReplicaSyncMemory {
  replicas: number
  /** weights per replica (all the trained variables, flattened, in order) */
  size: number
  every: number
  /** one slot of `size` per replica */
  slots: Float32Array
  mean: Float32Array
  /** batches each replica trained since the last point */
  trained: Int32Array
  /** arrived at the barrier, the barrier's generation, aborted */
  control: Int32Array
}

export function replicaSyncMemory (replicas: number, size: number, every = SYNC_EVERY): ReplicaSyncMemory {
  const floats = (n: number): Float32Array => new Float32Array(new SharedArrayBuffer(n * 4))
  const ints = (n: number): Int32Array => new Int32Array(new SharedArrayBuffer(n * 4))
  return { replicas, size, every, slots: floats(replicas * size), mean: floats(size), trained: ints(replicas), control: ints(3) }
}

/** Stops every replica waiting on (or later reaching) the barrier. */
export function abortReplicaSync (memory: ReplicaSyncMemory): void {
  Atomics.store(memory.control, ABORTED, 1)
  Atomics.notify(memory.control, GENERATION)
}

/** One replica's side of the sync: its part number, its sync points, what it trained since the last. */
export class ReplicaSync {
  private readonly memory: ReplicaSyncMemory
  private readonly part: number
  private nextPoint: number
  private trainedSince = 0

  constructor (memory: ReplicaSyncMemory, part: number) {
    if (!Number.isInteger(part) || part < 0 || part >= memory.replicas) throw new RangeError(`replica ${part} of ${memory.replicas}`)
    this.memory = memory
    this.part = part
    this.nextPoint = memory.every * memory.replicas
  }

  /** Counts a trained batch. */
  trained (): void {
    this.trainedSince++
  }

  /**
   * Before training `batch` (a claimed batch number; `batchCount` or more: none left): averages at
   * every sync point up to it, and at the end. Blocks this thread meanwhile.
   */
  reach (batch: number, batchCount: number, variables: tf.Variable[]): void {
    while (this.nextPoint <= batch && this.nextPoint < batchCount) {
      this.average(variables)
      this.nextPoint += this.memory.every * this.memory.replicas
    }
    if (batch >= batchCount) this.average(variables)
  }

  /** Marks the round aborted for the others: this replica will not reach the next point. */
  abandon (): void {
    abortReplicaSync(this.memory)
  }

  private average (variables: tf.Variable[]): void {
    const { slots, mean, trained, control, size, replicas } = this.memory
    const generation = Atomics.load(control, GENERATION)
    let offset = this.part * size
    for (const v of variables) {
      const values = v.dataSync() as Float32Array
      slots.set(values, offset)
      offset += values.length
    }
    if (offset !== (this.part + 1) * size) throw new Error(`the replicas' weights have ${size} values, this one ${offset - this.part * size}`)
    trained[this.part] = this.trainedSince
    this.trainedSince = 0
    if (Atomics.add(control, ARRIVED, 1) + 1 === replicas) {
      this.computeMean()
      Atomics.store(control, ARRIVED, 0)
      Atomics.add(control, GENERATION, 1)
      Atomics.notify(control, GENERATION)
    } else {
      while (Atomics.load(control, GENERATION) === generation && Atomics.load(control, ABORTED) === 0) {
        Atomics.wait(control, GENERATION, generation, WAIT_SLICE_MS)
      }
    }
    if (Atomics.load(control, ABORTED) !== 0) throw new TrainingAborted('another training thread of this round stopped')
    offset = 0
    for (const v of variables) {
      const values = mean.subarray(offset, offset + v.size)
      tf.tidy(() => { v.assign(tf.tensor(values, v.shape, 'float32')) })
      offset += v.size
    }
  }

  /** The mean of the slots, weighted by the batches each trained since the last point (equal if none trained any). */
  private computeMean (): void {
    const { slots, mean, trained, size, replicas } = this.memory
    const total = trained.reduce((a, b) => a + b, 0)
    const weights = Array.from(trained, t => total === 0 ? 1 / replicas : t / total)
    for (let i = 0; i < size; i++) {
      let sum = 0
      for (let r = 0; r < replicas; r++) sum += weights[r] * slots[r * size + i]
      mean[i] = sum
    }
  }
}
