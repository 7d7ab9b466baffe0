// Server optimizers (Reddi et al., "Adaptive Federated Optimization"): the round's aggregate is a
// pseudo-gradient, delta = aggregate - model, that the server applies with momentum (FedAvgM) or
// Adam (FedAdam) instead of taking the aggregate as it is (FedAvg). Their state (the moments)
// travels inside the global model's blob as extra tensors named `server/...`: it is hashed,
// certified, fetched and checkpointed with the model, so every peer that checks a round computes
// the same step from the same state. Workers and exports see the model tensors only (modelPart).
// Plain float32 arithmetic in a fixed order: the same bits on every peer.
import { SERVER_OPTIMIZERS, type NamedTensor } from '@dml/protocol'

export { SERVER_OPTIMIZERS }
export type ServerOptimizerName = typeof SERVER_OPTIMIZERS[number]

export function isServerOptimizer (name: string): name is ServerOptimizerName {
  return (SERVER_OPTIMIZERS as readonly string[]).includes(name)
}

/** FedAvgM's momentum; FedAdam's moment decays and its adaptivity (tau), as in Reddi et al. */
export const SERVER_MOMENTUM = 0.9
export const ADAM_BETA1 = 0.9
export const ADAM_BETA2 = 0.99
export const ADAM_TAU = 1e-3

/** The server learning rate a name implies when none is given: FedAvg's and FedAvgM's 1, FedAdam's 0.01. */
export function defaultServerLr (name: ServerOptimizerName): number {
  return name === 'adam' ? 0.01 : 1
}

const STATE_PREFIX = 'server/'

function momentNames (name: ServerOptimizerName): string[] {
  return name === 'momentum' ? ['m'] : name === 'adam' ? ['m', 'v'] : []
}

/** The model's tensors without the server's state. */
export function modelPart (weights: NamedTensor[]): NamedTensor[] {
  return weights.filter(w => !w.name.startsWith(STATE_PREFIX))
}

/** A fresh model's blob tensors: the model, then zero moments for the server optimizer. */
export function withServerState (model: NamedTensor[], name: ServerOptimizerName): NamedTensor[] {
  const state = momentNames(name).flatMap(moment => model.map(w => ({ name: `${STATE_PREFIX}${moment}/${w.name}`, shape: [...w.shape], values: new Float32Array(w.values.length) })))
  return [...model, ...state]
}

/**
 * The new global blob: `current` (model and state) moved by the round's `aggregate` (model
 * tensors only). With `none` the aggregate is the new model, as in FedAvg.
 */
export function serverStep (current: NamedTensor[], aggregate: NamedTensor[], name: ServerOptimizerName, lr: number): NamedTensor[] {
  const model = modelPart(current)
  if (name === 'none') return aggregate
  const state = new Map(current.filter(w => w.name.startsWith(STATE_PREFIX)).map(w => [w.name, w]))
  const moment = (m: string, w: NamedTensor): Float32Array => {
    const t = state.get(`${STATE_PREFIX}${m}/${w.name}`)
    if (t === undefined || t.values.length !== w.values.length) throw new Error(`the global model holds no ${m} moment for ${w.name}: it was not made for the ${name} server optimizer`)
    return t.values
  }
  const newModel: NamedTensor[] = []
  const newState: NamedTensor[] = []
  model.forEach((w, i) => {
    const delta = new Float32Array(w.values.length)
    for (let j = 0; j < delta.length; j++) delta[j] = aggregate[i].values[j] - w.values[j]
    const m = Float32Array.from(moment('m', w))
    const out = new Float32Array(w.values.length)
    if (name === 'momentum') {
      for (let j = 0; j < m.length; j++) {
        m[j] = SERVER_MOMENTUM * m[j] + delta[j]
        out[j] = w.values[j] + lr * m[j]
      }
      newState.push({ name: `${STATE_PREFIX}m/${w.name}`, shape: [...w.shape], values: m })
    } else {
      const v = Float32Array.from(moment('v', w))
      for (let j = 0; j < m.length; j++) {
        m[j] = ADAM_BETA1 * m[j] + (1 - ADAM_BETA1) * delta[j]
        v[j] = ADAM_BETA2 * v[j] + (1 - ADAM_BETA2) * delta[j] * delta[j]
        out[j] = w.values[j] + lr * m[j] / (Math.sqrt(v[j]) + ADAM_TAU)
      }
      newState.push({ name: `${STATE_PREFIX}m/${w.name}`, shape: [...w.shape], values: m })
      newState.push({ name: `${STATE_PREFIX}v/${w.name}`, shape: [...w.shape], values: v })
    }
    newModel.push({ name: w.name, shape: [...w.shape], values: out })
  })
  // the blob's order: model tensors, then every m, then every v (as withServerState lays them out)
  newState.sort((a, b) => (a.name.startsWith(`${STATE_PREFIX}m/`) === b.name.startsWith(`${STATE_PREFIX}m/`) ? 0 : a.name.startsWith(`${STATE_PREFIX}m/`) ? -1 : 1))
  return [...newModel, ...newState]
}
