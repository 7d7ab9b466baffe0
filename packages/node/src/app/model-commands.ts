// The trained model out of dml: `dml-node export` writes the newest checkpoint's model in
// TensorFlow.js's layers format; `evaluate` and `predict` load such an export, as any user of it
// would, and run it on a data set's test examples.
import { ConfigError } from './errors.ts'
import { relative, resolve } from 'node:path'
import { decodeTensors } from '@dml/protocol'
import { buildModel, evaluate, initBackend, loadDataset, loadModelFiles, loadOwnData, makeBatch, modelPart, registerModelModule, saveModelFiles, tf, writeWeights, type ImageSet } from '@dml/trainer'
import { loadNewestCheckpointUnder, type Checkpoint } from '../state/checkpoint.ts'
import { firstLine, EVALUATE_OPTIONS, EXPORT_OPTIONS, helpText, parseOptions } from './config.ts'
import { modelSpec } from '../round/trainer.ts'

/** What an export says of where it came from (model.json's userDefinedMetadata). */
export interface ExportMetadata {
  dml: { round: number, modelHash: string, model: string, dataset: string, accuracy: number | null, loss: number | null, inputShape: number[], numClasses: number, inputScale: number }
}

/** Writes the model of `checkpoint` to `out`, saying in its metadata what it takes and where it came from. */
export async function exportCheckpoint (checkpoint: Checkpoint, out: string): Promise<ExportMetadata> {
  const { task } = checkpoint
  const spec = modelSpec(task)
  const model = buildModel(task.model, spec)
  try {
    writeWeights(model, modelPart(decodeTensors(checkpoint.model)))
    const last = checkpoint.history.at(-1)
    const metadata: ExportMetadata = { dml: { round: checkpoint.round, modelHash: checkpoint.modelHash, model: task.model, dataset: task.dataset, accuracy: last?.metrics.accuracy ?? null, loss: last?.metrics.loss ?? null, ...spec, inputScale: task.inputScale } }
    await saveModelFiles(model, out, metadata as unknown as Record<string, unknown>)
    return metadata
  } finally {
    model.dispose()
  }
}

/** The examples to run an export on: --data (all of it), else --dataset's test set. */
async function examplesFor (o: Record<string, unknown>, meta: Partial<ExportMetadata['dml']>, input: number[]): Promise<{ set: ImageSet, name: string }> {
  if (o.data !== '') {
    try {
      const set = await loadOwnData(o.data as string, { input, classes: meta.numClasses ?? 10, scale: meta.inputScale ?? 255 })
      return { set, name: o.data as string }
    } catch (err) {
      throw new ConfigError(firstLine(err))
    }
  }
  try {
    const test = (await loadDataset(o.dataset as string)).test
    test.scale = meta.inputScale ?? 255
    return { set: test, name: `the test set of ${o.dataset as string}` }
  } catch (err) {
    throw new ConfigError(`--dataset ${o.dataset as string}: ${firstLine(err)}`)
  }
}

export async function runExport (argv: string[]): Promise<number> {
  const o = parseOptions(argv, EXPORT_OPTIONS, process.env)
  if (o.help === true) {
    console.log(await helpText('dml-node export', 'Writes the newest checkpoint\'s model in TensorFlow.js\'s layers format (model.json + weights.bin).', EXPORT_OPTIONS))
    return 0
  }
  if (o.out === '') throw new ConfigError('--out <dir> is required: where to write model.json and weights.bin')
  if (o['model-module'] !== '') await registerModelModule(o['model-module'] as string)
  const dataDir = resolve(o['data-dir'] as string)
  const found = await loadNewestCheckpointUnder(dataDir, (err) => { console.error(`skipped a corrupt checkpoint: ${err.message}`) })
  if (found === undefined) throw new ConfigError(`--data-dir ${dataDir} holds no checkpoint, nor do the directories in it: nothing to export (a node writes one after every finished round)`)
  const { checkpoint } = found
  if (found.dir !== dataDir) {
    const others = found.others.map(o => `${relative(dataDir, o.dir)} at round ${o.round}`)
    console.log(`${dataDir} holds no checkpoint itself: exporting the newest of the data directories in it, ${relative(dataDir, found.dir)}'s (round ${checkpoint.round})${others.length > 0 ? `; also found ${others.join(', ')}` : ''}`)
  }
  await initBackend('auto')
  const meta = await exportCheckpoint(checkpoint, resolve(o.out as string))
  console.log(`exported round ${meta.dml.round} (${meta.dml.model}, accuracy ${meta.dml.accuracy === null ? 'unknown' : (100 * meta.dml.accuracy).toFixed(2) + '%'}) to ${resolve(o.out as string)}`)
  return 0
}

