// Aggregation strategies over plain Float32Arrays. Every strategy passes the same contract suite
// (test/aggregation.contract.test.ts); add one by registering it here. They are deterministic for
// the same inputs in the same order (float64 accumulation, stable sorts): the participants of a
// round recompute the leader's aggregate and must arrive at the same bytes.
import type { NamedTensor, StrategySpec } from '@dml/protocol'
import { isServerOptimizer, modelPart, SERVER_OPTIMIZERS, serverStep } from './server-optimizer.ts'

export interface ClientUpdate {
  peer: string
  weights: NamedTensor[]
  numSamples: number
}

export interface AggregationParams {
  /** trimmed-mean: the fraction cut from each end of every coordinate (0 to 0.49) */
  trim: number
  /** krum, multi-krum: how many updates may be Byzantine */
  byzantine: number
  /** clipped-mean: each update's distance from the global model is clipped to clip x the median distance */
  clip: number
}

export const DEFAULT_PARAMS: AggregationParams = { trim: 0.2, byzantine: 1, clip: 1 }

export interface AggregationStrategy {
  name: string
  description: string
  /** when to pick it (for --help and the README) */
  against: string
  /** Combines updates into new global weights. Must not modify its inputs. */
  aggregate: (updates: ClientUpdate[], global: NamedTensor[], params: AggregationParams) => NamedTensor[]
}

export class AggregationError extends Error {
  override name = 'AggregationError'
  /** the user's to fix: a command says it in one line (see errors.ts in @dml/node) */
  readonly expected = true
}

/** The updates that aggregateRound found finite already (by their distances): not scanned again. */
const finiteUpdates = new WeakSet<ClientUpdate>()

/** Samples and shapes: what must hold before any arithmetic. */
function checkShapes (updates: ClientUpdate[], global: NamedTensor[]): void {
  if (updates.length === 0) throw new AggregationError('nothing to aggregate: no updates')
  for (const u of updates) {
    if (!(Number.isFinite(u.numSamples) && u.numSamples > 0)) throw new AggregationError(`update from ${u.peer} has no samples`)
    if (u.weights.length !== global.length) throw new AggregationError(`update from ${u.peer} has ${u.weights.length} tensors, the model has ${global.length}`)
    u.weights.forEach((w, i) => {
      if (w.values.length !== global[i].values.length) throw new AggregationError(`update from ${u.peer}: tensor ${i} has ${w.values.length} values, expected ${global[i].values.length}`)
    })
  }
}

function checkUpdates (updates: ClientUpdate[], global: NamedTensor[]): void {
  checkShapes(updates, global)
  for (const u of updates) {
    if (finiteUpdates.has(u)) continue
    u.weights.forEach((w, i) => {
      // x * 0 is 0 for every finite x and NaN otherwise: one sum finds a NaN or an infinity anywhere
      const values = w.values
      let probe = 0
      for (let j = 0; j < values.length; j++) probe += values[j] * 0
      if (probe !== 0) throw new AggregationError(`update from ${u.peer}: tensor ${i} holds a non-finite value`)
    })
  }
}

/** Euclidean distance between an update and the global model, over every tensor (non-finite if a value is). */
export function distance (weights: NamedTensor[], global: NamedTensor[]): number {
  // four running sums: independent additions the CPU overlaps; the order is fixed, so every peer gets the same
  let s0 = 0
  let s1 = 0
  let s2 = 0
  let s3 = 0
  for (let i = 0; i < global.length; i++) {
    const a = weights[i].values
    const b = global[i].values
    const n = b.length
    const whole = n - (n % 4)
    for (let j = 0; j < whole; j += 4) {
      const d0 = a[j] - b[j]
      const d1 = a[j + 1] - b[j + 1]
      const d2 = a[j + 2] - b[j + 2]
      const d3 = a[j + 3] - b[j + 3]
      s0 += d0 * d0
      s1 += d1 * d1
      s2 += d2 * d2
      s3 += d3 * d3
    }
    for (let j = whole; j < n; j++) {
      const d = a[j] - b[j]
      s0 += d * d
    }
  }
  return Math.sqrt((s0 + s1) + (s2 + s3))
}

