// A worker thread of TrainingThreads (threads.ts): its own TensorFlow.js backend and models,
// training one part of a peer's round at a time on the data set the peer shares with it.
import { parentPort } from 'node:worker_threads'
import type { LayersModel } from './tf.ts'
import { CANDIDATES, chooseBackend } from './backend.ts'
import { installKernels } from './kernels.ts'
import type { ImageSet } from './data.ts'
import { buildModel, registerModelModule } from './models.ts'
import { trainLocal, TrainingAborted, writeWeights } from './train.ts'
import type { FromThread, ToThread } from './threads.ts'
import * as tf from './tf.ts'

const port = parentPort!
const sets = new Map<number, ImageSet>()
const models = new Map<string, LayersModel>()
const aborts = new Map<number, AbortController>()
// one job at a time, in order: a round's part never waits on another's await
let queue: Promise<void> = Promise.resolve()

function send (message: FromThread): void {
  port.postMessage(message)
}

port.on('message', (message: ToThread) => {
  if (message.type === 'abort') {
    aborts.get(message.job)?.abort(new Error(message.reason))
    return
  }
  if (message.type === 'data') {
    sets.set(message.id, message.set)
    return
  }
  if (message.type === 'train') aborts.set(message.job, new AbortController())
  queue = queue.then(async () => { await handle(message) })
})

async function handle (message: ToThread): Promise<void> {
  if (message.type === 'init') {
    try {
      const candidate = CANDIDATES[message.backend]
      if (candidate === undefined) throw new Error(`unknown backend ${message.backend}`)
      const choice = await chooseBackend('cpu', [candidate])
      installKernels(choice.backend)
      await tf.ready()
      for (const path of message.modelModules) await registerModelModule(path)
      send({ type: 'ready' })
    } catch (err) {
      send({ type: 'init-failed', error: String((err as Error).message ?? err) })
    }
    return
  }
  if (message.type !== 'train') return
  const { job } = message
  const abort = aborts.get(job)!
  try {
    const set = sets.get(message.data)
    if (set === undefined) throw new Error(`no data set ${message.data}`)
    const key = `${message.model} ${JSON.stringify(message.spec)}`
    let model = models.get(key)
    if (model === undefined) {
      model = buildModel(message.model, message.spec)
      models.set(key, model)
    }
    writeWeights(model, message.weights)
    const result = await trainLocal(model, set, message.shard, {
      ...message.options,
      signal: abort.signal,
      onProgress: (done, total, loss) => { send({ type: 'progress', job, done, total, loss }) }
    })
    // copied, not transferred: on the cpu backend a tensor's data may be the very array read out
    send({ type: 'done', job, result })
  } catch (err) {
    send({ type: 'failed', job, error: String((err as Error).message ?? err), aborted: err instanceof TrainingAborted })
  } finally {
    aborts.delete(job)
  }
}
