// Resource allocation: each round the coordinator hands out local work in proportion to each
// peer's measured speed, so fast and slow peers finish at about the same time.
import { MAX_ROUND_PEERS, type Assignment } from '@dml/protocol'

export interface WorkerSpeed {
  peer: string
  /** samples per second measured in earlier rounds; 0 when not yet known */
  speed: number
}

export interface AllocationInput {
  workers: WorkerSpeed[]
  /** examples in the whole training set */
  trainSize: number
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

export function allocateWork ({ workers, trainSize, localEpochs, batchSize }: AllocationInput): Assignment[] {
  if (workers.length === 0) return []
  const sorted = [...workers].sort((a, b) => (a.peer < b.peer ? -1 : 1))
  const n = sorted.length
  const even = Math.max(1, Math.round(localEpochs * trainSize / n))
  const known = sorted.filter(w => w.speed > 0)
  const meanSpeed = known.length > 0 ? known.reduce((s, w) => s + w.speed, 0) / known.length : 1
  const speeds = sorted.map(w => (w.speed > 0 ? w.speed : meanSpeed))
  const total = speeds.reduce((a, b) => a + b, 0)
  return sorted.map((w, i) => {
    const share = Math.min(MAX_SHARE, Math.max(MIN_SHARE, speeds[i] * n / total))
    return { peer: w.peer, samples: Math.max(Math.min(batchSize, even), Math.round(even * share)), shard: [i, n] }
  })
}

/**
 * Expected seconds for the slowest assignment; a peer of unknown speed counts at the mean known
 * speed. Undefined while no speed is known at all.
 */
export function expectedSeconds (assignments: Assignment[], workers: WorkerSpeed[]): number | undefined {
  const known = workers.filter(w => w.speed > 0)
  if (known.length === 0) return undefined
  const meanSpeed = known.reduce((s, w) => s + w.speed, 0) / known.length
  let worst = 0
  for (const a of assignments) {
    const speed = workers.find(w => w.peer === a.peer)?.speed ?? 0
    worst = Math.max(worst, a.samples / (speed > 0 ? speed : meanSpeed))
  }
  return worst
}
