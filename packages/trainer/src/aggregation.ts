// Aggregation strategies over plain Float32Arrays. Every strategy passes the same contract
// suite (test/aggregation.contract.test.ts); add one by registering it here.
import type { NamedTensor } from '@dml/protocol'

export interface ClientUpdate {
  peer: string
  weights: NamedTensor[]
  numSamples: number
}

export interface AggregationStrategy {
  name: string
  description: string
  /** Combines updates into new global weights. Must not modify its inputs. */
  aggregate: (updates: ClientUpdate[], global: NamedTensor[]) => NamedTensor[]
}

export class AggregationError extends Error {
  override name = 'AggregationError'
}

function checkUpdates (updates: ClientUpdate[], global: NamedTensor[]): void {
  if (updates.length === 0) throw new AggregationError('nothing to aggregate: no updates')
  for (const u of updates) {
    if (!(Number.isFinite(u.numSamples) && u.numSamples > 0)) throw new AggregationError(`update from ${u.peer} has no samples`)
    if (u.weights.length !== global.length) throw new AggregationError(`update from ${u.peer} has ${u.weights.length} tensors, the model has ${global.length}`)
    u.weights.forEach((w, i) => {
      if (w.values.length !== global[i].values.length) throw new AggregationError(`update from ${u.peer}: tensor ${i} has ${w.values.length} values, expected ${global[i].values.length}`)
      for (const v of w.values) if (!Number.isFinite(v)) throw new AggregationError(`update from ${u.peer}: tensor ${i} holds a non-finite value`)
    })
  }
}

/** Federated averaging (McMahan et al. 2017): the mean of the weights, weighted by samples. */
export const fedavg: AggregationStrategy = {
  name: 'fedavg',
  description: 'federated averaging, weighted by the number of samples each peer trained on',
  aggregate (updates, global) {
    checkUpdates(updates, global)
    const total = updates.reduce((n, u) => n + u.numSamples, 0)
    return global.map((g, i) => {
      // accumulate in float64: summing many float32 updates loses precision otherwise
      const acc = new Float64Array(g.values.length)
      for (const u of updates) {
        const share = u.numSamples / total
        const values = u.weights[i].values
        for (let j = 0; j < acc.length; j++) acc[j] += share * values[j]
      }
      return { name: g.name, shape: [...g.shape], values: Float32Array.from(acc) }
    })
  }
}

/** Coordinate-wise median: robust to a minority of outlying or faulty updates; ignores sample counts. */
export const median: AggregationStrategy = {
  name: 'median',
  description: 'coordinate-wise median of the updates (robust to outliers)',
  aggregate (updates, global) {
    checkUpdates(updates, global)
    const column = new Float64Array(updates.length)
    return global.map((g, i) => {
      const out = new Float32Array(g.values.length)
      for (let j = 0; j < out.length; j++) {
        for (let k = 0; k < updates.length; k++) column[k] = updates[k].weights[i].values[j]
        column.sort()
        const mid = column.length >> 1
        out[j] = column.length % 2 === 1 ? column[mid] : (column[mid - 1] + column[mid]) / 2
      }
      return { name: g.name, shape: [...g.shape], values: out }
    })
  }
}

export const STRATEGIES: Record<string, AggregationStrategy> = { fedavg, median }

export function getStrategy (name: string): AggregationStrategy {
  const s = STRATEGIES[name]
  if (s === undefined) throw new AggregationError(`unknown aggregation "${name}"; choose one of: ${Object.keys(STRATEGIES).join(', ')}`)
  return s
}
