// The replicas' averages during a round (replica-sync.ts): the barrier across real threads, the
// weighted mean, the sync points, and that no replica waits for good on one that stopped.
import { expect } from 'chai'
import { Worker } from 'node:worker_threads'
import { abortReplicaSync, initBackend, ReplicaSync, replicaSyncMemory, tf, type ReplicaSyncMemory } from '@dml/trainer'

interface Answer { values?: number[], error?: string, message?: string }

const replica = (memory: ReplicaSyncMemory, part: number, value: number, batches: number, reach: number[], batchCount: number, abandon = false): Promise<Answer> => {
  const worker = new Worker(new URL('./support/replica-worker.ts', import.meta.url), { workerData: { memory, part, value, batches, reach, batchCount, abandon } })
  return new Promise((resolve, reject) => {
    worker.once('message', (answer: Answer) => { resolve(answer); void worker.terminate() })
    worker.once('error', reject)
  })
}

describe('replicas averaging during a round', function () {
  this.timeout(30_000)
  before(async () => { await initBackend('auto') })

  it('every replica ends holding the mean of all, weighted by the batches each trained since the last point', async () => {
    const memory = replicaSyncMemory(2, 5, 1)
    const [a, b] = await Promise.all([replica(memory, 0, 1, 3, [10], 10), replica(memory, 1, 5, 1, [10], 10)])
    expect(a.values).to.deep.equal([2, 2, 2, 2, 2])
    expect(b.values).to.deep.equal([2, 2, 2, 2, 2])
    // the points 2, 4, 6 and 8 of 10 batches, and the end
    expect(Atomics.load(memory.control, 1)).to.equal(5)
  })

  it('a sync point every `every` batches of each replica, and one past the last batch', () => {
    const memory = replicaSyncMemory(1, 1, 3)
    const sync = new ReplicaSync(memory, 0)
    const variable = tf.variable(tf.tensor([7]))
    const generations: number[] = []
    for (let batch = 0; batch <= 8; batch++) {
      sync.reach(batch, 8, [variable])
      generations.push(Atomics.load(memory.control, 1))
    }
    expect(generations).to.deep.equal([0, 0, 0, 1, 1, 1, 2, 2, 3])
    expect(Array.from(variable.dataSync())).to.deep.equal([7])
    variable.dispose()
  })

  it('a replica waiting for the others stops once the round is aborted', async () => {
    const memory = replicaSyncMemory(2, 3, 1)
    const waiting = replica(memory, 0, 1, 1, [10], 10)
    // it is at the barrier once it has counted itself in
    const deadline = Date.now() + 10_000
    while (Atomics.load(memory.control, 0) === 0) {
      if (Date.now() > deadline) throw new Error('the replica never reached the barrier')
      await new Promise(resolve => setImmediate(resolve))
    }
    abortReplicaSync(memory)
    expect((await waiting).error).to.equal('TrainingAborted')
  })

  it('a replica that fails abandons the round: the others stop instead of waiting for it', async () => {
    const memory = replicaSyncMemory(2, 3, 1)
    const [a, b] = await Promise.all([replica(memory, 0, 1, 1, [10], 10), replica(memory, 1, 5, 0, [], 10, true)])
    expect(a.error).to.equal('TrainingAborted')
    expect(b.values).to.deep.equal([5, 5, 5])
  })

  it('refuses a part outside the replicas', () => {
    expect(() => new ReplicaSync(replicaSyncMemory(2, 1), 2)).to.throw(RangeError)
  })
})
