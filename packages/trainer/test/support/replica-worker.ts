// One replica for replica-sync.test.ts, in its own thread: a variable filled with `value`, `batches`
// counted as trained, then the sync points up to `reach`; posts what the variable holds, or the error.
import { parentPort, workerData } from 'node:worker_threads'
import { ReplicaSync, tf, type ReplicaSyncMemory } from '@dml/trainer'

const { memory, part, value, batches, reach, batchCount, abandon } = workerData as {
  memory: ReplicaSyncMemory, part: number, value: number, batches: number, reach: number[], batchCount: number, abandon: boolean
}
tf.env().set('PROD', true) // no banner about tfjs-node: this thread stays on the cpu backend
const variable = tf.variable(tf.tensor(new Float32Array(memory.size).fill(value)))
const sync = new ReplicaSync(memory, part)
try {
  if (abandon) sync.abandon()
  for (let i = 0; i < batches; i++) sync.trained()
  for (const batch of reach) sync.reach(batch, batchCount, [variable])
  parentPort!.postMessage({ values: Array.from(variable.dataSync()) })
} catch (err) {
  parentPort!.postMessage({ error: (err as Error).name, message: (err as Error).message })
}
