// The model registry. A model is built from its name on every peer, so only names travel on
// the wire; code is only ever loaded from a module path the local user passed on the command line.
import * as tf from './tf.ts'

export interface ModelSpec {
  inputShape: number[]
  numClasses: number
}

export type ModelFactory = (tfjs: typeof tf.wholeTfjs, spec: ModelSpec) => tf.LayersModel

const registry = new Map<string, ModelFactory>()

export function registerModel (name: string, factory: ModelFactory): void {
  if (!/^[a-z0-9][a-z0-9._-]{0,63}$/i.test(name)) throw new Error(`model name "${name}" must be 1-64 letters, digits, '.', '_' or '-'`)
  registry.set(name, factory)
}

/** A model that is not registered, or does not fit the data set: the user's to fix. */
export class ModelError extends Error {
  override name = 'ModelError'
  readonly expected = true
}

export function modelNames (): string[] {
  return [...registry.keys()]
}

export function buildModel (name: string, spec: ModelSpec): tf.LayersModel {
  const factory = registry.get(name)
  if (factory === undefined) throw new ModelError(`unknown model "${name}"; known models: ${modelNames().join(', ')} (add your own with --model-module)`)
  const model = factory(tf.wholeTfjs, spec)
  const out = model.outputs[0].shape
  if (out[out.length - 1] !== spec.numClasses) throw new ModelError(`model "${name}" outputs ${String(out[out.length - 1])} classes, the data set has ${spec.numClasses}`)
  return model
}

/**
 * Loads a user's module and registers the models it exports as `models: { name: factory }`.
 * Only ever called with a path from the local command line or config file.
 */
export async function registerModelModule (path: string): Promise<string[]> {
  // Node's modules, loaded here alone: the registry runs in a browser tab too, which loads no module by path
  const { pathToFileURL } = await import('node:url')
  const { resolve } = await import('node:path')
  const mod = await import(pathToFileURL(resolve(path)).href) as { models?: Record<string, ModelFactory> }
  if (mod.models === undefined || typeof mod.models !== 'object') throw new Error(`${path} must export "models": an object of name -> (tf, {inputShape, numClasses}) => tf.LayersModel`)
  for (const [name, factory] of Object.entries(mod.models)) {
    if (typeof factory !== 'function') throw new Error(`${path}: models.${name} is not a function`)
    registerModel(name, factory)
  }
  return Object.keys(mod.models)
}

// 784-200-200-10: the FedAvg paper's "2NN" (199,210 parameters)
registerModel('mlp', (tfjs, { inputShape, numClasses }) => tfjs.sequential({
  layers: [
    tfjs.layers.flatten({ inputShape }),
    tfjs.layers.dense({ units: 200, activation: 'relu' }),
    tfjs.layers.dense({ units: 200, activation: 'relu' }),
    tfjs.layers.dense({ units: numClasses, activation: 'softmax' })
  ]
}))

// The FedAvg paper's MNIST CNN: 5x5 conv 32, pool, 5x5 conv 64, pool, dense 512 (1,663,370 parameters)
registerModel('cnn', (tfjs, { inputShape, numClasses }) => tfjs.sequential({
  layers: [
    tfjs.layers.conv2d({ inputShape, filters: 32, kernelSize: 5, padding: 'same', activation: 'relu' }),
    tfjs.layers.maxPooling2d({ poolSize: 2 }),
    tfjs.layers.conv2d({ filters: 64, kernelSize: 5, padding: 'same', activation: 'relu' }),
    tfjs.layers.maxPooling2d({ poolSize: 2 }),
    tfjs.layers.flatten(),
    tfjs.layers.dense({ units: 512, activation: 'relu' }),
    tfjs.layers.dense({ units: numClasses, activation: 'softmax' })
  ]
}))

// A small CNN that trains fast on a CPU: 5x5 conv 8, pool, 5x5 conv 16, pool (5,994 parameters)
registerModel('cnn-small', (tfjs, { inputShape, numClasses }) => tfjs.sequential({
  layers: [
    tfjs.layers.conv2d({ inputShape, filters: 8, kernelSize: 5, activation: 'relu' }),
    tfjs.layers.maxPooling2d({ poolSize: 2 }),
    tfjs.layers.conv2d({ filters: 16, kernelSize: 5, activation: 'relu' }),
    tfjs.layers.maxPooling2d({ poolSize: 2 }),
    tfjs.layers.flatten(),
    tfjs.layers.dense({ units: numClasses, activation: 'softmax' })
  ]
}))
