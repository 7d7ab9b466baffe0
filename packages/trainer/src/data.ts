// Data sets are kept as the bytes they ship as (uint8 pixels, uint8 labels) and turned into
// float tensors batch by batch, so a peer holds 47 MB for MNIST, not 188 MB of floats.
// (Reading them from disk is datasets.ts's: this module runs in a browser tab too.)

export interface ImageSet {
  /** the examples' values as stored, count x rows x cols (x channels): uint8 pixels, or floats from a CSV */
  images: Uint8Array | Float32Array
  labels: Uint8Array
  count: number
  /** per-example shape fed to the model, e.g. [28, 28, 1] */
  exampleShape: number[]
  numClasses: number
  /** values are divided by this before training (255: pixels to 0-1) */
  scale: number
}

export interface Dataset {
  name: string
  train: ImageSet
  test: ImageSet
}

export function shardIndices (total: number, index: number, count: number, seed = 1): Uint32Array {
  if (!Number.isInteger(count) || count < 1 || !Number.isInteger(index) || index < 0 || index >= count) {
    throw new RangeError(`shard ${index}/${count} is not valid: need 0 <= index < count`)
  }
  const order = shuffled(total, seed)
  const start = Math.floor(total * index / count)
  const end = Math.floor(total * (index + 1) / count)
  return order.slice(start, end)
}

/**
 * A peer's examples split into training and held-out ones (--holdout): the held-out fraction of
 * a seeded shuffle, so a restarted peer holds out the same examples.
 */
export function holdoutSplit (count: number, fraction: number, seed = 2): { train: Uint32Array, holdout: Uint32Array } {
  if (!(fraction >= 0 && fraction < 1)) throw new RangeError(`holdout ${fraction} is not a fraction from 0 to below 1`)
  const order = shuffled(count, seed)
  const held = Math.round(count * fraction)
  return { train: order.slice(held).sort(), holdout: order.slice(0, held).sort() }
}

/** A seeded PRNG (mulberry32): uniform in [0, 1), the same sequence on every peer. */
function seededRandom (seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A permutation of 0..n-1 from a seeded PRNG, the same on every peer. */
export function shuffled (n: number, seed: number, random = seededRandom(seed)): Uint32Array {
  const out = new Uint32Array(n)
  for (let i = 0; i < n; i++) out[i] = i
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    const tmp = out[i]; out[i] = out[j]; out[j] = tmp
  }
  return out
}

/**
 * How the training set is split between a round's peers (`--partition`), for experiments on one
 * data set: `iid` (a fixed shuffle cut in equal slices), `dirichlet:<alpha>` (each class spread
 * over the peers in Dirichlet(alpha) proportions: small alpha, few classes per peer) or
 * `shards:<k>` (the examples sorted by label, cut in k shards per peer, each peer taking k).
 */
export type Partition = { kind: 'iid' } | { kind: 'dirichlet', alpha: number } | { kind: 'shards', perPeer: number }

export const PARTITION_FORMS = 'iid, dirichlet:<alpha> (e.g. dirichlet:0.3) or shards:<k> (e.g. shards:2)'

export function parsePartition (spec: string): Partition {
  if (spec === 'iid') return { kind: 'iid' }
  const dirichlet = /^dirichlet:(\d+(?:\.\d+)?)$/.exec(spec)
  if (dirichlet !== null && Number(dirichlet[1]) > 0 && Number(dirichlet[1]) <= 1000) return { kind: 'dirichlet', alpha: Number(dirichlet[1]) }
  const shards = /^shards:(\d{1,3})$/.exec(spec)
  if (shards !== null && Number(shards[1]) >= 1) return { kind: 'shards', perPeer: Number(shards[1]) }
  throw new RangeError(`partition "${spec}" is not one of ${PARTITION_FORMS} (alpha above 0 and at most 1000, k from 1 to 999)`)
}

/** A Gamma(shape, 1) sample (Marsaglia and Tsang; shape < 1 by boosting to shape + 1). */
function gamma (shape: number, random: () => number): number {
  if (shape < 1) return gamma(shape + 1, random) * Math.pow(random() || Number.MIN_VALUE, 1 / shape)
  const d = shape - 1 / 3
  const c = 1 / Math.sqrt(9 * d)
  for (;;) {
    // a standard normal (Box-Muller)
    const x = Math.sqrt(-2 * Math.log(random() || Number.MIN_VALUE)) * Math.cos(2 * Math.PI * random())
    const v = (1 + c * x) ** 3
    if (v <= 0) continue
    const u = random()
    if (Math.log(u || Number.MIN_VALUE) < 0.5 * x * x + d - d * v + d * Math.log(v)) return d * v
  }
}

/** The training examples of peer `index` of `count` under `partition`: the same on every peer, for a seed. */
export function partitionIndices (labels: Uint8Array, numClasses: number, index: number, count: number, partition: Partition, seed = 1): Uint32Array {
  if (partition.kind === 'iid') return shardIndices(labels.length, index, count, seed)
  if (!Number.isInteger(count) || count < 1 || !Number.isInteger(index) || index < 0 || index >= count) {
    throw new RangeError(`shard ${index}/${count} is not valid: need 0 <= index < count`)
  }
  const random = seededRandom(seed)
  const order = shuffled(labels.length, seed, random)
  if (partition.kind === 'shards') {
    // sorted by label (ties in shuffled order), cut into count x k shards, dealt out in a seeded order
    const rank = new Uint32Array(labels.length)
    order.forEach((example, i) => { rank[example] = i })
    const sorted = Uint32Array.from(order).sort((a, b) => labels[a] - labels[b] || rank[a] - rank[b])
    const pieces = count * partition.perPeer
    const deal = shuffled(pieces, seed + 1)
    const mine: number[] = []
    for (let k = 0; k < partition.perPeer; k++) {
      const piece = deal[index * partition.perPeer + k]
      const start = Math.floor(labels.length * piece / pieces)
      const end = Math.floor(labels.length * (piece + 1) / pieces)
      for (let i = start; i < end; i++) mine.push(sorted[i])
    }
    return Uint32Array.from(mine)
  }
  // dirichlet: every class is split over the peers in proportions drawn from Dirichlet(alpha)
  const byClass: number[][] = Array.from({ length: numClasses }, () => [])
  for (const i of order) byClass[labels[i]]?.push(i)
  const mine: number[] = []
  for (const members of byClass) {
    const draws = Array.from({ length: count }, () => gamma(partition.alpha, random))
    const total = draws.reduce((a, b) => a + b, 0)
    let before = 0
    for (let p = 0; p < index; p++) before += draws[p]
    const start = Math.round(members.length * before / total)
    const end = Math.round(members.length * (before + draws[index]) / total)
    for (let i = start; i < end; i++) mine.push(members[i])
  }
  return Uint32Array.from(mine)
}
