// Resource allocation: each round the coordinator hands out local work from each peer's data
// size and measured speed: local epochs over its examples, shifted from slow peers to fast ones
// so that they finish at about the same time.
import { MAX_ROUND_PEERS, type Assignment } from '@dml/protocol'

export interface WorkerSpeed {
  peer: string
  /** samples per second measured in earlier rounds; 0 when not yet known */
  speed: number
}

export interface WorkerData extends WorkerSpeed {
  /** examples of its own the peer says it holds; 0: it trains on its part of the shared set */
  examples: number
}

export interface AllocationInput {
  workers: WorkerData[]
  /** examples in the shared training set, split between the peers that have none of their own */
  sharedSize: number
  /** the size of part `index` of `count` of the shared set, where a partition makes parts unequal (else sharedSize / count) */
  sharedPart?: (index: number, count: number) => number
  localEpochs: number
  batchSize: number
}

/** Limits on a peer's share relative to an even split, so one slow measurement can't starve or swamp a peer. */
const MIN_SHARE = 0.25
const MAX_SHARE = 4

/**
 * The peers that train round `round`: all of them, or in a network larger than `max` a window of
 * `max` that moves on every round, so that every peer takes its turn.
 */
export function roundParticipants<T extends { peer: string }> (workers: T[], round: number, max = MAX_ROUND_PEERS): T[] {
  const sorted = [...workers].sort((a, b) => (a.peer < b.peer ? -1 : 1))
  if (sorted.length <= max) return sorted
  const offset = ((round - 1) * max) % sorted.length
  return Array.from({ length: max }, (_, i) => sorted[(offset + i) % sorted.length])
}

/**
 * Each peer's base is local epochs over its examples (its own, or an equal part of the shared
 * set), so that the average weighs peers by their data. A peer faster than the mean does more
 * in proportion, a slower one less, within MIN_SHARE..MAX_SHARE of its base; and no peer gets
 * more than MAX_SHARE times the median base: one claiming a huge data set, a huge speed or both
 * gets at most that many times a typical peer's work, and so at most that weight.
 */
export function allocateWork ({ workers, sharedSize, sharedPart, localEpochs, batchSize }: AllocationInput): Assignment[] {
  if (workers.length === 0) return []
  const sorted = [...workers].sort((a, b) => (a.peer < b.peer ? -1 : 1))
  const n = sorted.length
  const part = sharedPart ?? ((_index: number, count: number) => sharedSize / count)
  const bases = sorted.map((w, i) => Math.max(1, Math.round(localEpochs * (w.examples > 0 ? w.examples : part(i, n)))))
  const ceiling = MAX_SHARE * [...bases].sort((a, b) => a - b)[n >> 1]
  const known = sorted.filter(w => w.speed > 0)
  const meanSpeed = known.length > 0 ? known.reduce((s, w) => s + w.speed, 0) / known.length : 1
  return sorted.map((w, i) => {
    const share = Math.min(MAX_SHARE, Math.max(MIN_SHARE, (w.speed > 0 ? w.speed : meanSpeed) / meanSpeed))
    const samples = Math.min(ceiling, Math.round(bases[i] * share))
    return { peer: w.peer, samples: Math.max(Math.min(batchSize, bases[i]), samples), shard: [i, n] }
  })
}

/**
 * Expected seconds for the slowest assignment; a peer of unknown speed counts at the mean known
 * speed, and none slower than a MAX_SHARE-th of the median known speed: the speeds are the peers'
 * own claims, and one claiming to be a million times slower than the others would otherwise hold
 * every round it is given work in to the longest deadline (its work is bounded the same way).
 * Undefined while no speed is known at all.
 */
export function expectedSeconds (assignments: Assignment[], workers: WorkerSpeed[]): number | undefined {
  const known = workers.filter(w => w.speed > 0).map(w => w.speed).sort((a, b) => a - b)
  if (known.length === 0) return undefined
  const meanSpeed = known.reduce((s, speed) => s + speed, 0) / known.length
  const slowest = known[known.length >> 1] / MAX_SHARE
  let worst = 0
  for (const a of assignments) {
    const speed = workers.find(w => w.peer === a.peer)?.speed ?? 0
    worst = Math.max(worst, a.samples / Math.max(slowest, speed > 0 ? speed : meanSpeed))
  }
  return worst
}