function medianOf (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/** A weighted mean of `updates` with the given weights (summing to anything positive). */
export function weightedMean (updates: Array<Pick<ClientUpdate, 'weights'>>, weights: number[], global: NamedTensor[]): NamedTensor[] {
  const total = weights.reduce((a, b) => a + b, 0)
  const shares = weights.map(w => w / total)
  return global.map((g, i) => {
    // Each coordinate's terms are added in the updates' order, in float64 (summing many float32
    // updates loses precision otherwise), so that every peer gets the same bits. Up to four
    // updates: one pass, straight into the result. More: four a pass, the sums kept in float64.
    const columns = updates.map(u => u.weights[i].values)
    const n = g.values.length
    if (columns.length <= 4) return { name: g.name, shape: [...g.shape], values: sumOfFew(n, columns, shares) }
    const sums = new Float64Array(n)
    for (let k = 0; k < columns.length; k += 4) {
      if (columns.length - k >= 4) {
        const c0 = columns[k]; const c1 = columns[k + 1]; const c2 = columns[k + 2]; const c3 = columns[k + 3]
        const s0 = shares[k]; const s1 = shares[k + 1]; const s2 = shares[k + 2]; const s3 = shares[k + 3]
        for (let j = 0; j < n; j++) sums[j] = (((sums[j] + s0 * c0[j]) + s1 * c1[j]) + s2 * c2[j]) + s3 * c3[j]
      } else {
        for (let m = k; m < columns.length; m++) {
          const c = columns[m]; const share = shares[m]
          for (let j = 0; j < n; j++) sums[j] += share * c[j]
        }
      }
    }
    return { name: g.name, shape: [...g.shape], values: new Float32Array(sums) }
  })
}

/** The weighted sum of one to four columns, added in order from 0 as weightedMean's passes do. */
function sumOfFew (n: number, columns: Float32Array[], shares: number[]): Float32Array {
  const out = new Float32Array(n)
  const [c0, c1, c2, c3] = columns
  const [s0, s1, s2, s3] = shares
  switch (columns.length) {
    case 1: for (let j = 0; j < n; j++) out[j] = 0 + s0 * c0[j]; break
    case 2: for (let j = 0; j < n; j++) out[j] = (0 + s0 * c0[j]) + s1 * c1[j]; break
    case 3: for (let j = 0; j < n; j++) out[j] = ((0 + s0 * c0[j]) + s1 * c1[j]) + s2 * c2[j]; break
    default: for (let j = 0; j < n; j++) out[j] = (((0 + s0 * c0[j]) + s1 * c1[j]) + s2 * c2[j]) + s3 * c3[j]
  }
  return out
}

/** Per coordinate: sort the updates' values and combine them with `pick` (median, trimmed mean). */
function coordinatewise (updates: ClientUpdate[], global: NamedTensor[], pick: (sorted: Float64Array) => number): NamedTensor[] {
  const column = new Float64Array(updates.length)
  return global.map((g, i) => {
    const columns = updates.map(u => u.weights[i].values)
    const out = new Float32Array(g.values.length)
    for (let j = 0; j < out.length; j++) {
      for (let k = 0; k < columns.length; k++) column[k] = columns[k][j]
      column.sort()
      out[j] = pick(column)
    }
    return { name: g.name, shape: [...g.shape], values: out }
  })
}

/** Krum scores (Blanchard et al. 2017): each update's summed squared distance to its closest neighbours. */
function krumScores (updates: ClientUpdate[], byzantine: number): number[] {
  const n = updates.length
  const d2 = Array.from({ length: n }, () => new Float64Array(n))
  for (let a = 0; a < n; a++) {
    for (let b = a + 1; b < n; b++) {
      const dist = distance(updates[a].weights, updates[b].weights)
      d2[a][b] = d2[b][a] = dist * dist
    }
  }
  const neighbours = Math.max(1, n - byzantine - 2)
  return updates.map((_, a) => {
    const others = [...d2[a]].filter((_, b) => b !== a).sort((x, y) => x - y)
    return others.slice(0, neighbours).reduce((s, x) => s + x, 0)
  })
}

/** Indices of the `m` updates with the lowest Krum scores (ties to the lower peer id). */
function krumSelect (updates: ClientUpdate[], byzantine: number, m: number): number[] {
  if (updates.length <= 2) return updates.map((_, i) => i)
  const scores = krumScores(updates, byzantine)
  return updates.map((u, i) => ({ i, score: scores[i], peer: u.peer }))
    .sort((a, b) => a.score - b.score || (a.peer < b.peer ? -1 : 1))
    .slice(0, m).map(x => x.i)
}

/** Federated averaging (McMahan et al. 2017): the mean of the weights, weighted by samples. */
export const fedavg: AggregationStrategy = {
  name: 'fedavg',
  description: 'federated averaging, weighted by the number of samples each peer trained on',
  against: 'nothing: trusted peers only (the norm bound still drops far-off updates)',
  aggregate (updates, global) {
    checkUpdates(updates, global)
    return weightedMean(updates, updates.map(u => u.numSamples), global)
  }
}

/** Coordinate-wise median: robust to a minority of outlying or faulty updates; ignores sample counts. */
export const median: AggregationStrategy = {
  name: 'median',
  description: 'coordinate-wise median of the updates (robust to outliers)',
  against: 'fewer than half of the updates lying, each coordinate on its own; slower to converge',
  aggregate (updates, global) {
    checkUpdates(updates, global)
    return coordinatewise(updates, global, c => {
      const mid = c.length >> 1
      return c.length % 2 === 1 ? c[mid] : (c[mid - 1] + c[mid]) / 2
    })
  }
}

/** Coordinate-wise trimmed mean (Yin et al. 2018): drop the `trim` fraction at each end, average the rest. */
export const trimmedMean: AggregationStrategy = {
  name: 'trimmed-mean',
  description: 'coordinate-wise mean after cutting the --trim fraction of values at each end',
  against: 'up to the --trim fraction of updates lying; closer to the mean than the median',
  aggregate (updates, global, { trim }) {
    checkUpdates(updates, global)
    const cut = Math.min(Math.floor(trim * updates.length), Math.floor((updates.length - 1) / 2))
    return coordinatewise(updates, global, c => {
      let sum = 0
      for (let k = cut; k < c.length - cut; k++) sum += c[k]
      return sum / (c.length - 2 * cut)
    })
  }
}

/** Krum: the one update closest to its neighbours. */
export const krum: AggregationStrategy = {
  name: 'krum',
  description: 'the single update closest to its n - f - 2 nearest neighbours (f = --byzantine)',
  against: 'up to --byzantine updates colluding, with n > 2f + 2; uses one update, so converges slowly',
  aggregate (updates, global, { byzantine }) {
    checkUpdates(updates, global)
    const [best] = krumSelect(updates, byzantine, 1)
    return weightedMean([updates[best]], [1], global)
  }
}

/** Multi-Krum: the mean of the n - f updates with the best Krum scores. */
export const multiKrum: AggregationStrategy = {
  name: 'multi-krum',
  description: 'the sample-weighted mean of the n - f updates with the best Krum scores (f = --byzantine)',
  against: 'up to --byzantine updates colluding, with n > 2f + 2; close to FedAvg otherwise',
  aggregate (updates, global, { byzantine }) {
    checkUpdates(updates, global)
    const chosen = krumSelect(updates, byzantine, Math.max(1, updates.length - byzantine)).sort((a, b) => a - b).map(i => updates[i])
    return weightedMean(chosen, chosen.map(u => u.numSamples), global)
  }
}

/** Norm clipping: each update's step from the global model is cut to clip x the median step, then FedAvg. */
export const clippedMean: AggregationStrategy = {
  name: 'clipped-mean',
  description: 'FedAvg of the updates after clipping each step from the global model to --clip x the median step',
  against: 'a few updates that push too far (scaled or boosted models); keeps every peer\'s direction',
  aggregate (updates, global, { clip }) {
    checkUpdates(updates, global)
    const distances = updates.map(u => distance(u.weights, global))
    const limit = clip * medianOf(distances)
    const clipped = updates.map((u, k) => {
      const scale = distances[k] > limit && distances[k] > 0 ? limit / distances[k] : 1
      if (scale === 1) return u
      return { ...u, weights: u.weights.map((w, i) => ({ ...w, values: w.values.map((v, j) => global[i].values[j] + scale * (v - global[i].values[j])) })) }
    })
    return weightedMean(clipped, clipped.map(u => u.numSamples), global)
  }
}

export const STRATEGIES: Record<string, AggregationStrategy> = {
  fedavg, median, 'trimmed-mean': trimmedMean, krum, 'multi-krum': multiKrum, 'clipped-mean': clippedMean
}

export function getStrategy (name: string): AggregationStrategy {
  const s = STRATEGIES[name]
  if (s === undefined) throw new AggregationError(`unknown aggregation "${name}"; choose one of: ${Object.keys(STRATEGIES).join(', ')}`)
  return s
}

/**
 * The updates that may count: those within `bound` x the median distance from the global model
 * (all of them when `bound` is 0, or when there are fewer than 3 to take a median of).
 */
export function normFilter (updates: ClientUpdate[], global: NamedTensor[], bound: number, distances = updates.map(u => distance(u.weights, global))): { kept: ClientUpdate[], dropped: Array<{ peer: string, distance: number, limit: number }> } {
  if (bound <= 0 || updates.length < 3) return { kept: updates, dropped: [] }
  const limit = bound * medianOf(distances)
  const kept: ClientUpdate[] = []
  const dropped: Array<{ peer: string, distance: number, limit: number }> = []
  updates.forEach((u, k) => {
    if (distances[k] <= limit) kept.push(u)
    else dropped.push({ peer: u.peer, distance: distances[k], limit })
  })
  return { kept, dropped }
}

/**
 * A round's aggregate as every peer computes it: sort the updates by peer, drop those beyond the
 * norm bound, combine the rest with the strategy. The leader proposes it; the participants compute
 * it again from the same updates and sign only if they arrive at the same model.
 */
export function aggregateRound (updates: ClientUpdate[], current: NamedTensor[], spec: StrategySpec): { weights: NamedTensor[], dropped: Array<{ peer: string, distance: number, limit: number }> } {
  const sorted = [...updates].sort((a, b) => (a.peer < b.peer ? -1 : a.peer > b.peer ? 1 : 0))
  const global = modelPart(current)
  checkShapes(sorted, global)
  // the distances are also the finite check: a NaN or an infinity anywhere in an update makes its
  // distance so (the model's own values are finite), and then the full scan names the tensor
  const distances = sorted.map(u => distance(u.weights, global))
  if (!distances.every(Number.isFinite)) checkUpdates(sorted, global)
  for (const u of sorted) finiteUpdates.add(u)
  const { kept, dropped } = normFilter(sorted, global, spec.normBound, distances)
  const aggregate = getStrategy(spec.aggregation).aggregate(kept, global, spec)
  if (!isServerOptimizer(spec.serverOptimizer)) throw new AggregationError(`unknown server optimizer "${spec.serverOptimizer}"; choose one of: ${SERVER_OPTIMIZERS.join(', ')}`)
  return { weights: serverStep(current, aggregate, spec.serverOptimizer, spec.serverLr), dropped }
}