async function loadExport (o: Record<string, unknown>): Promise<{ model: tf.LayersModel, set: ImageSet, name: string, samples: number }> {
  if (o.model === '') throw new ConfigError('--model <dir> is required: the directory holding model.json')
  await initBackend('auto')
  let loaded: Awaited<ReturnType<typeof loadModelFiles>>
  try {
    loaded = await loadModelFiles(resolve(o.model as string))
  } catch (err) {
    throw new ConfigError(`--model ${o.model as string}: ${firstLine(err)}`)
  }
  const { model } = loaded
  const input = model.inputs[0].shape.slice(1).map(d => d ?? 0)
  const { set, name } = await examplesFor(o, (loaded.metadata as Partial<ExportMetadata> | undefined)?.dml ?? {}, input)
  if (input.length !== set.exampleShape.length || input.some((d, i) => d !== 0 && d !== set.exampleShape[i])) {
    throw new ConfigError(`--model ${o.model as string} takes inputs of shape [${input.join(', ')}]; ${name} has [${set.exampleShape.join(', ')}]`)
  }
  return { model, set, name, samples: Math.min(o.samples as number, set.count) }
}

export async function runEvaluate (argv: string[]): Promise<number> {
  const o = parseOptions(argv, EVALUATE_OPTIONS, process.env)
  if (o.help === true) {
    console.log(await helpText('dml-node evaluate', 'Loads an exported model and measures its accuracy and loss on a data set\'s first test examples.', EVALUATE_OPTIONS))
    return 0
  }
  const { model, set, name, samples } = await loadExport(o)
  const result = await evaluate(model, set, samples)
  if (o.json === true) console.log(JSON.stringify(result))
  else console.log(`accuracy ${(100 * result.accuracy).toFixed(2)}%, loss ${result.loss.toFixed(4)} on the first ${result.samples} examples of ${name}`)
  return 0
}

export async function runPredict (argv: string[]): Promise<number> {
  const o = parseOptions(argv, { ...EVALUATE_OPTIONS, samples: { ...EVALUATE_OPTIONS.samples, default: 10 } }, process.env)
  if (o.help === true) {
    console.log(await helpText('dml-node predict', 'Loads an exported model and prints its prediction for each of a data set\'s first test examples, beside the true label.', EVALUATE_OPTIONS))
    return 0
  }
  const { model, set, samples } = await loadExport(o)
  const { xs, ys } = makeBatch(set, Array.from({ length: samples }, (_, i) => i))
  const probs = model.predict(xs) as tf.Tensor
  const [best, top] = [probs.argMax(-1), probs.max(-1)]
  const predicted = await best.data()
  const confidence = await top.data()
  tf.dispose([xs, ys, probs, best, top])
  for (let i = 0; i < samples; i++) {
    const line = { example: i, predicted: predicted[i], label: set.labels[i], confidence: confidence[i] }
    if (o.json === true) console.log(JSON.stringify(line))
    else console.log(`example ${i}: predicted ${line.predicted} (${(100 * line.confidence).toFixed(1)}%), label ${line.label}${line.predicted === line.label ? '' : '  <- wrong'}`)
  }
  return 0
}
